//! Scenarios on the local cluster's one real node (`node-0`: containerd, runc and gVisor, a real
//! kubelet, CNI networking, CoreDNS, hostPath-backed PVs) and what they share: the real-node pod
//! templates, a controller per scenario, Sandbox and claim helpers, and `kubectl exec`.

pub mod apiserver;
pub mod claims;
pub mod dns;
pub mod exits;
pub mod firewall;
pub mod network_policy;
pub mod runtime;
pub mod storage;

use std::future::Future;
use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::controller::Controller;
use agent_sandbox_testkit::kubectl::{self, ExecOutput};
use agent_sandbox_testkit::wait::{wait_for_object, wait_for_set};
use agent_sandbox_testkit::{TestEnv, cluster, crds, fixtures};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

/// The real node, as `cargo xtask cluster up` registers it.
pub const NODE: &str = "node-0";

/// The label the real node carries (and the runtime classes select).
pub const NODE_LABEL: &str = "agent-sandbox.test/real-node";

/// busybox-static with every applet; entrypoint `/bin/sh`. Present in the node's containerd.
pub const BUSYBOX: &str = "localhost/agent-sandbox/busybox:local";

/// Debian bookworm python3; entrypoint `python3`. Present in the node's containerd.
pub const PYTHON: &str = "localhost/agent-sandbox/python:local";

/// The name of the one container every scenario's Pod runs.
pub const CONTAINER: &str = "main";

/// Long enough for real Pods (image local, gVisor start in seconds) on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(150);

/// Long enough for one `kubectl exec` (a DNS lookup in it retries for up to 90 s).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the real node may take to report Ready when a scenario starts.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// One scenario at a time: each runs its own controller (so its log belongs to it), and two controllers
/// without leader election would act on the same objects at once. The lock is runtime-agnostic.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Set (to any value) by `cargo xtask test` for its second pass of the real-node suite: the
/// controller is then the default install's, running in the cluster as two Pods
/// (deploy/local-cluster/install), and no scenario starts one of its own.
const IN_CLUSTER_CONTROLLER_ENV: &str = "AGENT_SANDBOX_E2E_IN_CLUSTER_CONTROLLER";

/// Runs `body` in a fresh namespace `rn-<scenario>-…` with the real controller (`--extensions`)
/// running, once the real node is there and Ready: a host process of its own, or the in-cluster
/// one when [`IN_CLUSTER_CONTROLLER_ENV`] is set.
pub async fn run<F, Fut>(scenario: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(TestEnv) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = cluster::client().await?;
    wait_real_node(&client).await?;
    crds::install(&client).await?;
    if std::env::var_os(IN_CLUSTER_CONTROLLER_ENV).is_some() {
        return TestEnv::run(&format!("rn-{scenario}"), body).await;
    }
    let kubeconfig = cluster::kubeconfig_path();
    let mut controller = Controller::start(
        &format!("real-node-{scenario}"),
        &kubeconfig,
        &["--extensions"],
    )?;
    let mut results = vec![TestEnv::run(&format!("rn-{scenario}"), body).await];
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}

