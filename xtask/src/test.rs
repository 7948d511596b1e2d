//! `cargo xtask test`: the one command that runs every test of the project: the module-structure
//! check (`cargo xtask imports`), the unit and property tests of every crate, then the end-to-end
//! suites against the local control plane (built or reused, started or reused; stopped again if this
//! command started it), then tiny runs of the benchmark harness.

use std::time::Instant;

use crate::bench::{
    CONTROLLER_BIN_ENV, ROUTER_BIN_ENV, ROUTER_PACKAGE, controller_binary, profile_dir,
};
use crate::cluster::{self, UpOutcome};
use crate::workspace::{self, cargo, run as run_cmd};

/// The crate holding the end-to-end suites; it needs a cluster.
const E2E_PACKAGE: &str = "agent-sandbox-e2e";

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
    /// Start no real node and skip the suites that need one (`real_node`, `router`, `sdk`,
    /// `client`, `install`).
    #[arg(long)]
    no_real_node: bool,
}

/// The suites that need the real node (tests/e2e/tests/real_node.rs, router.rs, sdk.rs,
/// client.rs, kubectl_sandbox.rs, install.rs).
const REAL_NODE_SUITES: [&str; 6] = [
    "real_node",
    "router",
    "sdk",
    "client",
    "kubectl_sandbox",
    "install",
];

/// The suite run a second time against the controller of the default install in the cluster.
const IN_CLUSTER_SUITE: &str = "real_node";
/// What tells that suite to use the in-cluster controller (tests/e2e/tests/real_node_support).
const IN_CLUSTER_CONTROLLER_ENV: &str = "AGENT_SANDBOX_E2E_IN_CLUSTER_CONTROLLER";
/// The default install's controller and router with the local images.
const INSTALL_OVERLAY: &str = "deploy/local-cluster/install";

