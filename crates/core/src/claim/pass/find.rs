//! Finding the claim's Sandbox, in order: the binding recorded in status (A), the adoption the claim
//! committed to (B), a Sandbox named like the claim (C); then, unless the claim needs a Sandbox of
//! its own (D), warm adoption or a short wait for candidates still getting their network (E, F).

use std::time::Duration;

use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::adopt::{self, Adoption};
use super::state::{Pass, assigned};
use crate::claim::adoption::verify_candidate;
use crate::claim::api::{ApiError, ClaimApi};
use crate::claim::patch;
use crate::claim::status::ClaimError;
use crate::ownership::{controlling_claim, controlling_pool};

/// How long a young claim waits for warm candidates that have no Pod IP yet.
const NETWORK_GRACE: Duration = Duration::from_secs(2);
/// Longest single wait for such candidates.
const NETWORK_RETRY: Duration = Duration::from_millis(500);
/// Look again after a pass found (on the API server) that the claim already names another Sandbox:
/// it decided on a cached claim older than its own earlier adoption, and the cache is catching up.
const STALE_RETRY: Duration = Duration::from_millis(200);

/// Where a Sandbox for an active claim stands.
pub(super) enum Found {
    /// Bound (found, adopted or created).
    Sandbox(Box<Sandbox>),
    /// None yet: create one cold.
    Nothing,
    /// Warm candidates are still getting their network; look again after this long.
    Pending(Duration),
}

fn claim_controlled(sandbox: &Sandbox) -> bool {
    controlling_claim(sandbox).is_some()
}

fn launch_type(sandbox: &Sandbox) -> Option<&str> {
    sandbox
        .metadata
        .labels
        .as_ref()?
        .get(labels::LAUNCH_TYPE)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The claim's age passed `grace` at `now`? Returns the time left if not.
fn grace_left(claim: &SandboxClaim, grace: Duration, now: Timestamp) -> Option<Duration> {
    let created = claim.metadata.creation_timestamp.as_ref()?.0;
    let deadline = created
        .checked_add(SignedDuration::try_from(grace).ok()?)
        .ok()?;
    (now < deadline)
        .then(|| Duration::try_from(deadline.duration_since(now)).ok())
        .flatten()
}

/// The claim's Sandbox, or what to do for lack of one.
pub(super) async fn find<A: ClaimApi>(pass: &mut Pass<'_, A>) -> Result<Found, ClaimError> {
    if let Some(sandbox) = bound_in_status(pass).await? {
        return Ok(Found::Sandbox(Box::new(sandbox)));
    }
    if let Some(sandbox) = assigned_sandbox(pass).await? {
        return Ok(Found::Sandbox(Box::new(sandbox)));
    }
    if let Some(sandbox) = named_like_claim(pass).await? {
        return Ok(Found::Sandbox(Box::new(sandbox)));
    }
    // D: per-claim env or volumes need a Sandbox of their own.
    let spec = &pass.claim.spec;
    if !spec.env.is_empty() || !spec.volume_claim_templates.is_empty() {
        return Ok(Found::Nothing);
    }
    adopt_or_wait(pass).await
}

/// A: the binding recorded in status, if the claim still owns that Sandbox.
async fn bound_in_status<A: ClaimApi>(pass: &Pass<'_, A>) -> Result<Option<Sandbox>, ClaimError> {
    let bound = pass
        .claim
        .status
        .as_ref()
        .map(|s| s.sandbox.name.clone())
        .unwrap_or_default();
    if bound.is_empty() {
        return Ok(None);
    }
    let Some(sandbox) = pass.api.cached_sandbox(&bound).filter(|s| pass.owns(s)) else {
        return Ok(None);
    };
    let warm = assigned(&pass.claim).is_some_and(|(n, _)| n == bound) || bound != pass.name();
    ensure_launch_type(pass, sandbox, warm).await.map(Some)
}

/// B: the adoption this claim committed to: finished if the pool still holds the Sandbox, the
/// reference dropped if the Sandbox is gone or no longer a candidate.
async fn assigned_sandbox<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
) -> Result<Option<Sandbox>, ClaimError> {
    let Some((name, from_label)) = assigned(&pass.claim) else {
        return Ok(None);
    };
    match pass.api.cached_sandbox(&name) {
        Some(sandbox) if pass.owns(&sandbox) => {
            if from_label {
                migrate_label(pass, &name).await;
            }
            ensure_launch_type(pass, sandbox, true).await.map(Some)
        }
        Some(sandbox)
            if controlling_pool(&sandbox).is_some()
                && verify_candidate(&sandbox, &pass.claim).is_ok() =>
        {
            let adopted = adopt::complete_adoption(pass, &sandbox)
                .await
                .map_err(adopt::Failed::error)?;
            if from_label {
                migrate_label(pass, &name).await;
            }
            Ok(Some(adopted))
        }
        // Gone, no longer a candidate, or another claim's.
        None => remove_reference(pass).await.map(|()| None),
        Some(sandbox) if controlling_pool(&sandbox).is_some() || claim_controlled(&sandbox) => {
            remove_reference(pass).await.map(|()| None)
        }
        // Someone else's object: leave the reference for a human to sort out.
        Some(_) => Ok(None),
    }
}

