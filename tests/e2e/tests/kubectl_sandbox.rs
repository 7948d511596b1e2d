//! `kubectl sandbox` (bins/kubectl-sandbox) driven like a user drives it: through kubectl's plugin
//! mechanism (`kubectl sandbox …` finds `kubectl-sandbox` on PATH), against a gVisor warm pool of the
//! python-runtime template on the real node, reaching sandboxes the default way (a port-forward to
//! the router in the cluster). One test per scenario (kubectl_sandbox_support).

mod kubectl_sandbox_support;
// Shared with the real_node, router, SDK and client suites; this one needs the controller scenario
// runner, the pool helpers, the router's kubeconfig and the runtime template.
#[allow(dead_code)]
mod real_node_support;
#[allow(dead_code)]
mod router_support;
mod runtime_support;

use kubectl_sandbox_support as scenarios;
use real_node_support::run;

#[tokio::test]
async fn claim_waits_and_ls_shows_the_claim() -> anyhow::Result<()> {
    run("cli-claim", scenarios::claim_waits_and_ls_shows_the_claim).await
}

#[tokio::test]
async fn exec_streams_output_and_passes_the_exit_code_on() -> anyhow::Result<()> {
    run(
        "cli-exec",
        scenarios::exec_streams_output_and_passes_the_exit_code_on,
    )
    .await
}

#[tokio::test]
async fn cp_copies_a_file_both_ways() -> anyhow::Result<()> {
    run("cli-cp", scenarios::cp_copies_a_file_both_ways).await
}

#[tokio::test]
async fn suspend_resume_logs_and_rm() -> anyhow::Result<()> {
    run("cli-lifecycle", scenarios::suspend_resume_logs_and_rm).await
}

#[tokio::test]
async fn errors_are_one_line_and_fail_the_command() -> anyhow::Result<()> {
    run(
        "cli-errors",
        scenarios::errors_are_one_line_and_fail_the_command,
    )
    .await
}
