//! Prometheus metrics (`GET /metrics` on the proxy port). No per-sandbox labels: a label per
//! Sandbox would grow the series without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The status code of a proxied request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// HTTP status code returned to the client.
    pub code: u16,
}

/// Why forwarding failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `dial` (no connection after every retry), `timeout` (no response head in time) or
    /// `protocol` (the connection broke before the response head).
    pub reason: &'static str,
}

/// Outcome of a TokenReview authentication.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allowed`, `denied` (no, or a rejected, token) or `error` (the review failed).
    pub decision: &'static str,
}

/// Every metric the router exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by status code (the router's own endpoints are not counted).
    pub requests: Family<CodeLabels, Counter>,
    /// Seconds from receiving a request to sending the response head.
    pub duration: Histogram,
    /// Forwarding failures by reason.
    pub upstream_errors: Family<ReasonLabels, Counter>,
    /// Connection attempts that failed and were retried.
    pub dial_retries: Counter,
    /// Requests being handled, including upgraded connections still open.
    pub inflight: Gauge,
    /// TokenReview outcomes (only with `--auth=tokenreview`).
    pub auth_decisions: Family<DecisionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `sandbox_router_` prefix (upstream's names).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sandbox_router");
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status code",
            requests.clone(),
        );
        // 0.5 ms to about 66 s: a proxied health check to a long command.
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        registry.register(
            "request_duration_seconds",
            "Time from receiving a request to sending the response head",
            duration.clone(),
        );
        let upstream_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Forwarding failures: dial (no connection after every retry), timeout, protocol",
            upstream_errors.clone(),
        );
        let dial_retries = Counter::default();
        registry.register(
            "upstream_retries",
            "Connection attempts to a sandbox that failed and were retried",
            dial_retries.clone(),
        );
        let inflight = Gauge::default();
        registry.register(
            "inflight_requests",
            "Requests being handled, including open upgraded connections",
            inflight.clone(),
        );
        let auth_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "authz_decisions",
            "TokenReview authentication outcomes",
            auth_decisions.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            upstream_errors,
            dial_retries,
            inflight,
            auth_decisions,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts a forwarding failure.
    pub fn upstream_error(&self, reason: &'static str) {
        self.upstream_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
