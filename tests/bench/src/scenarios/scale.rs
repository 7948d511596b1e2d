//! `scale`: many Sandboxes: time to converge, controller memory, and the re-list after a restart
//! (P5/P6 of e2e-and-performance.md §5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::objects::sandbox;
use super::phase::{CreatePhase, create_phase, default_timeout};
use crate::context::{Bench, sandbox_resource};
use crate::controller::{ControllerSpec, RunningController};
use crate::load::Pace;
use crate::measure::{Observed, Window};
use crate::report::RunReport;
use crate::stats::round;

/// Flags of `scale`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Sandboxes to create.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Concurrent create calls (creates are unpaced).
    #[arg(long, default_value_t = 32)]
    pub max_in_flight: usize,
    /// Skip the restart phase.
    #[arg(long)]
    pub no_restart: bool,
    /// Seconds to wait for convergence (default: 60 + count / 10).
    #[arg(long)]
    pub timeout_s: Option<u64>,
}

/// Runs `scale` once against `spec`.
pub async fn run(bench: &Bench, spec: &ControllerSpec, args: &Args) -> anyhow::Result<RunReport> {
    bench.ensure_capacity(args.count).await?;
    let (controller, _) = bench.start_controller(spec, "scale").await?;
    let namespace = bench.namespace("scale").await?;
    let timeout = args
        .timeout_s
        .map_or_else(|| default_timeout(args.count), Duration::from_secs);
    let result = phases(bench, spec, args, controller, &namespace, timeout).await;
    let (controller, mut phases) = match result {
        Ok(x) => x,
        Err((controller, e)) => {
            let _ = bench.delete_namespace(&namespace, timeout).await;
            if let Some(c) = controller {
                let _ = c.stop().await;
            }
            return Err(e);
        }
    };
    let cleanup = bench.delete_namespace(&namespace, timeout).await?;
    if let Some(last) = phases.last_mut() {
        last.extra
            .insert("cleanup_s".into(), round(cleanup.as_secs_f64()));
    }
    controller.stop().await?;
    Ok(RunReport::new(spec, phases))
}

type Failed = (Option<RunningController>, anyhow::Error);

async fn phases(
    bench: &Bench,
    spec: &ControllerSpec,
    args: &Args,
    controller: RunningController,
    namespace: &str,
    timeout: Duration,
) -> Result<(RunningController, Vec<crate::report::Phase>), Failed> {
    let converge = create_phase(
        bench,
        &controller,
        CreatePhase {
            name: "converge".into(),
            resource: sandbox_resource(),
            namespace: namespace.to_string(),
            count: args.count,
            pace: Pace::Unpaced,
            max_in_flight: args.max_in_flight,
            timeout,
            first_ready: None,
            manifest: Arc::new(|i| sandbox(&format!("s-{i}"))),
        },
    )
    .await;
    let converge = match converge {
        Ok(p) => p,
        Err(e) => return Err((Some(controller), e)),
    };
    if args.no_restart {
        return Ok((controller, vec![converge]));
    }
    if let Err(e) = controller.stop().await {
        return Err((None, e));
    }
    match restart(bench, spec, args.count, timeout).await {
        Ok((c, p)) => Ok((c, vec![converge, p])),
        Err(e) => Err((None, e)),
    }
}

/// Starts the controller again over the converged Sandboxes: time until it is ready (every cache
/// listed), and until it has looked at every Sandbox once (its reconcile counter, if it has ours).
async fn restart(
    bench: &Bench,
    spec: &ControllerSpec,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<(RunningController, crate::report::Phase)> {
    let window = Window::start(&bench.client, None, bench.isolated).await?;
    let started = Instant::now();
    let (mut controller, _) = bench.start_controller(spec, "scale-restart").await?;
    let relist = started.elapsed();
    // The reconcile counter is the only outside sign that the startup pass is over; poll it.
    let mut resync = None;
    if controller
        .metrics()
        .await
        .has("agent_sandbox_reconciles_total")
    {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            controller.ensure_running()?;
            let done = controller
                .metrics()
                .await
                .sum("agent_sandbox_reconciles_total", &[]);
            if done >= count as f64 {
                resync = Some(started.elapsed());
                break;
            }
            if started.elapsed() > timeout {
                bail!(
                    "after the restart only {done} of {count} Sandboxes were reconciled within {}s",
                    timeout.as_secs()
                );
            }
        }
    }
    let observed = Observed {
        name: "restart",
        objects: count,
        latencies: &[],
        first: started,
        last: Instant::now(),
    };
    let mut phase = window.finish(&bench.client, &controller, observed).await?;
    phase.throughput_per_s = 0.0;
    phase
        .extra
        .insert("relist_s".into(), round(relist.as_secs_f64()));
    if let Some(r) = resync {
        phase
            .extra
            .insert("resync_s".into(), round(r.as_secs_f64()));
    }
    Ok((controller, phase))
}
