//! The Sandbox-derived metrics: the `agent_sandboxes` gauge computed from the cache at each scrape,
//! and what `agent_sandbox_creation_latency_ms` measures.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox_api::conditions::{sandbox as reason, types};
use agent_sandbox_api::keys::{EXTENSIONS_GROUP, annotations, labels};
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::conditions::{find, sandbox_is_ready};
use agent_sandbox_core::ownership::controller_of;
use agent_sandbox_core::sandbox::normalise_created_by;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// Labels of the `agent_sandboxes` gauge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
pub struct SandboxLabels {
    /// Namespace of the Sandbox.
    pub namespace: String,
    /// `true` when the Ready condition is True.
    pub ready_condition: String,
    /// `true` when the Ready reason is `SandboxExpired`.
    pub expired: String,
    /// `warm` when the launch-type label says so, else `cold`.
    pub launch_type: String,
    /// The SandboxTemplate annotation, or `unknown`.
    pub sandbox_template: String,
    /// `SandboxClaim`, `SandboxWarmPool` or `None`.
    pub owned_by: String,
    /// Normalised created-by label, `unknown` if absent.
    pub created_by: String,
}

fn bool_label(value: bool) -> String {
    if value { "true" } else { "false" }.to_owned()
}

/// `warm` when the launch-type label says so, else `cold`.
pub fn launch_type(sandbox: &Sandbox) -> String {
    match sandbox
        .labels()
        .get(labels::LAUNCH_TYPE)
        .map(String::as_str)
    {
        Some(labels::LAUNCH_TYPE_WARM) => labels::LAUNCH_TYPE_WARM,
        _ => labels::LAUNCH_TYPE_COLD,
    }
    .to_owned()
}

/// The SandboxTemplate annotation, or `unknown`.
pub fn sandbox_template(sandbox: &Sandbox) -> String {
    sandbox
        .annotations()
        .get(annotations::SANDBOX_TEMPLATE_REF)
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned())
}

fn ready(sandbox: &Sandbox) -> Option<&Condition> {
    find(&sandbox.status.as_ref()?.conditions, types::READY)
}

/// The `agent_sandboxes` labels of one Sandbox.
pub fn sandbox_labels(sandbox: &Sandbox) -> SandboxLabels {
    let ready = ready(sandbox);
    let owned_by = ["SandboxClaim", "SandboxWarmPool"]
        .into_iter()
        .find(|kind| controller_of(&sandbox.metadata, EXTENSIONS_GROUP, kind).is_some())
        .unwrap_or("None");
    SandboxLabels {
        namespace: sandbox.namespace().unwrap_or_default(),
        ready_condition: bool_label(sandbox_is_ready(sandbox)),
        expired: bool_label(ready.is_some_and(|c| c.reason == reason::SANDBOX_EXPIRED)),
        launch_type: launch_type(sandbox),
        sandbox_template: sandbox_template(sandbox),
        owned_by: owned_by.to_owned(),
        created_by: sandbox
            .labels()
            .get(labels::CREATED_BY)
            .map(|v| normalise_created_by(v))
            .unwrap_or("unknown")
            .to_owned(),
    }
}

/// Counts Sandboxes per label set.
pub fn count_sandboxes<'a>(
    sandboxes: impl IntoIterator<Item = &'a Sandbox>,
) -> BTreeMap<SandboxLabels, i64> {
    let mut counts = BTreeMap::new();
    for sandbox in sandboxes {
        *counts.entry(sandbox_labels(sandbox)).or_insert(0) += 1;
    }
    counts
}

/// Computes `agent_sandboxes` from the Sandbox cache at each scrape.
#[derive(Debug)]
pub struct SandboxCollector {
    store: Store<Sandbox>,
}

impl SandboxCollector {
    /// Counts the Sandboxes of `store`.
    pub fn new(store: Store<Sandbox>) -> Self {
        Self { store }
    }
}

