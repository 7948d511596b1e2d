//! What a claim pass is configured with and what it ends with.

use std::time::Duration;

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_api::validate::ValidationContext;

use crate::claim::readiness::Latencies;
use crate::claim::status::ClaimError;
use crate::events::Event;

/// Longest wait for a TemplateNotFound / WarmPoolNotFound claim (watches usually wake it sooner).
pub(super) const NOT_FOUND_RETRY: Duration = Duration::from_secs(60);
/// Retry after a cold create found its Sandbox already there (the cache lags the create).
pub(super) const CREATE_PENDING_RETRY: Duration = Duration::from_millis(200);
/// Requeue that lets the persisted expiry act in the next pass.
pub(super) const EXPIRED_RETRY: Duration = Duration::from_millis(1);

/// Settings of the claim decisions.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Persist `controller-first-observed-at` on the claim (else kept in memory only).
    pub observability_annotations: bool,
    /// Allowed label domains for `additionalPodMetadata`.
    pub validation: ValidationContext,
}

/// A claim served by a Sandbox (`agent_sandbox_claim_creation_total`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// `warm` or `cold`.
    pub launch_type: &'static str,
    /// The pool the claim names (cold) or the adopted Sandbox came from (warm).
    pub warmpool_name: String,
    /// The template name, or `unknown`.
    pub sandbox_template: String,
    /// Whether the Sandbox was Ready when it was handed to the claim.
    pub ready: bool,
    /// The claim's normalised `created-by`.
    pub created_by: String,
}

/// What a pass did and wants next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Look again after this long (even without a watch event).
    pub requeue_after: Option<Duration>,
    /// The pass failed; retry with backoff.
    pub error: Option<String>,
    /// Events about the claim.
    pub events: Vec<Event>,
    /// Claims served this pass (a cold create or a warm adoption).
    pub served: Vec<Served>,
    /// First-Ready latencies to record.
    pub latencies: Option<Latencies>,
    /// The in-memory first-observed time of the claim can be forgotten.
    pub drain_first_observed: bool,
}

/// How the expiry or the active path of a pass settled.
pub(super) enum Settled {
    /// The pass ends here: look again after this long, or retry this error.
    Stop {
        requeue_after: Option<Duration>,
        error: Option<String>,
    },
    /// The claim's status is computed from this Sandbox (if any) and error (if any).
    Bound {
        sandbox: Option<Box<Sandbox>>,
        error: Option<ClaimError>,
    },
}
