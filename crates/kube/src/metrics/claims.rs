//! The claim metrics, with upstream's names, labels and buckets, and one histogram of our own whose
//! buckets start at 1 ms (upstream's first bucket is 100 ms, where a warm claim is usually done).

use agent_sandbox_core::claim::pass::Served;
use agent_sandbox_core::claim::readiness::Latencies;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the claim startup latency histograms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClaimLatencyLabels {
    /// `warm`, `cold` or `unknown`.
    pub launch_type: String,
    /// Template name, or `__unknown__`.
    pub sandbox_template: String,
}

/// Labels of `agent_sandbox_claim_creation_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClaimCreationLabels {
    /// Namespace of the claim.
    pub namespace: String,
    /// Template name.
    pub sandbox_template: String,
    /// `warm` or `cold`.
    pub launch_type: String,
    /// The pool.
    pub warmpool_name: String,
    /// `ready` or `not_ready` when handed to the claim.
    pub pod_condition: String,
    /// The claim's normalised `created-by`.
    pub created_by: String,
}

type Latency = Family<ClaimLatencyLabels, Histogram, fn() -> Histogram>;

fn claim_histogram() -> Histogram {
    Histogram::new([
        100.0, 250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 120000.0, 240000.0,
    ])
}

/// Buckets of [`ClaimMetrics::ready`]'s own histogram: 1 ms doubling to about 65 s.
fn fine_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

/// The claim controller's metrics.
pub struct ClaimMetrics {
    ready_seconds: Latency,
    claim_startup: Latency,
    controller_startup: Latency,
    client_startup: Latency,
    creations: Family<ClaimCreationLabels, Counter>,
}

impl ClaimMetrics {
    /// Registers the claim metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let claim_startup: Latency = Family::new_with_constructor(claim_histogram);
        registry.register(
            "agent_sandbox_claim_startup_latency_ms",
            "Milliseconds from the webhook's first observation of a claim to its first Ready",
            claim_startup.clone(),
        );
        let controller_startup: Latency = Family::new_with_constructor(claim_histogram);
        registry.register(
            "agent_sandbox_claim_controller_startup_latency_ms",
            "Milliseconds from the controller's first observation of a claim to its first Ready",
            controller_startup.clone(),
        );
        let client_startup: Latency = Family::new_with_constructor(claim_histogram);
        registry.register(
            "agent_sandbox_client_claim_startup_latency_ms",
            "Milliseconds from the client's request of a claim to its first Ready",
            client_startup.clone(),
        );
        let ready_seconds: Latency = Family::new_with_constructor(fine_histogram);
        registry.register(
            "agent_sandbox_claim_ready_seconds",
            "Seconds from the controller's first observation of a claim to its first Ready, in buckets \
             from 1 ms (agent_sandbox_claim_controller_startup_latency_ms has upstream's, from 100 ms)",
            ready_seconds.clone(),
        );
        let creations = Family::<ClaimCreationLabels, Counter>::default();
        registry.register(
            "agent_sandbox_claim_creation",
            "Claims served by a cold create or a warm adoption",
            creations.clone(),
        );
        Self {
            ready_seconds,
            claim_startup,
            controller_startup,
            client_startup,
            creations,
        }
    }

    /// Counts a claim served in `namespace`.
    pub fn served(&self, namespace: &str, served: &Served) {
        self.creations
            .get_or_create(&ClaimCreationLabels {
                namespace: namespace.to_owned(),
                sandbox_template: served.sandbox_template.clone(),
                launch_type: served.launch_type.to_owned(),
                warmpool_name: served.warmpool_name.clone(),
                pod_condition: if served.ready { "ready" } else { "not_ready" }.to_owned(),
                created_by: served.created_by.clone(),
            })
            .inc();
    }

    /// Records a claim's first-Ready latencies.
    pub fn ready(&self, latencies: &Latencies) {
        let labels = ClaimLatencyLabels {
            launch_type: latencies.launch_type.clone(),
            sandbox_template: latencies.sandbox_template.clone(),
        };
        for (family, value) in [
            (&self.claim_startup, latencies.claim_startup),
            (&self.controller_startup, latencies.controller_startup),
            (&self.client_startup, latencies.client_startup),
        ] {
            if let Some(ms) = value {
                family.get_or_create(&labels).observe(ms as f64);
            }
        }
        if let Some(ms) = latencies.controller_startup {
            self.ready_seconds
                .get_or_create(&labels)
                .observe(ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_metrics_use_upstream_names_labels_and_buckets() {
        let mut registry = Registry::default();
        let metrics = ClaimMetrics::register(&mut registry);
        metrics.served(
            "ns",
            &Served {
                launch_type: "warm",
                warmpool_name: "p".into(),
                sandbox_template: "t".into(),
                ready: true,
                created_by: "unknown".into(),
            },
        );
        metrics.ready(&Latencies {
            launch_type: "warm".into(),
            sandbox_template: "t".into(),
            namespace: "ns".into(),
            claim_startup: None,
            controller_startup: Some(120),
            client_startup: Some(90),
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains(
            "agent_sandbox_claim_creation_total{namespace=\"ns\",sandbox_template=\"t\",launch_type=\"warm\",warmpool_name=\"p\",pod_condition=\"ready\",created_by=\"unknown\"} 1"
        ), "{text}");
        assert!(text.contains(
            "agent_sandbox_claim_controller_startup_latency_ms_bucket{le=\"250.0\",launch_type=\"warm\",sandbox_template=\"t\"} 1"
        ), "{text}");
        assert!(text.contains("agent_sandbox_client_claim_startup_latency_ms_count{launch_type=\"warm\",sandbox_template=\"t\"} 1"));
        assert!(
            !text.contains("agent_sandbox_claim_startup_latency_ms_count{"),
            "no webhook annotation, no sample"
        );
    }

    #[test]
    fn the_fine_histogram_resolves_a_few_milliseconds() {
        let mut registry = Registry::default();
        let metrics = ClaimMetrics::register(&mut registry);
        metrics.ready(&Latencies {
            launch_type: "warm".into(),
            sandbox_template: "t".into(),
            namespace: "ns".into(),
            claim_startup: None,
            controller_startup: Some(3),
            client_startup: None,
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let bucket = |le: &str| {
            format!(
                "agent_sandbox_claim_ready_seconds_bucket{{le=\"{le}\",launch_type=\"warm\",sandbox_template=\"t\"}}"
            )
        };
        assert!(text.contains(&format!("{} 0", bucket("0.002"))), "{text}");
        assert!(text.contains(&format!("{} 1", bucket("0.004"))), "{text}");
        assert!(text.contains(&format!("{} 1", bucket("65.536"))), "{text}");
    }
}
