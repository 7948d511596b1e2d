//! The claim's first-Ready bookkeeping (latency metrics and the `claim-first-ready-at` stamp), decided
//! only after an authoritative status write so a stale pass can never record twice. Sandbox creation
//! latency is not among them: the Sandbox controller records it once per Sandbox already.

use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

/// Value of `claim-first-ready-at` when the first Ready instant is not known (backfill).
pub const UNKNOWN: &str = "unknown";

/// Latencies of a claim's first Ready, in milliseconds, with their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latencies {
    /// `warm`, `cold` or `unknown`.
    pub launch_type: String,
    /// Template name from the Sandbox annotation, or `__unknown__`.
    pub sandbox_template: String,
    /// Namespace of the claim.
    pub namespace: String,
    /// From `webhook-first-observed-at`.
    pub claim_startup: Option<u64>,
    /// From the controller's first observation.
    pub controller_startup: Option<u64>,
    /// From `client-first-requested-at`.
    pub client_startup: Option<u64>,
}

/// What to do after an authoritative status write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Latencies to record (first transition only).
    pub record: Option<Latencies>,
    /// Value to stamp into `claim-first-ready-at`, if the claim lacks it.
    pub stamp: Option<String>,
    /// Forget the in-memory first-observed time.
    pub drain: bool,
}

fn is_true(condition: Option<&Condition>) -> bool {
    condition.is_some_and(|c| c.status == "True")
}

fn since(start: Timestamp, end: Timestamp) -> Option<u64> {
    u64::try_from(end.as_millisecond().checked_sub(start.as_millisecond())?).ok()
}

fn annotation_time(claim: &SandboxClaim, key: &str) -> Option<Timestamp> {
    claim.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

fn launch_type(sandbox: Option<&Sandbox>) -> &'static str {
    match sandbox {
        None => "unknown",
        Some(s) => match s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::LAUNCH_TYPE))
            .map(String::as_str)
        {
            Some(labels::LAUNCH_TYPE_WARM) => labels::LAUNCH_TYPE_WARM,
            _ => labels::LAUNCH_TYPE_COLD,
        },
    }
}

/// Decides the first-Ready bookkeeping from the Ready condition before and after the write.
pub fn decide(
    claim: &SandboxClaim,
    old_ready: Option<&Condition>,
    new_ready: Option<&Condition>,
    sandbox: Option<&Sandbox>,
    first_observed: Option<Timestamp>,
    now: Timestamp,
) -> Readiness {
    let stamped = claim
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::CLAIM_FIRST_READY_AT));
    let backfill = Readiness {
        record: None,
        stamp: (!stamped).then(|| UNKNOWN.to_owned()),
        drain: true,
    };
    if !is_true(new_ready) {
        return if is_true(old_ready) {
            backfill
        } else {
            Readiness::default()
        };
    }
    if is_true(old_ready) {
        return backfill;
    }
    if stamped {
        return Readiness {
            drain: true,
            ..Readiness::default()
        };
    }
    let record = Latencies {
        launch_type: launch_type(sandbox).to_owned(),
        sandbox_template: sandbox
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(annotations::SANDBOX_TEMPLATE_REF))
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| "__unknown__".to_owned()),
        namespace: claim.metadata.namespace.clone().unwrap_or_default(),
        claim_startup: annotation_time(claim, annotations::WEBHOOK_FIRST_OBSERVED_AT)
            .and_then(|at| since(at, now)),
        controller_startup: first_observed
            .or_else(|| annotation_time(claim, annotations::CONTROLLER_FIRST_OBSERVED_AT))
            .and_then(|at| since(at, now)),
        client_startup: annotation_time(claim, annotations::CLIENT_FIRST_REQUESTED_AT)
            .and_then(|at| since(at, now)),
    };
    Readiness {
        record: Some(record),
        stamp: Some(now.to_string()),
        drain: true,
    }
}
