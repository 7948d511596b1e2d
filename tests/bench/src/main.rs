//! `agent-sandbox-bench`: load scenarios against a controller on the local control plane, reporting
//! client-side and controller-side latency, throughput, API requests per object and controller cost.
//! Run it through `cargo xtask bench <scenario>` (docs/benchmarks.md).

mod apiserver;
mod context;
mod controller;
mod load;
mod measure;
mod prom;
mod report;
mod scenarios;
mod stats;
mod sysinfo;
mod tracker;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::context::Bench;
use crate::controller::{ControllerSpec, PLACEHOLDERS, default_command};
use crate::report::{Report, RunReport, ratios};
use crate::scenarios::{claims, cold, exec, refill, scale};

/// Environment variable naming the controller binary (xtask sets it to the build it made).
const BINARY_ENV: &str = agent_sandbox_testkit::controller::BINARY_ENV;

#[derive(Parser)]
#[command(
    name = "agent-sandbox-bench",
    about = "Benchmarks of agent-sandbox controllers on the local control plane"
)]
struct Cli {
    /// Controller under test, as a shell command template (placeholders: {kubeconfig} {metrics_addr}
    /// {health_addr} {metrics_port} {health_port}). Default: our binary ($AGENT_SANDBOX_CONTROLLER_BIN).
    #[arg(long, global = true)]
    controller_cmd: Option<String>,
    /// A second controller command: run both alternately and print other/ours ratios.
    #[arg(long, global = true)]
    compare: Option<String>,
    /// Runs of each controller (alternating with --compare).
    #[arg(long, global = true, default_value_t = 1)]
    rounds: usize,
    /// Where the JSON (<scenario>.json) and controller logs go.
    #[arg(long, global = true, default_value = "target/bench")]
    out_dir: PathBuf,
    /// Cargo profile of the controller build, recorded in the report (xtask sets it).
    #[arg(long, global = true, default_value = "unknown")]
    controller_build: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Sandboxes without a pool: create → Ready.
    Cold(cold::Args),
    /// Many Sandboxes: convergence, controller memory, re-list after a restart.
    Scale(scale::Args),
    /// Claims at a steady rate against a filled pool (upstream's kwok gate shape).
    ClaimsBurst(claims::BurstArgs),
    /// A sweep of claim rates until p99 exceeds a limit.
    ClaimsRate(claims::RateArgs),
    /// Claims released together against a ready pool of the same size.
    ClaimsSimultaneous(claims::SimultaneousArgs),
    /// A warm pool scaled from 0 to N.
    Refill(refill::Args),
    /// Real gVisor sandboxes: claim → first command output through the router, and the router's cost.
    Exec(exec::Args),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Self::Cold(_) => "cold",
            Self::Scale(_) => "scale",
            Self::ClaimsBurst(_) => "claims-burst",
            Self::ClaimsRate(_) => "claims-rate",
            Self::ClaimsSimultaneous(_) => "claims-simultaneous",
            Self::Refill(_) => "refill",
            Self::Exec(_) => "exec",
        }
    }

    fn params(&self) -> serde_json::Result<serde_json::Value> {
        match self {
            Self::Cold(a) => serde_json::to_value(a),
            Self::Scale(a) => serde_json::to_value(a),
            Self::ClaimsBurst(a) => serde_json::to_value(a),
            Self::ClaimsRate(a) => serde_json::to_value(a),
            Self::ClaimsSimultaneous(a) => serde_json::to_value(a),
            Self::Refill(a) => serde_json::to_value(a),
            Self::Exec(a) => serde_json::to_value(a),
        }
    }

    async fn run(&self, bench: &Bench, spec: &ControllerSpec) -> anyhow::Result<RunReport> {
        match self {
            Self::Cold(a) => cold::run(bench, spec, a).await,
            Self::Scale(a) => scale::run(bench, spec, a).await,
            Self::ClaimsBurst(a) => claims::burst(bench, spec, a).await,
            Self::ClaimsRate(a) => claims::rate(bench, spec, a).await,
            Self::ClaimsSimultaneous(a) => claims::simultaneous(bench, spec, a).await,
            Self::Refill(a) => refill::run(bench, spec, a).await,
            Self::Exec(a) => exec::run(bench, spec, a).await,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One line with its causes, whatever RUST_BACKTRACE says.
    run().await.map_or_else(
        |error| {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        },
        |()| std::process::ExitCode::SUCCESS,
    )
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ours = ControllerSpec {
        label: "ours".into(),
        command: match &cli.controller_cmd {
            Some(cmd) => cmd.clone(),
            None => default_command(&agent_sandbox_testkit::controller::binary().with_context(
                || format!("no --controller-cmd and no controller binary (set {BINARY_ENV}); placeholders: {PLACEHOLDERS}"),
            )?),
        },
    };
    let mut specs = vec![ours];
    if let Some(cmd) = &cli.compare {
        specs.push(ControllerSpec {
            label: "other".into(),
            command: cmd.clone(),
        });
    }
    let machine = sysinfo::machine();
    // Absolute: the controller's kubeconfig names its certificate files, relative to the kubeconfig.
    let out_dir = std::path::absolute(&cli.out_dir).context("resolving --out-dir")?;
    let bench = Bench::connect(out_dir.clone()).await?;
    let mut runs = Vec::new();
    for round in 0..cli.rounds.max(1) {
        for spec in &specs {
            eprintln!(
                "[bench] {} round {} with {}: {}",
                cli.scenario.name(),
                round + 1,
                spec.label,
                spec.command
            );
            runs.push(cli.scenario.run(&bench, spec).await?);
        }
    }
    let comparison = if specs.len() > 1 {
        ratios(&runs, "ours", "other")
    } else {
        Vec::new()
    };
    let report = Report {
        scenario: cli.scenario.name().to_string(),
        machine,
        params: cli.scenario.params().context("recording the parameters")?,
        controller_build: cli.controller_build.clone(),
        runs,
        comparison,
    };
    let path = out_dir.join(format!("{}.json", report.scenario));
    report.write(&path)?;
    print!("{}", report.table());
    println!("written: {}", path.display());
    Ok(())
}
