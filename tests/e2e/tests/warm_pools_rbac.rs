//! The extension controllers run as the controller's own ServiceAccount with the RBAC from deploy/
//! (rbac.yaml + rbac-extensions.yaml): proves the ClusterRoles grant every call the template and warm
//! pool controllers make.

mod pools;

use agent_sandbox_testkit::controller::{Controller, service_account_kubeconfig};
use agent_sandbox_testkit::{cluster, crds, manifests, workspace_root};

const NAMESPACE: &str = "agent-sandbox-system";

#[tokio::test]
async fn warm_pool_controllers_run_with_their_own_rbac() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let deploy = workspace_root().join("deploy/controller");
    for file in [
        "namespace.yaml",
        "service-account.yaml",
        "rbac.yaml",
        "rbac-extensions.yaml",
    ] {
        manifests::apply_file(&client, &deploy.join(file), NAMESPACE).await?;
    }
    let logs = workspace_root().join("target/e2e-logs");
    std::fs::create_dir_all(&logs)?;
    let kubeconfig = logs.join("warm-pools-sa.kubeconfig");
    service_account_kubeconfig(
        &client,
        &cluster::kubeconfig_path(),
        NAMESPACE,
        "agent-sandbox-controller",
        &kubeconfig,
    )
    .await?;
    let mut controller = Controller::start("warm-pools-sa", &kubeconfig, &["--extensions"])?;
    let mut results = pools::run_all("pool-rbac", true, cluster::kubeconfig_path()).await;
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
