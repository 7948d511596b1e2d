//! `cold`: Sandboxes without a pool, create → Ready (P7 of e2e-and-performance.md §5).

use std::sync::Arc;

use super::objects::{real_sandbox, sandbox};
use super::phase::{CreatePhase, create_phase, default_timeout};
use crate::context::{Bench, sandbox_resource};
use crate::controller::ControllerSpec;
use crate::load::Pace;
use crate::report::RunReport;

/// Flags of `cold`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Sandboxes to create.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Creates per second (0: all at once, bounded by --max-in-flight).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Concurrent create calls at most.
    #[arg(long, default_value_t = 100)]
    pub max_in_flight: usize,
    /// Seconds to wait for every Sandbox to be Ready (default: 60 + count / 10).
    #[arg(long)]
    pub timeout_s: Option<u64>,
    /// Run the Sandboxes for real on the local cluster's real node under this RuntimeClass
    /// (`gvisor` or `runc`) instead of on kwok fake nodes.
    #[arg(long, value_name = "CLASS")]
    pub runtime_class: Option<String>,
}

/// Runs `cold` once against `spec`.
pub async fn run(bench: &Bench, spec: &ControllerSpec, args: &Args) -> anyhow::Result<RunReport> {
    if args.runtime_class.is_none() {
        bench.ensure_capacity(args.count).await?;
    }
    let runtime_class = args.runtime_class.clone();
    let (controller, _) = bench.start_controller(spec, "cold").await?;
    let namespace = bench.namespace("cold").await?;
    let phase = create_phase(
        bench,
        &controller,
        CreatePhase {
            name: "create".into(),
            resource: sandbox_resource(),
            namespace: namespace.clone(),
            count: args.count,
            pace: if args.rate > 0.0 {
                Pace::Rate(args.rate)
            } else {
                Pace::Unpaced
            },
            max_in_flight: args.max_in_flight,
            timeout: args.timeout_s.map_or_else(
                || default_timeout(args.count),
                std::time::Duration::from_secs,
            ),
            first_ready: None,
            manifest: Arc::new(move |i| {
                let name = format!("cold-{i}");
                match &runtime_class {
                    Some(class) => real_sandbox(&name, class),
                    None => sandbox(&name),
                }
            }),
        },
    )
    .await;
    bench
        .delete_namespace(&namespace, default_timeout(args.count))
        .await?;
    controller.stop().await?;
    Ok(RunReport::new(spec, vec![phase?]))
}
