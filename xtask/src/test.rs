//! `cargo xtask test`: the one command that runs every test of the project: the unit and property
//! tests of every crate, then the end-to-end suites against the local control plane
//! (built or reused, started or reused; stopped again if this command started it), then tiny runs of
//! the benchmark harness.

use std::time::Instant;

use crate::cluster::{self, UpOutcome};
use crate::workspace::{self, cargo, run as run_cmd};

/// The crate holding the end-to-end suites; it needs a cluster.
const E2E_PACKAGE: &str = "agent-sandbox-e2e";

/// The controller binary the suites run as a process.
const CONTROLLER_PACKAGE: &str = "agent-sandbox-controller";

/// Where the suites look for that binary (tests/harness/src/controller.rs).
const CONTROLLER_BIN_ENV: &str = "AGENT_SANDBOX_CONTROLLER_BIN";

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only the unit and property tests (no cluster, no end-to-end suites).
    #[arg(long)]
    unit_only: bool,
    /// Leave a cluster this command started running afterwards (for reruns and debugging).
    #[arg(long)]
    keep_cluster: bool,
    /// Number of kwok fake nodes if a cluster has to be started.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

/// Runs the unit tests, then (unless `--unit-only`) the end-to-end suites.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    run_cmd(cargo().args([
        "test",
        "--workspace",
        "--all-targets",
        "--exclude",
        E2E_PACKAGE,
    ]))?;
    eprintln!(
        "[test] unit and property tests passed ({}s)",
        started.elapsed().as_secs()
    );
    if args.unit_only {
        eprintln!("[test] --unit-only: the end-to-end suites were NOT run");
        return Ok(());
    }

    // The suites start the real controller binary and call our kubectl; the bench smoke runs need both.
    crate::bench::build("dev")?;
    let controller = workspace::root()
        .join("target/debug")
        .join(CONTROLLER_PACKAGE);
    let outcome = cluster::up(args.nodes)?;
    let path = std::env::join_paths(std::iter::once(cluster::bin_dir()?).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let e2e_started = Instant::now();
    let result = run_cmd(
        cargo()
            .args(["test", "--package", E2E_PACKAGE, "--all-targets"])
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .env(CONTROLLER_BIN_ENV, &controller)
            .env("PATH", path),
    );
    eprintln!(
        "[test] end-to-end suites {} in {}s",
        if result.is_ok() { "passed" } else { "FAILED" },
        e2e_started.elapsed().as_secs()
    );
    // Benchmarks are not tests: one tiny run of each scenario that needs no extension controller
    // proves the harness still produces complete reports; nothing about time is asserted.
    let result = result.and_then(|()| {
        let bench_started = Instant::now();
        crate::bench::smoke()?;
        eprintln!(
            "[test] benchmark harness smoke runs passed in {}s",
            bench_started.elapsed().as_secs()
        );
        Ok(())
    });
    if result.is_err() {
        cluster::keep_logs_of_failure();
    }
    if outcome == UpOutcome::Started && !args.keep_cluster {
        cluster::down()?;
    }
    result?;
    eprintln!(
        "[test] all tests passed in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}
