//! The end of a pass that bound (or failed to bind) a Sandbox: the status to write, the first-Ready
//! bookkeeping after an authoritative write, and when and why to look again.

use std::time::Duration;

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::extensions::{ClaimLifecycle, SandboxClaimStatus};
use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::jiff::Timestamp;

use super::expire::marked_expired;
use super::outcome::{CREATE_PENDING_RETRY, EXPIRED_RETRY, NOT_FOUND_RETRY, Outcome};
use super::state::Pass;
use crate::claim::api::{ApiError, ClaimApi};
use crate::claim::expiry::{self, ClaimExpiry};
use crate::claim::patch;
use crate::claim::readiness::{self, Readiness};
use crate::claim::status::{self, ClaimError, Inputs};
use crate::conditions as condition_list;

/// The claim as the pass found it.
pub(super) struct Before {
    /// Its status.
    pub status: SandboxClaimStatus,
    /// Its lifecycle.
    pub lifecycle: Option<ClaimLifecycle>,
    /// The lifecycle had ended.
    pub expired: bool,
    /// When this process first saw the claim.
    pub first_observed: Option<Timestamp>,
}

/// The status after the pass, and how its lifecycle stands with it.
struct Next {
    status: SandboxClaimStatus,
    /// Expiry as the new status (with a just-mirrored Finished condition) says.
    after: ClaimExpiry,
    /// It is this status that ends the claim.
    newly_expired: bool,
}

/// Writes the status from `old` to what the pass found, records a first Ready, and decides the retry.
pub(super) async fn finish<A: ClaimApi>(
    mut pass: Pass<'_, A>,
    before: &Before,
    sandbox: Option<Sandbox>,
    error: Option<ClaimError>,
) -> Outcome {
    let old = &before.status;
    let inputs = Inputs {
        error: error.clone(),
        expired: before.expired,
        sandbox: sandbox.as_ref(),
    };
    let next = next_status(&mut pass, before, inputs);
    let mut errors = Vec::new();
    let readiness = match pass.write_status(old, &next.status).await {
        Err(error) => {
            errors.push(error);
            None
        }
        Ok(true) => {
            let decision = readiness::decide(
                &pass.claim,
                condition_list::find(&old.conditions, types::READY),
                condition_list::find(&next.status.conditions, types::READY),
                sandbox.as_ref(),
                before.first_observed,
                pass.now,
            );
            errors.extend(stamp_first_ready(&pass, &decision).await);
            Some(decision)
        }
        Ok(false) => None,
    };
    let requeue_after = requeue_after(&next, before.expired, error.as_ref());
    if let Some(detail) = retried(error) {
        errors.insert(0, detail);
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    let mut outcome = pass.into_outcome(requeue_after, error);
    if let Some(decision) = readiness {
        outcome.latencies = decision.record;
        outcome.drain_first_observed = decision.drain;
    }
    outcome
}

/// The status computed from the pass; a Finished condition mirrored just now may end the claim already.
fn next_status<A: ClaimApi>(pass: &mut Pass<'_, A>, before: &Before, inputs: Inputs) -> Next {
    let generation = pass.claim.metadata.generation;
    let status = status::compute(&before.status, &inputs, generation, pass.now);
    let after = expiry::check(before.lifecycle.as_ref(), &status.conditions, pass.now);
    let newly_expired = !inputs.expired && after == ClaimExpiry::Expired;
    if !newly_expired || marked_expired(&status) {
        return Next {
            status,
            after,
            newly_expired,
        };
    }
    let inputs = Inputs {
        expired: true,
        ..inputs
    };
    let status = status::compute(&before.status, &inputs, generation, pass.now);
    pass.expired_event();
    Next {
        status,
        after,
        newly_expired,
    }
}

/// Stamps `claim-first-ready-at` when the readiness decision asks for it.
async fn stamp_first_ready<A: ClaimApi>(
    pass: &Pass<'_, A>,
    decision: &Readiness,
) -> Option<String> {
    let value = decision.stamp.as_ref()?;
    let patch = patch::metadata(
        "annotations",
        &[(annotations::CLAIM_FIRST_READY_AT, Some(value))],
    );
    match pass.api.patch_claim(patch).await {
        Ok(_) | Err(ApiError::NotFound) => None,
        Err(error) => Some(format!("failed to stamp the first-ready time: {error}")),
    }
}

/// When to look again: at the claim's deadline, sooner for errors that resolve themselves.
fn requeue_after(next: &Next, expired: bool, error: Option<&ClaimError>) -> Option<Duration> {
    let base = if next.newly_expired {
        Some(EXPIRED_RETRY)
    } else {
        match next.after {
            ClaimExpiry::In(left) if !expired => Some(left),
            _ => None,
        }
    };
    let cap = |limit: Duration| Some(base.map_or(limit, |b| b.min(limit)));
    match error {
        Some(ClaimError::TemplateNotFound(_) | ClaimError::WarmPoolNotFound(_)) => {
            cap(NOT_FOUND_RETRY)
        }
        Some(ClaimError::CreatePending) => cap(CREATE_PENDING_RETRY),
        _ => base,
    }
}

/// The detail of an error retried with backoff. Only a spec change fixes the others (they are
/// reported, not retried), and the not-found and pending ones are looked at again on a timer.
fn retried(error: Option<ClaimError>) -> Option<String> {
    match error? {
        ClaimError::AdoptionConflict(detail) | ClaimError::Other(detail) => Some(detail),
        ClaimError::TemplateNotFound(_)
        | ClaimError::WarmPoolNotFound(_)
        | ClaimError::CreatePending
        | ClaimError::InvalidMetadata(_)
        | ClaimError::EnvRejected(_)
        | ClaimError::NotOwnedOnExpiry(_)
        | ClaimError::VolumeClaimTemplates(_) => None,
    }
}
