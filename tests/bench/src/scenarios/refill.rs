//! `refill`: a warm pool scaled from 0 to N; time until all N are Ready (P4 of e2e-and-performance.md §5).

use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::SandboxWarmPool;
use anyhow::Context;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::claims::{POOL, create_pool};
use super::phase::default_timeout;
use crate::context::{Bench, sandbox_resource};
use crate::controller::{ControllerSpec, RunningController};
use crate::measure::{Observed, Window};
use crate::report::{Phase, RunReport};
use crate::tracker::ReadyTracker;

/// Flags of `refill`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Pool sizes to fill from 0, each on a fresh pool.
    #[arg(long, value_delimiter = ',', default_values_t = [300usize, 1000])]
    pub sizes: Vec<usize>,
    /// Fail if not one Sandbox is Ready this many seconds after the scale-up.
    #[arg(long, default_value_t = 15)]
    pub first_ready_timeout_s: u64,
}

/// Runs `refill` once.
pub async fn run(bench: &Bench, spec: &ControllerSpec, args: &Args) -> anyhow::Result<RunReport> {
    let (controller, _) = bench.start_controller(spec, "refill").await?;
    let mut phases = Vec::new();
    let mut failure = None;
    for &size in &args.sizes {
        match one(bench, &controller, size, args).await {
            Ok(p) => phases.push(p),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    controller.stop().await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(RunReport::new(spec, phases))
}

async fn one(
    bench: &Bench,
    controller: &RunningController,
    size: usize,
    args: &Args,
) -> anyhow::Result<Phase> {
    bench.ensure_capacity(size).await?;
    let namespace = bench.namespace("refill").await?;
    let result = async {
        create_pool(bench, &namespace, 0).await?;
        let tracker = ReadyTracker::start(bench.api(&sandbox_resource(), &namespace), None).await?;
        let window = Window::start(&bench.client, Some(controller), bench.isolated).await?;
        let started = Instant::now();
        Api::<SandboxWarmPool>::namespaced(bench.client.clone(), &namespace)
            .patch(
                POOL,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": size}})),
            )
            .await
            .context("scaling the warm pool")?;
        tracker
            .wait_for(1, Duration::from_secs(args.first_ready_timeout_s), "the first pool Sandbox")
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}\nhint: refill needs the SandboxWarmPool controller (issue 5) in the controller under test"
                )
            })?;
        tracker
            .wait_for(size, default_timeout(size), &format!("{size} pool Sandboxes"))
            .await?;
        let latencies: Vec<Duration> = tracker
            .ready_times()
            .into_iter()
            .map(|t| t.saturating_duration_since(started))
            .collect();
        let last = tracker.last_ready().unwrap_or_else(Instant::now);
        let observed = Observed {
            name: &format!("refill-{size}"),
            objects: size,
            latencies: &latencies,
            first: started,
            last,
        };
        window.finish(&bench.client, controller, observed).await
    }
    .await;
    bench
        .delete_namespace(&namespace, default_timeout(size))
        .await?;
    result
}