/// Waits until Node `node-0` exists with the real-node label and is Ready; a cluster without it
/// fails here, naming what is missing, instead of timing out on a Pending Pod.
pub async fn wait_real_node(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(NODE).await?.is_none() {
        bail!(
            "the cluster has no Node {NODE}: these scenarios need the local cluster's real node \
             (containerd, runc, gVisor and a kubelet, started by `cargo xtask cluster up`)"
        );
    }
    let node = wait_for_object(
        &nodes,
        NODE,
        "the real node to be Ready",
        NODE_TIMEOUT,
        |n: Option<&Node>| {
            n.and_then(|n| n.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        },
    )
    .await?;
    ensure!(
        node.labels().get(NODE_LABEL).map(String::as_str) == Some("true"),
        "Node {NODE} lacks the label {NODE_LABEL}=true: {:?}",
        node.labels()
    );
    Ok(())
}

/// Container `main` running `command` from `image`, never pulled (the node has no registry).
pub fn container(image: &str, command: &[&str]) -> Value {
    json!({"name": CONTAINER, "image": image, "imagePullPolicy": "Never", "command": command})
}

/// A busybox container that sleeps for an hour (longer than any scenario).
pub fn busybox_sleeper() -> Value {
    container(BUSYBOX, &["sleep", "3600"])
}

/// A python container that sleeps for an hour.
pub fn python_sleeper() -> Value {
    container(PYTHON, &["python3", "-c", "import time; time.sleep(3600)"])
}

/// A pod template for the real node: runtime class `runtime_class` (its scheduling puts the Pod on
/// `node-0`), the given containers, and a one-second grace period (the sleepers run as PID 1, which
/// ignores SIGTERM, so deletion would otherwise take the default 30 s). `extra` spec fields are merged.
pub fn pod_template(runtime_class: &str, containers: Value, extra: Value) -> Value {
    let mut spec = json!({
        "runtimeClassName": runtime_class,
        "terminationGracePeriodSeconds": 1,
        "containers": containers,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({ "spec": spec })
}

/// Creates Sandbox `name` with `pod_template` and `extra` spec fields (e.g. `service`,
/// `volumeClaimTemplates`).
pub async fn create_sandbox(
    env: &TestEnv,
    name: &str,
    pod_template: Value,
    extra: Value,
) -> anyhow::Result<Sandbox> {
    let mut spec = json!({ "podTemplate": pod_template });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let sandbox: Sandbox = serde_json::from_value(json!({
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .with_context(|| format!("building Sandbox {name}"))?;
    env.api::<Sandbox>()
        .create(&PostParams::default(), &sandbox)
        .await
        .with_context(|| format!("creating Sandbox {name}"))
}

/// Creates SandboxTemplate `name` whose Pods use `pod_template`.
pub async fn create_template(
    env: &TestEnv,
    name: &str,
    pod_template: Value,
) -> anyhow::Result<SandboxTemplate> {
    env.create(&fixtures::template(
        name,
        json!({ "podTemplate": pod_template }),
    )?)
    .await
}

/// Creates SandboxWarmPool `name` of `replicas` from `template`.
pub async fn create_pool(
    env: &TestEnv,
    name: &str,
    template: &str,
    replicas: i32,
) -> anyhow::Result<SandboxWarmPool> {
    env.create(&fixtures::warm_pool(name, template, replicas, json!({}))?)
        .await
}

/// The condition `type_` of a conditions list.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The Sandbox's condition `type_`.
pub fn sandbox_condition<'a>(sandbox: &'a Sandbox, type_: &str) -> Option<&'a Condition> {
    find(&sandbox.status.as_ref()?.conditions, type_)
}

/// The claim's condition `type_`.
pub fn claim_condition<'a>(claim: &'a SandboxClaim, type_: &str) -> Option<&'a Condition> {
    find(&claim.status.as_ref()?.conditions, type_)
}

/// (status, reason) of a condition.
pub fn status_reason(condition: Option<&Condition>) -> Option<(String, String)> {
    condition.map(|c| (c.status.clone(), c.reason.clone()))
}

/// (status, reason) of the Sandbox's condition `type_`.
pub fn sandbox_cond(sandbox: &Sandbox, type_: &str) -> Option<(String, String)> {
    status_reason(sandbox_condition(sandbox, type_))
}

/// (status, reason) of the claim's condition `type_`.
pub fn claim_cond(claim: &SandboxClaim, type_: &str) -> Option<(String, String)> {
    status_reason(claim_condition(claim, type_))
}

/// `("True", reason)` / `("False", reason)` as owned strings, to compare with [`sandbox_cond`].
pub fn pair(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.to_owned(), reason.to_owned()))
}

/// Waits until Sandbox `name` satisfies `cond`, for `what`.
pub async fn wait_sandbox(
    env: &TestEnv,
    name: &str,
    what: &str,
    cond: impl Fn(&Sandbox) -> bool + Send + 'static,
) -> anyhow::Result<Sandbox> {
    wait_for_object(
        &env.api::<Sandbox>(),
        name,
        what,
        TIMEOUT,
        move |s: Option<&Sandbox>| s.is_some_and(&cond),
    )
    .await
}

