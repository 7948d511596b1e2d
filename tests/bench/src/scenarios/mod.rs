//! The scenarios (docs/benchmarks.md) and the phase runner they share.

pub mod claims;
pub mod cold;
pub mod exec;
pub mod refill;
pub mod scale;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::context::Bench;
use crate::controller::RunningController;
use crate::load::{Pace, create_all};
use crate::measure::Window;
use crate::report::Phase;
use crate::tracker::ReadyTracker;

/// The image of every benchmark pod (kwok never pulls it).
pub const IMAGE: &str = agent_sandbox_testkit::fixtures::IMAGE;

/// The busybox image `cargo xtask cluster up` imports into the real node's containerd.
pub const REAL_NODE_IMAGE: &str = "localhost/agent-sandbox/busybox:local";

/// A Sandbox without a pool: one container, no Service, no volumes.
pub fn sandbox(name: &str) -> Value {
    json!({
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": {"podTemplate": {
            "metadata": {"labels": {"app": "agent-sandbox-bench"}},
            "spec": {"automountServiceAccountToken": false,
                     "containers": [{"name": "agent", "image": IMAGE}]},
        }},
    })
}

/// A Sandbox whose Pod really runs on the local cluster's real node under `runtime_class` (`gvisor`
/// or `runc`; the RuntimeClass places it there): busybox sleeping, Ready when the process started.
pub fn real_sandbox(name: &str, runtime_class: &str) -> Value {
    let mut sandbox = sandbox(name);
    let spec = &mut sandbox["spec"]["podTemplate"]["spec"];
    spec["runtimeClassName"] = json!(runtime_class);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"] = json!([{"name": "agent", "image": REAL_NODE_IMAGE,
                                 "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]);
    sandbox
}

/// A default phase timeout: a minute plus 100 ms an object (10 objects/s would still pass).
pub fn default_timeout(objects: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(100 * objects as u64)
}

/// What one create-and-wait phase does.
pub struct CreatePhase {
    /// Phase name in the report.
    pub name: String,
    /// Kind of the created objects.
    pub resource: ApiResource,
    /// Namespace to create them in.
    pub namespace: String,
    /// How many.
    pub count: usize,
    /// Offered load.
    pub pace: Pace,
    /// Concurrent create calls at most.
    pub max_in_flight: usize,
    /// Until every object is Ready.
    pub timeout: Duration,
    /// Fail fast if not even one object is Ready this long after the first create, with `hint`.
    pub first_ready: Option<(Duration, String)>,
    /// The object for index `i` (its name must be `metadata.name`).
    pub manifest: Arc<dyn Fn(usize) -> Value + Send + Sync>,
}

/// Creates the objects of `spec` against `controller`, waits for all of them to be seen Ready by the
/// bench's own watch and reports the phase.
pub async fn create_phase(
    bench: &Bench,
    controller: &RunningController,
    spec: CreatePhase,
) -> anyhow::Result<Phase> {
    let api = bench.api(&spec.resource, &spec.namespace);
    let tracker = ReadyTracker::start(api.clone(), None).await?;
    let window = Window::start(&bench.client, Some(controller), bench.isolated).await?;
    let manifest = Arc::clone(&spec.manifest);
    let started = Instant::now();
    let mut load = tokio::spawn(create_all(
        spec.count,
        spec.pace,
        spec.max_in_flight,
        move |i| {
            let api = api.clone();
            let obj = manifest(i);
            async move {
                let obj: DynamicObject = serde_json::from_value(obj)?;
                let made = api.create(&PostParams::default(), &obj).await?;
                made.metadata.name.context("created object has no name")
            }
        },
    ));
    if let Some((limit, hint)) = &spec.first_ready {
        tokio::select! {
            first = tracker.wait_for(1, *limit, "the first object to become Ready") => {
                if let Err(e) = first {
                    load.abort();
                    bail!("{e:#}\n{hint}");
                }
            }
            done = &mut load => {
                // All creates returned before anything was Ready: keep the bounded first-Ready wait.
                let remaining = limit.saturating_sub(started.elapsed());
                if let Err(e) = tracker.wait_for(1, remaining, "the first object to become Ready").await {
                    bail!("{e:#}\n{hint}");
                }
                return finish(bench, controller, &spec, &tracker, window, done??).await;
            }
        }
    }
    let created = load.await??;
    finish(bench, controller, &spec, &tracker, window, created).await
}

async fn finish(
    bench: &Bench,
    controller: &RunningController,
    spec: &CreatePhase,
    tracker: &ReadyTracker,
    window: Window,
    created: Vec<(String, Instant)>,
) -> anyhow::Result<Phase> {
    tracker
        .wait_for(
            spec.count,
            spec.timeout,
            &format!("{} {}", spec.count, spec.resource.plural),
        )
        .await?;
    let latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, at)| Some(tracker.ready_at(name)?.saturating_duration_since(*at)))
        .collect();
    let first = created
        .iter()
        .map(|(_, at)| *at)
        .min()
        .unwrap_or_else(Instant::now);
    let last = tracker.last_ready().unwrap_or_else(Instant::now);
    window
        .finish(
            &bench.client,
            controller,
            &spec.name,
            spec.count,
            &latencies,
            first,
            last,
        )
        .await
}
