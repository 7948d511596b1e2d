//! Warm claims against a filled pool: `claims-burst` (P1), `claims-rate` (P2) and
//! `claims-simultaneous` (P3) of e2e-and-performance.md §5.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::{SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::fixtures;
use anyhow::{Context, bail};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::phase::{CreatePhase, create_phase, default_timeout};
use crate::context::{Bench, claim_resource, sandbox_resource};
use crate::controller::{ControllerSpec, RunningController};
use crate::load::Pace;
use crate::report::{Phase, RunReport};
use crate::stats::round;
use crate::tracker::ReadyTracker;

/// Names of the template and pool in each scenario namespace.
pub const TEMPLATE: &str = "bench-template";
/// The warm pool's name.
pub const POOL: &str = "bench-pool";

/// Said when nothing became Ready in time: the extension controllers may be missing.
const HINT: &str = "hint: the warm-pool and claim scenarios need the SandboxWarmPool and SandboxClaim \
controllers (issue 5) in the controller under test, run with --extensions";

/// Flags shared by the claim scenarios.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Common {
    /// Fail if not one object is Ready this many seconds after the first create (or the pool's creation).
    #[arg(long, default_value_t = 15)]
    pub first_ready_timeout_s: u64,
    /// Concurrent create calls at most.
    #[arg(long, default_value_t = 500)]
    pub max_in_flight: usize,
}

/// Flags of `claims-burst`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct BurstArgs {
    /// Warm pool size.
    #[arg(long, default_value_t = 1050)]
    pub pool: usize,
    /// Claims to create.
    #[arg(long, default_value_t = 750)]
    pub claims: usize,
    /// Claims per second.
    #[arg(long, default_value_t = 75.0)]
    pub rate: f64,
    #[command(flatten)]
    #[serde(flatten)]
    /// Shared flags.
    pub common: Common,
}

/// Flags of `claims-simultaneous`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct SimultaneousArgs {
    /// Warm pool size.
    #[arg(long, default_value_t = 300)]
    pub pool: usize,
    /// Claims released together.
    #[arg(long, default_value_t = 300)]
    pub claims: usize,
    #[command(flatten)]
    #[serde(flatten)]
    /// Shared flags.
    pub common: Common,
}

/// Flags of `claims-rate`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RateArgs {
    /// Claim rates to sweep, per second, in order.
    #[arg(long, value_delimiter = ',', default_values_t = [300.0, 1000.0, 2000.0])]
    pub rates: Vec<f64>,
    /// Seconds of load at each rate.
    #[arg(long, default_value_t = 5.0)]
    pub duration_s: f64,
    /// Stop the sweep after the first rate whose client-side p99 exceeds this.
    #[arg(long, default_value_t = 1000.0)]
    pub p99_limit_ms: f64,
    #[command(flatten)]
    #[serde(flatten)]
    /// Shared flags.
    pub common: Common,
}

/// Creates the template and a pool of `replicas` in `namespace` and waits until that many of its
/// Sandboxes are Ready; returns the time that took.
pub async fn fill_pool(
    bench: &Bench,
    namespace: &str,
    replicas: usize,
    first_ready: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let tracker = ReadyTracker::start(bench.api(&sandbox_resource(), namespace), None).await?;
    create_pool(bench, namespace, replicas).await?;
    if replicas == 0 {
        return Ok(Duration::ZERO);
    }
    tracker
        .wait_for(1, first_ready, "the first warm-pool Sandbox")
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{HINT}"))?;
    tracker
        .wait_for(replicas, default_timeout(replicas), "the warm pool to fill")
        .await?;
    Ok(started.elapsed())
}

/// Creates the template and the pool (`replicas` members) in `namespace`.
pub async fn create_pool(bench: &Bench, namespace: &str, replicas: usize) -> anyhow::Result<()> {
    let template = fixtures::template(TEMPLATE, json!({}))?;
    Api::<SandboxTemplate>::namespaced(bench.client.clone(), namespace)
        .create(&PostParams::default(), &template)
        .await
        .context("creating the SandboxTemplate (are the extension CRDs installed?)")?;
    let replicas = i32::try_from(replicas).context("pool size")?;
    let pool = fixtures::warm_pool(POOL, TEMPLATE, replicas, json!({}))?;
    Api::<SandboxWarmPool>::namespaced(bench.client.clone(), namespace)
        .create(&PostParams::default(), &pool)
        .await
        .context("creating the SandboxWarmPool")?;
    Ok(())
}

