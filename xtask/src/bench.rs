//! `cargo xtask bench <scenario> [flags]`: builds the controller and the bench (release unless `--dev`),
//! starts or reuses the local control plane and runs `agent-sandbox-bench` (tests/bench) against it.
//! [`smoke`] is the tiny run `cargo xtask test` makes to prove the harness (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cluster::{self, UpOutcome};
use crate::workspace::{cargo, root, run as run_cmd};

const BENCH_PACKAGE: &str = "agent-sandbox-bench";
const CONTROLLER_PACKAGE: &str = "agent-sandbox-controller";

/// Where the bench and the e2e suites look for the controller binary (tests/harness/src/controller.rs).
pub const CONTROLLER_BIN_ENV: &str = "AGENT_SANDBOX_CONTROLLER_BIN";
/// The router `exec` and the e2e suites run as a host process, and where they look for it
/// (tests/harness/src/router.rs).
pub const ROUTER_PACKAGE: &str = "agent-sandbox-router";
/// See [`ROUTER_PACKAGE`].
pub const ROUTER_BIN_ENV: &str = "AGENT_SANDBOX_ROUTER_BIN";

/// Flags of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Build with the dev profile instead of release (numbers from dev builds are not comparable).
    #[arg(long)]
    dev: bool,
    /// Number of kwok fake nodes if a cluster has to be started (the bench adds nodes as it needs).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Leave a cluster this command started running afterwards.
    #[arg(long)]
    keep_cluster: bool,
    /// The scenario and its flags, for agent-sandbox-bench: `cold --count 100`, `scale --count 10000`,
    /// `claims-burst`, `claims-rate`, `claims-simultaneous`, `refill`, `exec`; `--help` lists every flag.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    bench_args: Vec<String>,
}

/// Builds, brings the cluster up and runs the scenario.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let profile = if args.dev { "dev" } else { "release" };
    build(profile)?;
    let help = args.bench_args.iter().any(|a| a == "--help" || a == "-h");
    let outcome = if help {
        UpOutcome::Reused
    } else {
        // `cold --runtime-class …` and `exec` run real pods: only then does the cluster need its
        // real node.
        let real_node = args.bench_args.first().is_some_and(|s| s == "exec")
            || args
                .bench_args
                .iter()
                .any(|a| a.starts_with("--runtime-class"));
        cluster::up(args.nodes, real_node)?
    };
    // `exec` measures upstream's Python SDK too: its pinned venv, made before any measurement.
    let sdk_python = if !help && args.bench_args.first().is_some_and(|s| s == "exec") {
        Some(crate::sdk::ensure_python()?)
    } else {
        None
    };
    let result = run_bench(
        profile,
        &args.bench_args,
        &root().join("target/bench"),
        sdk_python.as_deref(),
    );
    if outcome == UpOutcome::Started && !args.keep_cluster {
        cluster::down()?;
    }
    result
}

/// Where cargo puts what it builds with `profile` (under `$CARGO_TARGET_DIR` when that is set).
pub fn profile_dir(profile: &str) -> PathBuf {
    crate::workspace::target_dir().join(if profile == "dev" { "debug" } else { profile })
}

/// The controller binary [`build`] makes with `profile`.
pub fn controller_binary(profile: &str) -> PathBuf {
    profile_dir(profile).join(CONTROLLER_PACKAGE)
}

/// Builds the controller, the router and the bench binary with `profile`.
pub fn build(profile: &str) -> anyhow::Result<()> {
    run_cmd(cargo().args([
        "build",
        "--profile",
        profile,
        "--package",
        CONTROLLER_PACKAGE,
        "--package",
        ROUTER_PACKAGE,
        "--package",
        BENCH_PACKAGE,
    ]))
}

