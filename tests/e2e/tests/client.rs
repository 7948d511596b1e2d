//! Our Rust client (`agent-sandbox-client`) drives claims of a gVisor warm pool on the real node
//! through our router and runtime: one test per scenario (client_support).

mod client_support;
// Shared with the real_node, router and SDK suites, which use all of them; this one needs the
// controller scenario runner, the pool helpers, the router's kubeconfig and the runtime template.
#[allow(dead_code)]
mod real_node_support;
#[allow(dead_code)]
mod router_support;
mod runtime_support;

use client_support as scenarios;
use real_node_support::run;

#[tokio::test]
async fn claim_from_the_warm_pool_runs_python() -> anyhow::Result<()> {
    run(
        "client-claim",
        scenarios::claim_from_the_warm_pool_runs_python,
    )
    .await
}

#[tokio::test]
async fn a_failing_command_reports_its_exit_code_and_stderr() -> anyhow::Result<()> {
    run(
        "client-failing",
        scenarios::a_failing_command_reports_its_exit_code_and_stderr,
    )
    .await
}

#[tokio::test]
async fn env_and_cwd_run_over_grpc() -> anyhow::Result<()> {
    run("client-grpc", scenarios::env_and_cwd_run_over_grpc).await
}

#[tokio::test]
async fn a_timed_out_command_is_killed_and_reported() -> anyhow::Result<()> {
    run(
        "client-timeout",
        scenarios::a_timed_out_command_is_killed_and_reported,
    )
    .await
}

#[tokio::test]
async fn streamed_output_arrives_in_order_before_the_exit() -> anyhow::Result<()> {
    run(
        "client-stream",
        scenarios::streamed_output_arrives_in_order_before_the_exit,
    )
    .await
}

#[tokio::test]
async fn files_of_4_mib_round_trip() -> anyhow::Result<()> {
    run("client-files", scenarios::files_of_4_mib_round_trip).await
}

#[tokio::test]
async fn the_port_forward_connection_reaches_the_in_cluster_router() -> anyhow::Result<()> {
    run(
        "client-port-forward",
        scenarios::the_port_forward_connection_reaches_the_in_cluster_router,
    )
    .await
}

#[tokio::test]
async fn the_direct_connection_reaches_the_pod() -> anyhow::Result<()> {
    run(
        "client-direct",
        scenarios::the_direct_connection_reaches_the_pod,
    )
    .await
}

#[tokio::test]
async fn a_missing_warm_pool_fails_with_a_typed_error() -> anyhow::Result<()> {
    run(
        "client-missing-pool",
        scenarios::a_missing_warm_pool_fails_with_a_typed_error,
    )
    .await
}

#[tokio::test]
async fn delete_removes_the_claim() -> anyhow::Result<()> {
    run("client-delete", scenarios::delete_removes_the_claim).await
}

#[tokio::test]
async fn suspend_and_resume() -> anyhow::Result<()> {
    run("client-suspend", scenarios::suspend_and_resume).await
}
