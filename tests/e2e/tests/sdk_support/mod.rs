//! Upstream's Python SDK (`k8s-agent-sandbox` 1.0.8, pinned, unchanged) against the real node
//! through our router: this sets the stage and runs the pytest suite in tests/sdk, whose
//! scenarios are one test each there. The router runs twice: as a host process (the suite's
//! direct-URL scenarios) and as the default install's Deployment in the cluster (the SDK's default
//! connection, a `kubectl port-forward` to Service sandbox-router-svc).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_testkit::router::Router;
use agent_sandbox_testkit::{TestEnv, cluster, kubectl, workspace_root};
use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use tokio::process::Command;

use crate::real_node_support::claims::wait_pool_ready;
use crate::real_node_support::create_pool;
use crate::router_support::router_kubeconfig;

/// Environment variable naming the venv's interpreter (`cargo xtask test` sets it; see
/// xtask/src/sdk.rs).
const PYTHON_ENV: &str = "AGENT_SANDBOX_SDK_PYTHON";

/// The overlay whose python-runtime template the suite uses: deploy/examples' template with the
/// locally imported runtime image.
const OVERLAY: &str = "deploy/local-cluster";
const TEMPLATE: &str = "python-runtime";
const POOL: &str = "sdk-pool";

/// The same template under runc, and a pool of one: the SDK's sandboxd pod tunnel (`kubectl
/// port-forward` to the pod) reaches runc pods only (containerd dials localhost in the pod's network
/// namespace, where a gVisor sandbox has no sockets).
const RUNC_TEMPLATE: &str = "python-runtime-runc";
const RUNC_POOL: &str = "sdk-runc-pool";

/// The default install's router, made to run in the local cluster from the locally built image.
const IN_CLUSTER_ROUTER: &str = "deploy/local-cluster/router";
/// Where the SDK looks for Service sandbox-router-svc by default.
const ROUTER_NAMESPACE: &str = "agent-sandbox-system";
/// How long the router's Deployment may take to roll out (two runc pods on the real node).
const ROLLOUT_TIMEOUT: &str = "180s";

/// Pool size: every claim of the suite (five) takes a member and the pool refills behind it; two
/// keep claims warm without holding more gVisor sandboxes than the suite needs at once.
const POOL_SIZE: i32 = 2;

/// The whole suite's bound: a dozen scenarios, each a few seconds, plus refills on a loaded machine.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);

/// The python-runtime template of the overlay and a warm pool of it in the test's namespace, the
/// router as a host process with deploy/router's RBAC and as a Deployment in the cluster, then
/// `pytest tests/sdk` against them.
pub async fn upstream_sdk_suite(env: TestEnv) -> anyhow::Result<()> {
    let kubeconfig = router_kubeconfig(&env).await?;
    deploy_in_cluster_router().await?;
    let result = suite_with_host_router(&env, &kubeconfig).await;
    if result.is_err() {
        print_in_cluster_router_logs().await;
    }
    let removed = kubectl::ok(&[
        "delete",
        "--kustomize",
        &overlay_path(IN_CLUSTER_ROUTER),
        "--ignore-not-found",
        "--wait",
    ])
    .await
    .context("removing the in-cluster router");
    result.and(removed)
}

async fn suite_with_host_router(env: &TestEnv, kubeconfig: &Path) -> anyhow::Result<()> {
    let python = sdk_python().await?;
    let template = overlay_template().await?;
    let mut runc = template.clone();
    runc.metadata.name = Some(RUNC_TEMPLATE.to_owned());
    runc.spec.blueprint.pod_template.spec.runtime_class_name = Some("runc".to_owned());
    env.create(&template).await?;
    env.create(&runc).await?;
    create_pool(env, POOL, TEMPLATE, POOL_SIZE).await?;
    create_pool(env, RUNC_POOL, RUNC_TEMPLATE, 1).await?;
    wait_pool_ready(env, POOL, POOL_SIZE).await?;
    wait_pool_ready(env, RUNC_POOL, 1).await?;

    let mut router = Router::start("router-sdk", kubeconfig, &[]).await?;
    let result = pytest(&python, env, router.addr()).await;
    let running = router.ensure_running();
    let stopped = router.stop().await;
    if result.is_err() || running.is_err() {
        eprintln!("router log (tail):\n{}", router.tail(40));
    }
    result.and(running).and(stopped)
}