fn run_bench(
    profile: &str,
    bench_args: &[String],
    out_dir: &Path,
    sdk_python: Option<&Path>,
) -> anyhow::Result<()> {
    let dir = profile_dir(profile);
    let mut bench = Command::new(dir.join(BENCH_PACKAGE));
    if let Some(python) = sdk_python {
        bench.env(crate::sdk::PYTHON_ENV, python);
    }
    run_cmd(
        bench
            .current_dir(root())
            .args(bench_args)
            .arg("--controller-build")
            .arg(profile)
            .arg("--out-dir")
            .arg(out_dir)
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .env(CONTROLLER_BIN_ENV, controller_binary(profile))
            .env(ROUTER_BIN_ENV, profile_dir(profile).join(ROUTER_PACKAGE)),
    )
}

/// The tiny runs `cargo xtask test` makes on its (running) cluster with dev builds: `cold` with 5
/// Sandboxes, `scale` with 20 and `claims-simultaneous` with 3 claims on a pool of 3; each must write
/// valid JSON with every field (the second argument is the object count). Nothing about time is
/// asserted.
pub fn smoke() -> anyhow::Result<()> {
    let out = root().join("target/bench/smoke");
    let runs: [(&str, &[&str]); 3] = [
        ("cold", &["cold", "--count", "5", "--rate", "0"]),
        ("scale", &["scale", "--count", "20"]),
        (
            "claims-simultaneous",
            &["claims-simultaneous", "--claims", "3", "--pool", "3"],
        ),
    ];
    for (scenario, bench_args) in runs {
        let args: Vec<String> = bench_args.iter().map(ToString::to_string).collect();
        run_bench("dev", &args, &out, None)?;
        let path = out.join(format!("{scenario}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let count: u64 = bench_args[2].parse()?;
        check_report(&json, scenario, count)
            .with_context(|| format!("{} is not a complete report", path.display()))?;
    }
    Ok(())
}

/// The fields every report must have (docs/benchmarks.md, "Output").
fn check_report(json: &Value, scenario: &str, count: u64) -> anyhow::Result<()> {
    let get = |v: &Value, path: &str| -> anyhow::Result<Value> {
        path.split('.')
            .try_fold(v, |v, k| v.get(k))
            .cloned()
            .with_context(|| format!("missing {path}"))
    };
    if get(json, "scenario")? != scenario {
        bail!("scenario is not {scenario}");
    }
    for f in ["nproc", "ram_bytes", "kernel", "git_commit"] {
        get(json, &format!("machine.{f}"))?;
    }
    let phases = get(json, "runs")?
        .get(0)
        .and_then(|r| r.get("phases"))
        .and_then(Value::as_array)
        .cloned()
        .context("no runs[0].phases")?;
    if phases.is_empty() {
        bail!("no phases");
    }
    for p in &phases {
        for f in [
            "client_latency.p50_ms",
            "client_latency.p90_ms",
            "client_latency.p99_ms",
            "client_latency.max_ms",
            "throughput_per_s",
            "duration_s",
            "controller_latency",
            "api.controller_requests",
            "api.controller_requests_per_object",
            "controller_process.cpu_seconds",
            "controller_process.peak_rss_bytes",
        ] {
            get(p, f)?;
        }
        if get(p, "objects")?.as_u64() != Some(count) {
            bail!("phase objects is not {count}");
        }
        if get(p, "controller_process.peak_rss_bytes")?.as_u64() == Some(0) {
            bail!("peak RSS is 0: the controller process was not sampled");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_report_missing_a_field_is_refused() {
        let phase = json!({"objects": 5, "duration_s": 1.0, "throughput_per_s": 5.0,
            "client_latency": {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0},
            "controller_latency": {}, "api": {"controller_requests": 9.0, "controller_requests_per_object": 1.8},
            "controller_process": {"cpu_seconds": 0.1, "peak_rss_bytes": 1000}});
        let report = json!({"scenario": "cold", "runs": [{"phases": [phase]}],
            "machine": {"nproc": 2, "ram_bytes": 1, "kernel": "6", "git_commit": "abc"}});
        assert!(check_report(&report, "cold", 5).is_ok());
        assert!(check_report(&report, "cold", 6).is_err());
        assert!(check_report(&report, "scale", 5).is_err());
        let mut broken = report.clone();
        broken["runs"][0]["phases"][0]["api"] = json!({});
        assert!(check_report(&broken, "cold", 5).is_err());
    }
}