impl Collector for SandboxCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.store.state();
        let counts = count_sandboxes(state.iter().map(|s| s.as_ref()));
        let mut family = encoder.encode_descriptor(
            "agent_sandboxes",
            "Number of Sandboxes by state",
            None,
            MetricType::Gauge,
        )?;
        for (labels, count) in counts {
            ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Labels of `agent_sandbox_creation_latency_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CreationLabels {
    /// Namespace of the Sandbox.
    pub namespace: String,
    /// `cold` or `warm`.
    pub launch_type: String,
    /// The SandboxTemplate annotation, or `unknown`.
    pub sandbox_template: String,
}

/// Buckets of `agent_sandbox_creation_latency_ms`.
pub fn creation_histogram() -> Histogram {
    Histogram::new([
        50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 120000.0,
        240000.0, 300000.0, 600000.0,
    ])
}

/// Creation → Ready latency, when `status_patch` sets Ready=True on a Sandbox whose cached status
/// is not Ready.
pub fn first_ready_latency(
    sandbox: &Sandbox,
    status_patch: &serde_json::Value,
) -> Option<Duration> {
    if sandbox_is_ready(sandbox) {
        return None;
    }
    let conditions = status_patch.pointer("/status/conditions")?.as_array()?;
    let ready = conditions
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(types::READY))?;
    if ready.get("status").and_then(|s| s.as_str()) != Some("True") {
        return None;
    }
    let at: k8s_openapi::jiff::Timestamp = ready
        .get("lastTransitionTime")
        .and_then(|t| t.as_str())?
        .parse()
        .ok()?;
    let created = sandbox.metadata.creation_timestamp.as_ref()?.0;
    let millis = at.as_millisecond().checked_sub(created.as_millisecond())?;
    u64::try_from(millis).ok().map(Duration::from_millis)
}

#[cfg(test)]
pub(crate) mod tests {
    use agent_sandbox_api::v1beta1::{SandboxSpec, SandboxStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
    use serde_json::json;

    use super::*;

    pub(crate) fn sandbox(name: &str) -> Sandbox {
        let mut s = Sandbox::new(name, SandboxSpec::default());
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some(format!("uid-{name}"));
        s
    }

    fn with_ready(mut s: Sandbox, status: &str, reason: &str) -> Sandbox {
        s.status = Some(SandboxStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..SandboxStatus::default()
        });
        s
    }

    fn owned_by(mut s: Sandbox, api_version: &str, kind: &str) -> Sandbox {
        s.metadata.owner_references = Some(vec![OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "owner".into(),
            uid: "owner-uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        s
    }

    #[test]
    fn a_fresh_sandbox_is_not_ready_cold_unknown_and_unowned() {
        assert_eq!(
            sandbox_labels(&sandbox("a")),
            SandboxLabels {
                namespace: "ns".into(),
                ready_condition: "false".into(),
                expired: "false".into(),
                launch_type: "cold".into(),
                sandbox_template: "unknown".into(),
                owned_by: "None".into(),
                created_by: "unknown".into(),
            }
        );
    }

    #[test]
    fn ready_and_expired_follow_the_ready_condition() {
        let ready = sandbox_labels(&with_ready(sandbox("a"), "True", "DependenciesReady"));
        assert_eq!(
            (ready.ready_condition.as_str(), ready.expired.as_str()),
            ("true", "false")
        );
        let expired = sandbox_labels(&with_ready(sandbox("a"), "False", "SandboxExpired"));
        assert_eq!(
            (expired.ready_condition.as_str(), expired.expired.as_str()),
            ("false", "true")
        );
    }

    #[test]
    fn launch_type_template_and_created_by_come_from_metadata() {
        let mut s = sandbox("a");
        s.metadata.labels = Some(
            [
                (labels::LAUNCH_TYPE.to_owned(), "warm".to_owned()),
                (labels::CREATED_BY.to_owned(), "python-client".to_owned()),
            ]
            .into(),
        );
        s.metadata.annotations = Some(
            [(
                annotations::SANDBOX_TEMPLATE_REF.to_owned(),
                "tpl".to_owned(),
            )]
            .into(),
        );
        let l = sandbox_labels(&s);
        assert_eq!(
            (
                l.launch_type.as_str(),
                l.sandbox_template.as_str(),
                l.created_by.as_str()
            ),
            ("warm", "tpl", "python-client")
        );
        s.metadata.labels = Some([(labels::CREATED_BY.to_owned(), "someone".to_owned())].into());
        let l = sandbox_labels(&s);
        assert_eq!(
            (l.launch_type.as_str(), l.created_by.as_str()),
            ("cold", "unknown")
        );
    }

    #[test]
    fn owned_by_matches_group_and_kind_whatever_the_version() {
        for (api_version, kind, want) in [
            (
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxClaim",
                "SandboxClaim",
            ),
            (
                "extensions.agents.x-k8s.io/v1alpha1",
                "SandboxWarmPool",
                "SandboxWarmPool",
            ),
            ("example.com/v1", "SandboxClaim", "None"),
            (
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxTemplate",
                "None",
            ),
        ] {
            assert_eq!(
                sandbox_labels(&owned_by(sandbox("a"), api_version, kind)).owned_by,
                want,
                "{api_version} {kind}"
            );
        }
    }

    #[test]
    fn counts_aggregate_sandboxes_with_equal_labels() {
        let sandboxes = [
            sandbox("a"),
            sandbox("b"),
            with_ready(sandbox("c"), "True", "DependenciesReady"),
        ];
        let counts = count_sandboxes(sandboxes.iter());
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 1]);
    }

    pub(crate) fn created_at(mut s: Sandbox, rfc3339: &str) -> Sandbox {
        s.metadata.creation_timestamp = rfc3339.parse().ok().map(Time);
        s
    }

    pub(crate) fn ready_patch(status: &str, at: &str) -> serde_json::Value {
        json!({"status": {"conditions": [
            {"type": "Suspended", "status": "False", "lastTransitionTime": at},
            {"type": "Ready", "status": status, "lastTransitionTime": at},
        ]}})
    }

    #[test]
    fn creation_latency_is_creation_to_ready_transition() {
        let s = created_at(sandbox("a"), "2026-01-01T00:00:00Z");
        assert_eq!(
            first_ready_latency(&s, &ready_patch("True", "2026-01-01T00:00:01.5Z")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            first_ready_latency(&s, &ready_patch("False", "2026-01-01T00:00:01Z")),
            None
        );
        assert_eq!(
            first_ready_latency(&s, &json!({"status": {"podIPs": ["1.2.3.4"]}})),
            None
        );
        let already = with_ready(s, "True", "DependenciesReady");
        assert_eq!(
            first_ready_latency(&already, &ready_patch("True", "2026-01-01T00:00:02Z")),
            None
        );
    }
}