/// Waits until Sandbox `name` is Ready=True/DependenciesReady.
pub async fn wait_sandbox_ready(env: &TestEnv, name: &str) -> anyhow::Result<Sandbox> {
    wait_sandbox(env, name, "the Sandbox to be Ready", |s| {
        sandbox_cond(s, "Ready") == pair("True", "DependenciesReady")
    })
    .await
}

/// Watches every Sandbox of the namespace until `cond` holds for the set (sorted by name), and
/// returns it.
pub async fn wait_sandboxes(
    env: &TestEnv,
    what: &str,
    cond: impl Fn(&[Sandbox]) -> bool,
) -> anyhow::Result<Vec<Sandbox>> {
    wait_for_set(
        &env.api::<Sandbox>(),
        watcher::Config::default(),
        what,
        TIMEOUT,
        cond,
        |s| {
            format!(
                "{} Ready={:?} deleting={}",
                s.name_any(),
                sandbox_cond(s, "Ready"),
                s.metadata.deletion_timestamp.is_some()
            )
        },
    )
    .await
}

/// Waits until claim `name` satisfies `cond`, for `what`.
pub async fn wait_claim(
    env: &TestEnv,
    name: &str,
    what: &str,
    cond: impl Fn(&SandboxClaim) -> bool + Send + 'static,
) -> anyhow::Result<SandboxClaim> {
    wait_for_object(
        &env.api::<SandboxClaim>(),
        name,
        what,
        TIMEOUT,
        move |c: Option<&SandboxClaim>| c.is_some_and(&cond),
    )
    .await
}

pub use agent_sandbox_testkit::fixtures::bound;

/// The one live Pod of a Sandbox, found by the selector in its status.
pub async fn sandbox_pod(env: &TestEnv, sandbox: &Sandbox) -> anyhow::Result<Pod> {
    let name = sandbox.name_any();
    let selector = sandbox
        .status
        .as_ref()
        .map(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .with_context(|| format!("Sandbox {name} reports no selector"))?;
    let mut pods: Vec<Pod> = env
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    ensure!(
        pods.len() == 1,
        "Sandbox {name}: {} live Pods match {selector}",
        pods.len()
    );
    Ok(pods.remove(0))
}

/// Fails unless `pod` was scheduled on the real node with runtime class `runtime_class`.
pub fn ensure_on_real_node(pod: &Pod, runtime_class: &str) -> anyhow::Result<()> {
    let spec = pod.spec.as_ref().context("pod spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(NODE),
        "Pod {} runs on {:?}, not {NODE}",
        pod.name_any(),
        spec.node_name
    );
    ensure!(
        spec.runtime_class_name.as_deref() == Some(runtime_class),
        "Pod {} has runtime class {:?}, not {runtime_class}",
        pod.name_any(),
        spec.runtime_class_name
    );
    Ok(())
}

/// The Pod's IP as its status reports it.
pub fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
}

/// Runs `command` in container `main` of Pod `pod` in the scenario's namespace.
pub async fn exec(env: &TestEnv, pod: &str, command: &[&str]) -> anyhow::Result<ExecOutput> {
    kubectl::exec(&env.namespace, pod, Some(CONTAINER), command, EXEC_TIMEOUT).await
}

/// Runs `command` in container `main` of `pod`; its trimmed stdout if it exited 0.
pub async fn exec_ok(env: &TestEnv, pod: &str, command: &[&str]) -> anyhow::Result<String> {
    exec(env, pod, command)
        .await?
        .success(&format!("`{}` in Pod {pod}", command.join(" ")))
}

/// Whole seconds from now as an RFC 3339 instant (the API server keeps `metav1.Time` at second
/// precision).
pub fn in_seconds(seconds: i64) -> anyhow::Result<String> {
    use k8s_openapi::jiff::Timestamp;
    Ok(Timestamp::from_second(Timestamp::now().as_second() + seconds)?.to_string())
}
