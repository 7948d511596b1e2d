//! Upstream's Python SDK (`k8s-agent-sandbox` 1.0.8, pinned, unchanged) against the real node
//! through our router: this sets the stage and runs the pytest suite in tests/sdk, whose
//! scenarios are one test each there. The router runs twice: as a host process (the suite's
//! direct-URL scenarios) and as the default install's Deployment in the cluster (the SDK's default
//! connection, a `kubectl port-forward` to Service sandbox-router-svc).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agent_sandbox_testkit::router::with_router;
use agent_sandbox_testkit::{TestEnv, cluster, kubectl, workspace_root};
use anyhow::{Context, ensure};
use tokio::process::Command;

use crate::real_node_support::claims::wait_pool_ready;
use crate::real_node_support::create_pool;
use crate::router_support::router_kubeconfig;
use crate::runtime_support::{TEMPLATE, overlay_template, with_in_cluster_router};

/// Environment variable naming the venv's interpreter (`cargo xtask test` sets it; see
/// xtask/src/sdk.rs).
const PYTHON_ENV: &str = "AGENT_SANDBOX_SDK_PYTHON";

const POOL: &str = "sdk-pool";

/// The same template under runc, and a pool of one: the SDK's sandboxd pod tunnel (`kubectl
/// port-forward` to the pod) reaches runc pods only (containerd dials localhost in the pod's network
/// namespace, where a gVisor sandbox has no sockets).
const RUNC_TEMPLATE: &str = "python-runtime-runc";
const RUNC_POOL: &str = "sdk-runc-pool";

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
    with_in_cluster_router(suite_with_host_router(&env, &kubeconfig)).await
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
    with_router("router-sdk", kubeconfig, &[], async |router| {
        pytest(&python, env, router).await
    })
    .await
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
