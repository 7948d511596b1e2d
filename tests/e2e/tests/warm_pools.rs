//! The SandboxTemplate and SandboxWarmPool controllers (the binary with `--extensions`, as cluster
//! admin) against the local control plane.

mod pools;

use agent_sandbox_testkit::controller::Controller;
use agent_sandbox_testkit::{cluster, crds};

#[tokio::test]
async fn template_and_warm_pool_scenarios() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let kubeconfig = cluster::kubeconfig_path();
    let mut controller = Controller::start("warm-pools-admin", &kubeconfig, &["--extensions"])?;
    let mut results = pools::run_all("pool", false).await;
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