/// C: a Sandbox named like the claim (an earlier cold create). A cache miss for a create the cache
/// has not shown yet is confirmed with the API server: it must not be followed by an adoption, or
/// the claim would end up owning two Sandboxes.
async fn named_like_claim<A: ClaimApi>(pass: &Pass<'_, A>) -> Result<Option<Sandbox>, ClaimError> {
    let claim_name = pass.name().to_owned();
    let named = match pass.api.cached_sandbox(&claim_name) {
        Some(sandbox) => Some(sandbox),
        None if !pass.api.created_unseen(&claim_name) => None,
        None => match pass.api.read_sandbox(&claim_name).await {
            Ok(sandbox) => Some(sandbox),
            Err(ApiError::NotFound) => None,
            Err(error) => {
                return Err(ClaimError::Other(format!(
                    "failed to look up sandbox {claim_name:?}: {error}"
                )));
            }
        },
    };
    let Some(sandbox) = named else {
        return Ok(None);
    };
    if !pass.owns(&sandbox) {
        return Err(ClaimError::Other(format!(
            "sandbox {claim_name:?} is not controlled by claim {claim_name:?}. Please use a different claim name or delete the sandbox manually"
        )));
    }
    ensure_launch_type(pass, sandbox, false).await.map(Some)
}

/// E, F: warm adoption, or a short wait for candidates still getting their network.
async fn adopt_or_wait<A: ClaimApi>(pass: &mut Pass<'_, A>) -> Result<Found, ClaimError> {
    let pending = match adopt::adopt(pass).await? {
        Adoption::Adopted(sandbox) => return Ok(Found::Sandbox(sandbox)),
        Adoption::Stale => return Ok(Found::Pending(STALE_RETRY)),
        Adoption::NoCandidate { pending } => pending,
    };
    if pending > 0
        && let Some(left) = grace_left(&pass.claim, NETWORK_GRACE, pass.now)
    {
        return Ok(Found::Pending(left.min(NETWORK_RETRY)));
    }
    Ok(Found::Nothing)
}

/// Sets the launch-type label if it is missing (never overwrites it).
async fn ensure_launch_type<A: ClaimApi>(
    pass: &Pass<'_, A>,
    sandbox: Sandbox,
    warm: bool,
) -> Result<Sandbox, ClaimError> {
    if launch_type(&sandbox).is_some() {
        return Ok(sandbox);
    }
    let value = if warm {
        labels::LAUNCH_TYPE_WARM
    } else {
        labels::LAUNCH_TYPE_COLD
    };
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    pass.api
        .patch_sandbox(
            &name,
            patch::metadata("labels", &[(labels::LAUNCH_TYPE, Some(value))]),
        )
        .await
        .map_err(|e| ClaimError::Other(format!("failed to label sandbox {name:?}: {e}")))
}

/// Moves a legacy `sandbox-name` label to the annotation (best effort: the label still works).
async fn migrate_label<A: ClaimApi>(pass: &mut Pass<'_, A>, name: &str) {
    let patch = serde_json::json!({"metadata": {
        "annotations": {annotations::SANDBOX_NAME: name},
        "labels": {labels::SANDBOX_NAME: null},
    }});
    if let Ok(claim) = pass.api.patch_claim(patch).await {
        pass.claim = claim;
    }
}

async fn remove_reference<A: ClaimApi>(pass: &mut Pass<'_, A>) -> Result<(), ClaimError> {
    match pass.api.patch_claim(adopt::unassign_patch()).await {
        Ok(claim) => {
            pass.claim = claim;
            Ok(())
        }
        Err(error) => Err(ClaimError::Other(format!(
            "failed to remove the assigned sandbox reference: {error}"
        ))),
    }
}