fn claim_phase(
    name: String,
    namespace: &str,
    count: usize,
    pace: Pace,
    common: &Common,
) -> CreatePhase {
    CreatePhase {
        name,
        resource: claim_resource(),
        namespace: namespace.to_string(),
        count,
        pace,
        max_in_flight: common.max_in_flight,
        timeout: default_timeout(count),
        first_ready: Some((
            Duration::from_secs(common.first_ready_timeout_s),
            HINT.to_string(),
        )),
        manifest: Arc::new(|i| {
            json!({
                "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                "kind": "SandboxClaim",
                "metadata": {"name": format!("claim-{i}")},
                "spec": {"warmPoolRef": {"name": POOL}},
            })
        }),
    }
}

/// One namespace, one filled pool, one claim phase; the namespace is deleted afterwards.
async fn pool_and_claims(
    bench: &Bench,
    controller: &RunningController,
    scenario: &str,
    pool: usize,
    phase: impl FnOnce(&str) -> CreatePhase,
    common: &Common,
) -> anyhow::Result<Phase> {
    bench.ensure_capacity(pool).await?;
    let namespace = bench.namespace(scenario).await?;
    let result = async {
        let fill = fill_pool(
            bench,
            &namespace,
            pool,
            Duration::from_secs(common.first_ready_timeout_s),
        )
        .await?;
        let mut p = create_phase(bench, controller, phase(&namespace)).await?;
        p.extra
            .insert("pool_fill_s".into(), round(fill.as_secs_f64()));
        p.extra.insert("pool".into(), pool as f64);
        anyhow::Ok(p)
    }
    .await;
    bench
        .delete_namespace(&namespace, default_timeout(pool))
        .await?;
    result
}

/// Runs `claims-burst` once.
pub async fn burst(
    bench: &Bench,
    spec: &ControllerSpec,
    args: &BurstArgs,
) -> anyhow::Result<RunReport> {
    one_phase(bench, spec, "claims-burst", args.pool, &args.common, |ns| {
        claim_phase(
            format!("burst-{}", args.rate),
            ns,
            args.claims,
            Pace::Rate(args.rate),
            &args.common,
        )
    })
    .await
}

/// Runs `claims-simultaneous` once.
pub async fn simultaneous(
    bench: &Bench,
    spec: &ControllerSpec,
    args: &SimultaneousArgs,
) -> anyhow::Result<RunReport> {
    let common = Common {
        max_in_flight: args.common.max_in_flight.max(args.claims),
        ..args.common.clone()
    };
    one_phase(
        bench,
        spec,
        "claims-simultaneous",
        args.pool,
        &common,
        |ns| {
            claim_phase(
                "simultaneous".into(),
                ns,
                args.claims,
                Pace::Unpaced,
                &common,
            )
        },
    )
    .await
}

/// A scenario of one pool-and-claims phase under its own controller.
async fn one_phase(
    bench: &Bench,
    spec: &ControllerSpec,
    scenario: &str,
    pool: usize,
    common: &Common,
    phase: impl FnOnce(&str) -> CreatePhase,
) -> anyhow::Result<RunReport> {
    let (controller, _) = bench.start_controller(spec, scenario).await?;
    let phase = pool_and_claims(bench, &controller, scenario, pool, phase, common).await;
    controller.stop().await?;
    Ok(RunReport::new(spec, vec![phase?]))
}

/// Runs `claims-rate` once: each rate on a fresh pool sized so it never empties, until p99 > the limit.
pub async fn rate(
    bench: &Bench,
    spec: &ControllerSpec,
    args: &RateArgs,
) -> anyhow::Result<RunReport> {
    if args.rates.iter().any(|r| *r <= 0.0) {
        bail!("--rates must be positive");
    }
    let (controller, _) = bench.start_controller(spec, "claims-rate").await?;
    let mut phases = Vec::new();
    let mut failure = None;
    for &rate in &args.rates {
        let claims = (rate * args.duration_s).ceil() as usize;
        let pool = claims + claims / 10 + 10;
        let phase = pool_and_claims(
            bench,
            &controller,
            "claims-rate",
            pool,
            |ns| {
                claim_phase(
                    format!("rate-{rate}"),
                    ns,
                    claims,
                    Pace::Rate(rate),
                    &args.common,
                )
            },
            &args.common,
        )
        .await;
        match phase {
            Ok(p) => {
                let over = p.client_latency.p99_ms > args.p99_limit_ms;
                phases.push(p);
                if over {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    controller.stop().await?;
    if let Some(e) = failure {
        if phases.is_empty() {
            return Err(e);
        }
        eprintln!("[bench] claims-rate stopped: {e:#}");
    }
    Ok(RunReport::new(spec, phases))
}
