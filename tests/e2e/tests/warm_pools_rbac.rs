//! The extension controllers run as the controller's own ServiceAccount with the RBAC from deploy/
//! (rbac.yaml + rbac-extensions.yaml): proves the ClusterRoles grant every call the template and warm
//! pool controllers make.

mod pools;

use agent_sandbox_testkit::controller::{Controller, install_service_account};
use agent_sandbox_testkit::{cluster, crds};

#[tokio::test]
async fn warm_pool_controllers_run_with_their_own_rbac() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let kubeconfig = install_service_account(
        &client,
        &["controller/rbac.yaml", "controller/rbac-extensions.yaml"],
        "warm-pools-sa",
    )
    .await?;
    let mut controller = Controller::start("warm-pools-sa", &kubeconfig, &["--extensions"])?;
    let mut results = pools::run_all("pool-rbac", true).await;
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
