//! What every scenario shares: the cluster client, the controller's identity, namespaces, kwok node
//! capacity and starting the controller under test.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::apiserver;
use crate::controller::{ControllerSpec, RunningController};

/// Label on every namespace the bench creates (leftovers are deleted at the next start).
pub const NAMESPACE_LABEL: &str = "agent-sandbox.bench/run";

/// Pods one kwok node takes (the `node-up` stage's allocatable).
const PODS_PER_NODE: usize = 110;

/// `agents.x-k8s.io/v1beta1` Sandbox.
pub fn sandbox_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("agents.x-k8s.io", "v1beta1", "Sandbox"),
        "sandboxes",
    )
}

/// `extensions.agents.x-k8s.io/v1beta1` SandboxClaim.
pub fn claim_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.agents.x-k8s.io", "v1beta1", "SandboxClaim"),
        "sandboxclaims",
    )
}

/// The shared state of a bench invocation.
pub struct Bench {
    /// Admin client.
    pub client: Client,
    /// Kubeconfig the controller under test runs with.
    pub controller_kubeconfig: PathBuf,
    /// Whether the controller's requests are isolated by its FlowSchema.
    pub isolated: bool,
    /// Directory for logs and JSON.
    pub out_dir: PathBuf,
}

impl Bench {
    /// Connects, installs the CRDs, gives the controller its identity and deletes leftovers of earlier runs.
    pub async fn connect(out_dir: PathBuf) -> anyhow::Result<Self> {
        let client = agent_sandbox_testkit::cluster::client().await?;
        agent_sandbox_testkit::crds::install(&client).await?;
        let admin = agent_sandbox_testkit::cluster::kubeconfig_path();
        let identity = apiserver::controller_kubeconfig(&admin, &out_dir.join("identity"))?;
        if identity.is_some() {
            apiserver::ensure_flow_schema(&client).await?;
        } else {
            eprintln!(
                "[bench] not the local cluster: the controller runs as admin and its requests are not counted"
            );
        }
        let bench = Self {
            client,
            isolated: identity.is_some(),
            controller_kubeconfig: identity.unwrap_or(admin),
            out_dir,
        };
        bench.delete_leftovers().await?;
        Ok(bench)
    }

    /// A dynamic API of `resource` in `namespace`.
    pub fn api(&self, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, resource)
    }

    /// Starts the controller and waits until it reports ready (caches listed).
    pub async fn start_controller(
        &self,
        spec: &ControllerSpec,
        tag: &str,
    ) -> anyhow::Result<(RunningController, Duration)> {
        let log = self
            .out_dir
            .join("logs")
            .join(format!("{}-{tag}.log", spec.label));
        let mut c = RunningController::start(spec, &self.controller_kubeconfig, &log)?;
        let ready = c.wait_ready(Duration::from_secs(600)).await?;
        Ok((c, ready))
    }

    /// Creates a fresh namespace `bench-<scenario>-<n>` and waits for its default ServiceAccount.
    pub async fn namespace(&self, scenario: &str) -> anyhow::Result<String> {
        let name = format!(
            "bench-{scenario}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() % 100_000_000)
        );
        agent_sandbox_testkit::create_labelled_namespace(&self.client, &name, NAMESPACE_LABEL)
            .await?;
        Ok(name)
    }

    /// Deletes a namespace and waits until it is gone; returns how long that took.
    pub async fn delete_namespace(
        &self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let api = Api::<Namespace>::all(self.client.clone());
        let Some(ns) = api.get_opt(name).await? else {
            return Ok(Duration::ZERO);
        };
        api.delete(name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting namespace {name}"))?;
        agent_sandbox_testkit::wait::wait_deleted(&api, &ns, timeout).await?;
        Ok(started.elapsed())
    }

    async fn delete_leftovers(&self) -> anyhow::Result<()> {
        let api = Api::<Namespace>::all(self.client.clone());
        let leftovers = api
            .list(&ListParams::default().labels(NAMESPACE_LABEL))
            .await
            .context("listing earlier bench namespaces")?;
        for ns in leftovers {
            let name = ns.metadata.name.unwrap_or_default();
            eprintln!("[bench] deleting leftover namespace {name}");
            self.delete_namespace(&name, Duration::from_secs(600))
                .await?;
        }
        Ok(())
    }

    /// Makes sure the kwok nodes can hold `pods` more pods (110 a node), adding nodes shaped like
    /// `cargo xtask cluster up`'s and waiting until they are Ready.
    pub async fn ensure_capacity(&self, pods: usize) -> anyhow::Result<()> {
        let nodes = Api::<Node>::all(self.client.clone());
        let existing = nodes
            .list(&ListParams::default().labels("type=kwok"))
            .await
            .context("listing kwok nodes")?;
        let have = existing.items.len();
        // 10 % headroom: the scheduler spreads pods, and the pods of other scenarios may still be going.
        let want = (pods + pods / 10).div_ceil(PODS_PER_NODE).max(have);
        if want == have {
            return Ok(());
        }
        eprintln!("[bench] adding kwok nodes: {have} -> {want}");
        let taken: BTreeSet<String> = existing
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let added = add_nodes(&nodes, &taken, want - have).await?;
        tokio::time::timeout(Duration::from_secs(120), all_ready(nodes, &added))
            .await
            .context("the added kwok nodes did not become Ready within 120s")??;
        Ok(())
    }
}

/// Creates `count` kwok nodes with names not in `taken`; returns their names.
async fn add_nodes(
    nodes: &Api<Node>,
    taken: &BTreeSet<String>,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut added = Vec::new();
    let mut i = 0;
    while added.len() < count {
        let name = format!("kwok-node-{i}");
        i += 1;
        if taken.contains(&name) {
            continue;
        }
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", "type": "kwok"},
            },
        }))?;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
        added.push(name);
    }
    Ok(added)
}

/// Watches the kwok nodes until every one of `names` is Ready.
async fn all_ready(nodes: Api<Node>, names: &[String]) -> anyhow::Result<()> {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let mut stream = watcher(nodes, watcher::Config::default().labels("type=kwok"))
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut ready_names = BTreeSet::new();
    while let Some(node) = stream.next().await {
        let node = node?;
        if ready(&node) {
            ready_names.insert(node.metadata.name.unwrap_or_default());
        }
        if names.iter().all(|n| ready_names.contains(n)) {
            return Ok(());
        }
    }
    bail!("the node watch ended")
}
