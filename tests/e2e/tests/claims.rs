//! The SandboxClaim controller (run with `--extensions`) against the local control plane.

mod claim_support;

use agent_sandbox_testkit::controller::Controller;
use agent_sandbox_testkit::{TestEnv, cluster, crds};

use claim_support::{cold, warm};

/// Cold starts, the claim lifecycle and warm adoption from pools the SandboxWarmPool controller
/// fills, all served by one controller (two at once would race each other without leader election).
#[tokio::test]
async fn claim_scenarios() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    crds::install(&client).await?;
    let kubeconfig = cluster::kubeconfig_path();
    let mut controller = Controller::start("claim-controller", &kubeconfig, &["--extensions"])?;
    let mut results: Vec<_> = futures::future::join_all([
        Box::pin(TestEnv::run("claim-cold", cold::cold_claims)) as claim_support::Scenario,
        Box::pin(TestEnv::run("claim-ttl", cold::ttl_after_the_pod_finishes)),
        Box::pin(TestEnv::run(
            "claim-earlier",
            cold::earlier_of_ttl_and_shutdown_time_wins,
        )),
        Box::pin(TestEnv::run("claim-foreground", cold::delete_foreground)),
        Box::pin(TestEnv::run(
            "claim-fqdn",
            cold::service_fqdn_and_claim_uid_reach_the_claim_and_pod,
        )),
        Box::pin(TestEnv::run(
            "claim-invalid",
            cold::invalid_configuration_reaches_the_claim,
        )),
    ])
    .await;
    // The warm scenarios measure a burst each: run them one after the other.
    results.push(
        TestEnv::run("claim-pool25", |env| {
            warm::claims_against_a_pool(env, 25, 20)
        })
        .await,
    );
    results.push(TestEnv::run("claim-pool5", |env| warm::claims_against_a_pool(env, 5, 20)).await);
    results.push(TestEnv::run("claim-race", warm::two_hundred_claims_race_for_fifty).await);
    results.push(controller.ensure_running());
    results.push(controller.stop().await);
    if results.iter().any(Result::is_err) {
        eprintln!("controller log (tail):\n{}", controller.tail(80));
    }
    results.into_iter().collect()
}