/// Checks the module structure, runs the unit tests, then (unless `--unit-only`) the end-to-end suites.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::imports::check_workspace()?;
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
    libraries()?;
    if args.unit_only {
        eprintln!("[test] --unit-only: the end-to-end suites were NOT run");
        return Ok(());
    }

    // The suites start the real controller and router binaries and call our kubectl; the bench
    // smoke runs need the controller and the bench (one build makes all three).
    crate::bench::build("dev")?;
    // The embedding examples and the kubectl plugin, which their suites run as users would.
    run_cmd(cargo().args([
        "build",
        "--package",
        "embedded-operator",
        "--package",
        "sandbox-planner",
        "--package",
        "kubectl-sandbox",
    ]))?;
    // The SDK suite's venv (upstream's pinned Python SDK), made before the cluster starts.
    let sdk_python = if args.no_real_node {
        None
    } else {
        Some(crate::sdk::ensure_python()?)
    };
    // A cluster this command starts must leave the machine as it found it: compare before and after.
    let before = cluster::residue::Snapshot::take();
    let outcome = cluster::up(args.nodes, !args.no_real_node)?;
    let result = end_to_end(args, sdk_python.as_deref()).and_then(|()| bench_smoke());
    if result.is_err() {
        cluster::keep_logs_of_failure();
    }
    if outcome == UpOutcome::Started && !args.keep_cluster {
        cluster::down()?;
        if result.is_ok() {
            before.compare(&cluster::residue::Snapshot::take())?;
            eprintln!(
                "[test] cluster down left the machine as it was (sysctls, iptables, links, mounts, \
             cgroups, processes)"
            );
        }
    }
    result?;
    eprintln!(
        "[test] all tests passed in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// The crates other operators embed (docs/embedding.md).
const LIBRARY_CRATES: [&str; 7] = [
    "agent-sandbox-api",
    "agent-sandbox-client",
    "agent-sandbox-core",
    "agent-sandbox-warmpool",
    "agent-sandbox-kube",
    "agent-sandbox-webhook",
    "agent-sandbox-migrate",
];

/// What embedding needs of the library crates: docs without warnings (every public item documented,
/// no broken link), their examples compiling and passing, and a package that builds from its own
/// sources (`cargo package` verifies each with a lockfile of its own).
fn libraries() -> anyhow::Result<()> {
    let started = Instant::now();
    let packages: Vec<&str> = LIBRARY_CRATES
        .iter()
        .flat_map(|package| ["--package", *package])
        .collect();
    run_cmd(
        cargo()
            .args(["doc", "--no-deps"])
            .args(&packages)
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    run_cmd(cargo().args(["test", "--doc"]).args(&packages))?;
    run_cmd(cargo().args(["package", "--allow-dirty"]).args(&packages))?;
    eprintln!(
        "[test] library crates: docs, doc examples and packages passed ({}s)",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// The end-to-end suites against the running cluster, with our kubectl first on PATH.
fn end_to_end(args: &Args, sdk_python: Option<&std::path::Path>) -> anyhow::Result<()> {
    let path = std::env::join_paths(std::iter::once(cluster::bin_dir()?).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let started = Instant::now();
    let mut e2e = cargo();
    e2e.args(["test", "--package", E2E_PACKAGE]);
    if args.no_real_node {
        e2e.args(e2e_targets_except(&REAL_NODE_SUITES)?);
        eprintln!(
            "[test] --no-real-node: the {} suites are NOT run",
            REAL_NODE_SUITES.join(" and ")
        );
    } else {
        e2e.arg("--all-targets");
    }
    if let Some(python) = sdk_python {
        e2e.env(crate::sdk::PYTHON_ENV, python);
    }
    let result = run_cmd(
        e2e.env("KUBECONFIG", cluster::kubeconfig_path())
            .env(CONTROLLER_BIN_ENV, controller_binary("dev"))
            .env(ROUTER_BIN_ENV, profile_dir("dev").join(ROUTER_PACKAGE))
            .env("PATH", &path),
    );
    eprintln!(
        "[test] end-to-end suites {} in {}s",
        if result.is_ok() { "passed" } else { "FAILED" },
        started.elapsed().as_secs()
    );
    result?;
    if args.no_real_node {
        return Ok(());
    }
    in_cluster_pass(&path)
}

/// The real-node suite again, with the controller the platform team installs: deploy/controller
/// and deploy/router running in the cluster from the locally built images, instead of a host
/// process per scenario. The install is removed afterwards whatever the outcome: an in-cluster
/// controller acts on every namespace.
fn in_cluster_pass(path: &std::ffi::OsStr) -> anyhow::Result<()> {
    let started = Instant::now();
    let kubectl = |args: &[&str]| {
        let mut cmd = std::process::Command::new(cluster::bin_dir()?.join("kubectl"));
        cmd.arg("--kubeconfig")
            .arg(cluster::kubeconfig_path())
            .args(args)
            .current_dir(workspace::root());
        run_cmd(&mut cmd)
    };
    eprintln!(
        "[test] the {IN_CLUSTER_SUITE} suite against the controller installed in the cluster ({INSTALL_OVERLAY})"
    );
    let result = kubectl(&["apply", "--kustomize", INSTALL_OVERLAY])
        .and_then(|()| {
            kubectl(&[
                "rollout",
                "status",
                "deployment/agent-sandbox-controller",
                "--namespace",
                "agent-sandbox-system",
                "--timeout=180s",
            ])
        })
        .and_then(|()| {
            run_cmd(
                cargo()
                    .args(["test", "--package", E2E_PACKAGE, "--test", IN_CLUSTER_SUITE])
                    .env("KUBECONFIG", cluster::kubeconfig_path())
                    .env(IN_CLUSTER_CONTROLLER_ENV, "1")
                    .env("PATH", path),
            )
        });
    if result.is_err() {
        let _ = kubectl(&[
            "logs",
            "--namespace",
            "agent-sandbox-system",
            "--selector=app.kubernetes.io/component=controller",
            "--prefix",
            "--tail=80",
        ]);
    }
    let removed = kubectl(&[
        "delete",
        "--kustomize",
        INSTALL_OVERLAY,
        "--ignore-not-found",
        "--wait",
    ]);
    eprintln!(
        "[test] {IN_CLUSTER_SUITE} against the in-cluster controller {} in {}s",
        if result.is_ok() { "passed" } else { "FAILED" },
        started.elapsed().as_secs()
    );
    result.and(removed)
}

/// Benchmarks are not tests: one tiny run of each scenario that needs no extension controller
/// proves the harness still produces complete reports; nothing about time is asserted.
fn bench_smoke() -> anyhow::Result<()> {
    let started = Instant::now();
    crate::bench::smoke()?;
    eprintln!(
        "[test] benchmark harness smoke runs passed in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// `--test NAME` for every test target of the e2e package but those in `skip`.
fn e2e_targets_except(skip: &[&str]) -> anyhow::Result<Vec<String>> {
    let dir = workspace::root().join("tests/e2e/tests");
    let mut args = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let is_target = path.extension().is_some_and(|e| e == "rs");
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            && is_target
            && !skip.contains(&stem)
        {
            args.extend(["--test".to_string(), stem.to_string()]);
        }
    }
    Ok(args)
}