/// The router Deployment of deploy/local-cluster/router, rolled out (its namespace, ServiceAccount
/// and RBAC are there already: [`router_kubeconfig`] applied them from deploy/).
async fn deploy_in_cluster_router() -> anyhow::Result<()> {
    kubectl::ok(&["apply", "--kustomize", &overlay_path(IN_CLUSTER_ROUTER)]).await?;
    kubectl::ok(&[
        "rollout",
        "status",
        "deployment/sandbox-router",
        "--namespace",
        ROUTER_NAMESPACE,
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .context("the in-cluster router did not roll out")?;
    Ok(())
}

/// The last lines of every in-cluster router pod's log, for a failed run.
async fn print_in_cluster_router_logs() {
    let args = [
        "logs",
        "--namespace",
        ROUTER_NAMESPACE,
        "--selector",
        "app=sandbox-router",
        "--prefix",
        "--tail",
        "40",
    ];
    match kubectl::output(&args).await {
        Ok(out) => eprintln!(
            "in-cluster router logs (tail):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => eprintln!("in-cluster router logs: {error:#}"),
    }
}

fn overlay_path(overlay: &str) -> String {
    workspace_root().join(overlay).display().to_string()
}

/// The venv's interpreter: `$AGENT_SANDBOX_SDK_PYTHON`, else what `cargo xtask sdk-python` makes.
async fn sdk_python() -> anyhow::Result<PathBuf> {
    if let Some(python) = std::env::var_os(PYTHON_ENV) {
        return Ok(PathBuf::from(python));
    }
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["xtask", "sdk-python"])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running `cargo xtask sdk-python`")?;
    ensure!(
        output.status.success(),
        "`cargo xtask sdk-python` failed (set {PYTHON_ENV} to a python with tests/sdk/requirements.txt installed)"
    );
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// The SandboxTemplate `python-runtime` as `kubectl kustomize deploy/local-cluster` renders it.
async fn overlay_template() -> anyhow::Result<SandboxTemplate> {
    let output = Command::new(kubectl::binary())
        .arg("kustomize")
        .arg(workspace_root().join(OVERLAY))
        .output()
        .await
        .context("running kubectl kustomize")?;
    ensure!(
        output.status.success(),
        "kubectl kustomize {OVERLAY}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).context("kustomize output")?;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value["kind"].as_str() == Some("SandboxTemplate")
            && value["metadata"]["name"].as_str() == Some(TEMPLATE)
        {
            return serde_yaml::from_value(value).context("reading the python-runtime template");
        }
    }
    bail!("{OVERLAY} renders no SandboxTemplate {TEMPLATE}")
}

/// Runs the suite verbosely (one line per scenario in the run's output) and fails unless every
/// scenario passed.
async fn pytest(
    python: &std::path::Path,
    env: &TestEnv,
    router: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let suite = workspace_root().join("tests/sdk");
    // kubectl on PATH: the SDK's sandboxd mode runs `kubectl port-forward` itself.
    let kubectl_dir = kubectl::binary()
        .parent()
        .map(PathBuf::from)
        .filter(|d| !d.as_os_str().is_empty());
    let path = std::env::join_paths(kubectl_dir.into_iter().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let mut child = Command::new(python)
        .args(["-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir"])
        .arg(&suite)
        .arg(&suite)
        .env("SDK_ROUTER_URL", format!("http://{router}"))
        .env("SDK_NAMESPACE", &env.namespace)
        .env("SDK_WARM_POOL", POOL)
        .env("SDK_RUNC_POOL", RUNC_POOL)
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .env("PATH", path)
        // Nothing written into the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&suite)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} -m pytest", python.display()))?;
    let status = tokio::time::timeout(SUITE_TIMEOUT, child.wait())
        .await
        .with_context(|| format!("the SDK suite did not finish within {SUITE_TIMEOUT:?}"))??;
    ensure!(
        status.success(),
        "the SDK suite failed ({status}); see the pytest output above"
    );
    Ok(())
}
