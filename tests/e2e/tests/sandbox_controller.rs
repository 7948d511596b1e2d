//! The Sandbox controller binary, run as cluster admin, against the local control plane.

mod common;

use agent_sandbox_testkit::controller::Controller;
use agent_sandbox_testkit::{cluster, crds};

#[tokio::test]
async fn sandbox_controller_scenarios() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let kubeconfig = cluster::kubeconfig_path();
    let mut controller = Controller::start("sandbox-controller-admin", &kubeconfig, &[])?;
    let mut results = common::run_all("sb").await;
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
