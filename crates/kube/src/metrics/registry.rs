//! The process's metrics and their registry: upstream's names where they apply
//! (`agent_sandboxes`, `agent_sandbox_creation_latency_ms`, `agent_sandbox_build_info`, the claim
//! metrics) plus reconcile, action and failure counters.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_sandbox_api::v1beta1::Sandbox;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::claims::ClaimMetrics;
use crate::metrics::sandboxes::{
    CreationLabels, SandboxCollector, creation_histogram, first_ready_latency, launch_type,
    sandbox_template,
};

/// Labels of the reconcile counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: String,
}

/// Labels of `agent_sandbox_reconcile_errors_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller: `sandbox`, `template`, `pool` or `claim`.
    pub controller: String,
    /// The kind of failure: `conflict`, `not-found`, `forbidden`, `invalid`, `server`, `transport`,
    /// `not-synced` or `blocked`.
    pub kind: String,
}

/// Labels of the action counter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action, e.g. `create_pod`.
    pub action: String,
    /// `success` or `error`.
    pub result: String,
}

/// Labels of `agent_sandbox_build_info`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    git_version: String,
    git_commit: String,
    build_date: String,
    rust_version: String,
    compiler: String,
    platform: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The controller's metrics, registered in a [`Registry`] that their owner encodes (the process's
/// own, or an embedding binary's).
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    actions: Family<ActionLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    creation_latency: HistogramFamily<CreationLabels>,
    /// Sandboxes (by UID) whose creation latency was recorded: once per Sandbox per process.
    recorded: Mutex<HashSet<String>>,
    /// The SandboxClaim controller's metrics.
    claims: ClaimMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric in `registry` (each named `agent_sandbox…`); `agent_sandboxes` is
    /// computed from `sandboxes` at scrape time.
    pub fn register(registry: &mut Registry, sandboxes: Store<Sandbox>) -> Arc<Self> {
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                git_version: env!("CARGO_PKG_VERSION").to_owned(),
                git_commit: option_env!("AGENT_SANDBOX_GIT_COMMIT")
                    .unwrap_or("unknown")
                    .to_owned(),
                build_date: option_env!("AGENT_SANDBOX_BUILD_DATE")
                    .unwrap_or("unknown")
                    .to_owned(),
                rust_version: env!("CARGO_PKG_RUST_VERSION").to_owned(),
                compiler: "rustc".to_owned(),
                platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            })
            .set(1);
        registry.register(
            "agent_sandbox_build_info",
            "Build metadata of the controller (always 1)",
            build_info,
        );
        let creation_latency: HistogramFamily<CreationLabels> =
            Family::new_with_constructor(creation_histogram);
        registry.register(
            "agent_sandbox_creation_latency_ms",
            "Milliseconds from Sandbox creation to its first Ready",
            creation_latency.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "agent_sandbox_reconciles",
            "Sandbox reconcile passes by result",
            reconciles.clone(),
        );
        let reconcile_duration = duration_histogram();
        registry.register(
            "agent_sandbox_reconcile_duration_seconds",
            "Duration of Sandbox reconcile passes",
            reconcile_duration.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "agent_sandbox_actions",
            "Writes to the API server by action and result",
            actions.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "agent_sandbox_reconcile_errors",
            "Failed reconcile passes by controller and kind of failure",
            reconcile_errors.clone(),
        );
        registry.register_collector(Box::new(SandboxCollector::new(sandboxes)));
        let claims = ClaimMetrics::register(registry);
        Arc::new(Self {
            reconciles,
            reconcile_duration,
            actions,
            reconcile_errors,
            creation_latency,
            recorded: Mutex::default(),
            claims,
        })
    }

    /// Records one reconcile pass.
    pub fn reconciled(&self, ok: bool, duration: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result_label(ok),
            })
            .inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// Records a failed pass of `controller`: one count per kind of failure in it (each kind once).
    pub fn reconcile_failed<'a>(&self, controller: &str, kinds: impl IntoIterator<Item = &'a str>) {
        for kind in kinds {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    /// Records one executed action.
    pub fn action(&self, action: &str, ok: bool) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
                result: result_label(ok),
            })
            .inc();
    }

    /// Records the creation latency of `sandbox` if `status_patch` turns it Ready for the first time
    /// this process has seen.
    pub fn observe_ready(&self, sandbox: &Sandbox, status_patch: &serde_json::Value) {
        let Some(latency) = first_ready_latency(sandbox, status_patch) else {
            return;
        };
        let uid = sandbox.metadata.uid.clone().unwrap_or_default();
        let Ok(mut recorded) = self.recorded.lock() else {
            return;
        };
        if !recorded.insert(uid) {
            return;
        }
        self.creation_latency
            .get_or_create(&CreationLabels {
                namespace: sandbox.namespace().unwrap_or_default(),
                launch_type: launch_type(sandbox),
                sandbox_template: sandbox_template(sandbox),
            })
            .observe(latency.as_millis() as f64);
    }

    /// Forgets a deleted Sandbox.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.remove(uid);
        }
    }

    /// The SandboxClaim controller's metrics.
    pub fn claims(&self) -> &ClaimMetrics {
        &self.claims
    }
}

/// `registry` in OpenMetrics text, what `/metrics` serves.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

fn result_label(ok: bool) -> String {
    if ok { "success" } else { "error" }.to_owned()
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::metrics::sandboxes::tests::{created_at, ready_patch, sandbox};

    #[test]
    fn scrape_exposes_gauge_build_info_and_counters() {
        let mut writer = Writer::<Sandbox>::default();
        writer.apply_watcher_event(&Event::Apply(sandbox("a")));
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, writer.as_reader());
        metrics.reconciled(true, Duration::from_millis(3));
        metrics.action("create_pod", false);
        let text = encode(&registry).unwrap_or_default();
        assert!(
            text.contains("agent_sandboxes{namespace=\"ns\",ready_condition=\"false\""),
            "{text}"
        );
        assert!(
            text.contains("agent_sandbox_build_info{git_version="),
            "{text}"
        );
        assert!(
            text.contains("agent_sandbox_reconciles_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("agent_sandbox_actions_total{action=\"create_pod\",result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("agent_sandbox_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn failed_passes_are_counted_by_controller_and_kind() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, Writer::<Sandbox>::default().as_reader());
        metrics.reconcile_failed("claim", ["conflict", "server"]);
        metrics.reconcile_failed("claim", ["conflict"]);
        let text = encode(&registry).unwrap_or_default();
        assert!(
            text.contains(
                "agent_sandbox_reconcile_errors_total{controller=\"claim\",kind=\"conflict\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "agent_sandbox_reconcile_errors_total{controller=\"claim\",kind=\"server\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn creation_latency_is_recorded_once_per_sandbox() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, Writer::<Sandbox>::default().as_reader());
        let s = created_at(sandbox("a"), "2026-01-01T00:00:00Z");
        let patch = ready_patch("True", "2026-01-01T00:00:00.2Z");
        metrics.observe_ready(&s, &patch);
        metrics.observe_ready(&s, &patch);
        let text = encode(&registry).unwrap_or_default();
        assert!(
            text.contains("agent_sandbox_creation_latency_ms_count{namespace=\"ns\",launch_type=\"cold\",sandbox_template=\"unknown\"} 1"),
            "{text}"
        );
    }
}
