//! The Sandbox controller run as its own ServiceAccount with the RBAC from deploy/ (and leader election
//! on): proves the ClusterRole grants everything the controller calls.

mod common;

use agent_sandbox_testkit::controller::{Controller, service_account_kubeconfig};
use agent_sandbox_testkit::{cluster, crds, manifests, workspace_root};

const NAMESPACE: &str = "agent-sandbox-system";

#[tokio::test]
async fn sandbox_controller_runs_with_its_own_rbac() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let deploy = workspace_root().join("deploy/controller");
    for file in ["namespace.yaml", "service-account.yaml", "rbac.yaml"] {
        manifests::apply_file(&client, &deploy.join(file), NAMESPACE).await?;
    }
    let kubeconfig = workspace_root().join("target/e2e-logs/controller-sa.kubeconfig");
    std::fs::create_dir_all(workspace_root().join("target/e2e-logs"))?;
    service_account_kubeconfig(
        &client,
        &cluster::kubeconfig_path(),
        NAMESPACE,
        "agent-sandbox-controller",
        &kubeconfig,
    )
    .await?;
    let mut controller = Controller::start(
        "sandbox-controller-sa",
        &kubeconfig,
        &[
            "--leader-elect=true",
            "--leader-election-namespace=agent-sandbox-system",
        ],
    )?;
    let mut results = common::run_all("rbac", cluster::kubeconfig_path()).await;
    results.push(controller.ensure_running());
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
