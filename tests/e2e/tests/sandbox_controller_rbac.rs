//! The Sandbox controller run as its own ServiceAccount with the RBAC from deploy/ (and leader election
//! on): proves the ClusterRole grants everything the controller calls.

mod common;

use agent_sandbox_testkit::controller::{Controller, install_service_account};
use agent_sandbox_testkit::wait::wait_for_object;
use agent_sandbox_testkit::{cluster, crds};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use agent_sandbox_testkit::controller::SYSTEM_NAMESPACE as NAMESPACE;

use common::TIMEOUT;

#[tokio::test]
async fn sandbox_controller_runs_with_its_own_rbac() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let kubeconfig =
        install_service_account(&client, &["controller/rbac.yaml"], "controller-sa").await?;
    // A lease of its own: a lease left behind by an earlier, killed run must not delay this one.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let lease = format!("e2e-{}", now.as_millis());
    let lease_flag = format!("--leader-election-id={lease}");
    let mut controller = Controller::start(
        "sandbox-controller-sa",
        &kubeconfig,
        &[
            "--leader-elect=true",
            "--leader-election-namespace=agent-sandbox-system",
            &lease_flag,
        ],
    )?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let holder = |l: Option<&Lease>| {
        let spec = l.and_then(|l| l.spec.as_ref());
        spec.and_then(|s| s.holder_identity.as_ref())
            .is_some_and(|h| !h.is_empty())
    };
    wait_for_object(
        &leases,
        &lease,
        "the controller to take its lease",
        TIMEOUT,
        holder,
    )
    .await?;
    let mut results = common::run_all("rbac").await;
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
