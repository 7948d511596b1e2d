//! What a scenario reports: phases with latency, throughput, controller cost and API usage; written as
//! JSON to `target/bench/<scenario>.json` and printed as a table.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::apiserver::ApiUsage;
use crate::controller::ControllerSpec;
use crate::prom::HistogramSummary;
use crate::stats::{Latency, round};
use crate::sysinfo::Machine;

/// The whole output of one `agent-sandbox-bench <scenario>` invocation.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Where it ran.
    pub machine: Machine,
    /// The scenario's parameters as given.
    pub params: serde_json::Value,
    /// Cargo profile the controller was built with, as told by xtask (`release`, `dev`, or `unknown`).
    pub controller_build: String,
    /// One entry per controller run (two per round with `--compare`).
    pub runs: Vec<RunReport>,
    /// `other / ours` ratios per phase and metric, with `--compare`.
    pub comparison: Vec<Ratio>,
}

/// The phases measured against one controller process (or one restarted controller).
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Short name of the controller.
    pub controller: String,
    /// Command template it was started with.
    pub command: String,
    /// Measured phases in order.
    pub phases: Vec<Phase>,
}

impl RunReport {
    /// The report of one run of `spec`.
    pub fn new(spec: &ControllerSpec, phases: Vec<Phase>) -> Self {
        Self {
            controller: spec.label.clone(),
            command: spec.command.clone(),
            phases,
        }
    }
}

/// One measured phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// Phase name (`create`, `converge`, `restart`, `rate-300`, `refill-1000` …).
    pub name: String,
    /// Objects that became Ready in the phase.
    pub objects: usize,
    /// Client side: create call (or scale call for refill) → Ready seen by the bench's own watch.
    pub client_latency: Latency,
    /// First create call → last Ready seen, seconds.
    pub duration_s: f64,
    /// `objects / duration_s`.
    pub throughput_per_s: f64,
    /// Controller-side histograms observed during the phase (`/metrics`), by metric name.
    pub controller_latency: BTreeMap<String, HistogramSummary>,
    /// API requests.
    pub api: ApiUsage,
    /// The controller process's cost (from /proc).
    pub controller_process: ProcessUsage,
    /// Scenario-specific numbers (e.g. `relist_s`, `cleanup_s`).
    pub extra: BTreeMap<String, f64>,
}

/// Controller CPU and memory over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    /// User + system CPU seconds spent in the phase.
    pub cpu_seconds: f64,
    /// CPU milliseconds per Ready object.
    pub cpu_ms_per_object: Option<f64>,
    /// Resident memory at the end of the phase, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory of the process so far (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

/// `other / ours` for one metric of one phase.
#[derive(Debug, Serialize)]
pub struct Ratio {
    /// Phase name.
    pub phase: String,
    /// Metric name.
    pub metric: String,
    /// Our value (median over rounds).
    pub ours: f64,
    /// The other controller's value (median over rounds).
    pub other: f64,
    /// `other / ours`.
    pub ratio: Option<f64>,
}

/// The numbers compared between controllers, by name.
fn compared(p: &Phase) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("client_p50_ms", Some(p.client_latency.p50_ms)),
        ("client_p99_ms", Some(p.client_latency.p99_ms)),
        ("throughput_per_s", Some(p.throughput_per_s)),
        ("cpu_seconds", Some(p.controller_process.cpu_seconds)),
        (
            "peak_rss_mib",
            Some(p.controller_process.peak_rss_bytes as f64 / 1048576.0),
        ),
        ("requests_per_object", p.api.controller_requests_per_object),
    ]
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// Ratios of the runs labelled `other` to those labelled `ours`, per phase and metric.
pub fn ratios(runs: &[RunReport], ours: &str, other: &str) -> Vec<Ratio> {
    let values = |label: &str, phase: &str, metric: &str| {
        let v = runs
            .iter()
            .filter(|r| r.controller == label)
            .flat_map(|r| r.phases.iter().filter(|p| p.name == phase))
            .filter_map(|p| compared(p).into_iter().find(|(m, _)| *m == metric)?.1)
            .collect();
        median(v)
    };
    let mut out = Vec::new();
    let Some(first) = runs.iter().find(|r| r.controller == ours) else {
        return out;
    };
    for phase in &first.phases {
        for (metric, _) in compared(phase) {
            let (Some(a), Some(b)) = (
                values(ours, &phase.name, metric),
                values(other, &phase.name, metric),
            ) else {
                continue;
            };
            out.push(Ratio {
                phase: phase.name.clone(),
                metric: metric.to_string(),
                ours: a,
                other: b,
                ratio: (a != 0.0).then(|| round(b / a)),
            });
        }
    }
    out
}

impl Report {
    /// Writes the JSON to `path` (creating its directory).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).context("serialising the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "scenario {}  |  {} CPUs ({}), {:.1} GiB RAM, kernel {}, load {:.2}, commit {}, controller build {}\n",
            self.scenario,
            m.nproc,
            m.cpu_model,
            m.ram_bytes as f64 / 1073741824.0,
            m.kernel,
            m.loadavg_1m,
            m.git_commit,
            self.controller_build
        );
        out += &format!(
            "{:<10} {:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>17} {:>8} {:>7} {:>9}\n",
            "controller",
            "phase",
            "n",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "obj/s",
            "ctl p50/p99 ms",
            "req/obj",
            "cpu s",
            "peak MiB"
        );
        for run in &self.runs {
            for p in &run.phases {
                out += &phase_rows(&run.controller, p);
            }
        }
        for r in &self.comparison {
            out += &format!(
                "ratio other/ours  {:<14} {:<22} ours {:>10.2}  other {:>10.2}  ratio {}\n",
                r.phase,
                r.metric,
                r.ours,
                r.other,
                opt(r.ratio)
            );
        }
        out
    }
}

/// A phase's row of the table, and a second row with its extra measurements if it has any.
fn phase_rows(controller: &str, p: &Phase) -> String {
    let l = &p.client_latency;
    let ctl = primary_histogram(p).map_or_else(
        || "-".to_string(),
        |h| format!("{}/{}", opt(h.p50_ms), opt(h.p99_ms)),
    );
    let mut out = format!(
        "{:<10} {:<14} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>17} {:>8} {:>7.2} {:>9.1}\n",
        controller,
        p.name,
        p.objects,
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms,
        p.throughput_per_s,
        ctl,
        opt(p.api.controller_requests_per_object),
        p.controller_process.cpu_seconds,
        p.controller_process.peak_rss_bytes as f64 / 1048576.0
    );
    if !p.extra.is_empty() {
        let extra: Vec<String> = p.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!("{:<10} {:<14} {}\n", "", "", extra.join("  "));
    }
    out
}

/// The controller histogram shown in the table: the claim controller's if present (our 1 ms buckets,
/// else upstream's), else the reconcile duration, else any.
fn primary_histogram(p: &Phase) -> Option<&HistogramSummary> {
    [
        "agent_sandbox_claim_ready_seconds",
        "agent_sandbox_claim_controller_startup_latency_ms",
        "agent_sandbox_reconcile_duration_seconds",
        "controller_runtime_reconcile_time_seconds",
    ]
    .iter()
    .find_map(|k| p.controller_latency.get(*k))
    .or_else(|| p.controller_latency.values().next())
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}
