//! A measurement window: snapshots of the controller's metrics and /proc and of the API server's
//! metrics at the start of a phase, turned into a [`Phase`] at its end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Client;

use crate::apiserver::{self, ApiUsage};
use crate::controller::RunningController;
use crate::prom::{HistogramSummary, Scrape};
use crate::report::{Phase, ProcessUsage};
use crate::stats::{Latency, round};
use crate::sysinfo::ProcSample;

/// Controller histograms reported when present: ours, upstream's names, controller-runtime's.
const HISTOGRAMS: [&str; 7] = [
    "agent_sandbox_claim_ready_seconds",
    "agent_sandbox_claim_controller_startup_latency_ms",
    "agent_sandbox_claim_startup_latency_ms",
    "agent_sandbox_creation_latency_ms",
    "agent_sandbox_reconcile_duration_seconds",
    "controller_runtime_reconcile_time_seconds",
    "agent_sandbox_client_claim_startup_latency_ms",
];

/// What a phase did, for [`Window::finish`].
pub struct Observed<'a> {
    /// Phase name in the report.
    pub name: &'a str,
    /// How many objects the phase is about.
    pub objects: usize,
    /// The per-object client-side latencies.
    pub latencies: &'a [Duration],
    /// The first create (or scale) call.
    pub first: Instant,
    /// The last Ready seen.
    pub last: Instant,
}

/// Snapshots taken when a phase starts.
pub struct Window {
    controller: Scrape,
    proc: ProcSample,
    apiserver: Scrape,
    isolated: bool,
}

impl Window {
    /// Starts a window. `controller` None means the process under test starts within the window (its
    /// counters begin at zero).
    pub async fn start(
        client: &Client,
        controller: Option<&RunningController>,
        isolated: bool,
    ) -> anyhow::Result<Self> {
        let (scrape, proc) = match controller {
            Some(c) => (c.metrics().await, c.sample()?),
            None => (Scrape::default(), ProcSample::default()),
        };
        Ok(Self {
            controller: scrape,
            proc,
            apiserver: apiserver::scrape(client).await?,
            isolated,
        })
    }

    /// Ends the window over what the phase did.
    pub async fn finish(
        self,
        client: &Client,
        controller: &RunningController,
        observed: Observed<'_>,
    ) -> anyhow::Result<Phase> {
        let after = controller.metrics().await;
        let proc = controller.sample()?;
        let api_after = apiserver::scrape(client).await?;
        let Observed {
            name,
            objects,
            latencies,
            first,
            last,
        } = observed;
        let duration = last.saturating_duration_since(first).as_secs_f64();
        let cpu = (proc.cpu_seconds - self.proc.cpu_seconds).max(0.0);
        Ok(Phase {
            name: name.to_string(),
            objects,
            client_latency: Latency::of(latencies),
            duration_s: round(duration),
            throughput_per_s: if duration > 0.0 {
                round(objects as f64 / duration)
            } else {
                0.0
            },
            controller_latency: histogram_deltas(&self.controller, &after),
            api: ApiUsage::between(&self.apiserver, &api_after, objects, self.isolated),
            controller_process: ProcessUsage {
                cpu_seconds: round(cpu),
                cpu_ms_per_object: (objects > 0).then(|| round(cpu * 1e3 / objects as f64)),
                rss_bytes: proc.rss_bytes,
                peak_rss_bytes: proc.peak_rss_bytes,
            },
            extra: BTreeMap::new(),
        })
    }
}

/// How the controller's histograms ([`HISTOGRAMS`]) moved between two scrapes, in milliseconds.
fn histogram_deltas(before: &Scrape, after: &Scrape) -> BTreeMap<String, HistogramSummary> {
    let mut deltas = BTreeMap::new();
    for base in HISTOGRAMS {
        let Some(h) = after.histogram(base) else {
            continue;
        };
        let d = h.since(before.histogram(base).as_ref());
        let scale = if base.ends_with("_seconds") {
            1000.0
        } else {
            1.0
        };
        deltas.insert(base.to_string(), d.summary(scale));
    }
    deltas
}
