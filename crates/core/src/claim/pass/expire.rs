//! The expired claim, in two passes: the first persists the verdict, the second acts on it by the
//! shutdown policy (delete the claim, or keep it and delete its own Sandbox).

use agent_sandbox_api::conditions::{claim as reason, events, types};
use agent_sandbox_api::extensions::{ClaimShutdownPolicy, SandboxClaimStatus};
use agent_sandbox_api::v1beta1::Sandbox;

use super::outcome::{EXPIRED_RETRY, Settled};
use super::state::Pass;
use crate::claim::api::{ApiError, ClaimApi};
use crate::claim::status::ClaimError;
use crate::conditions::{self as condition_list, Desired};

/// The claim's Ready condition already says it expired.
pub(super) fn marked_expired(status: &SandboxClaimStatus) -> bool {
    condition_list::find(&status.conditions, types::READY)
        .is_some_and(|c| c.reason == reason::CLAIM_EXPIRED)
}

/// Settles an expired claim whose status is `old`.
pub(super) async fn settle<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    old: &SandboxClaimStatus,
) -> Settled {
    if !marked_expired(old) {
        return mark(pass, old).await;
    }
    let policy = pass
        .claim
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.shutdown_policy)
        .unwrap_or_default();
    match policy {
        ClaimShutdownPolicy::Delete | ClaimShutdownPolicy::DeleteForeground => {
            let error = delete_claim(pass, policy).await;
            Settled::Stop {
                requeue_after: None,
                error,
            }
        }
        _ => {
            let (sandbox, error) = delete_own_sandbox(pass).await;
            Settled::Bound {
                sandbox: sandbox.map(Box::new),
                error,
            }
        }
    }
}

/// First of two passes: persist the verdict; act on the next pass.
async fn mark<A: ClaimApi>(pass: &mut Pass<'_, A>, old: &SandboxClaimStatus) -> Settled {
    let mut status = old.clone();
    condition_list::set(
        &mut status.conditions,
        Desired::new(
            types::READY,
            "False",
            reason::CLAIM_EXPIRED,
            "Claim expired. Sandbox cleanup initiated.",
        ),
        pass.claim.metadata.generation,
        pass.now,
    );
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    let written = match pass.flush_first_observed().await {
        Ok(()) => pass.write_status(old, &status).await,
        Err(error) => Err(error),
    };
    if let Err(error) = written {
        return Settled::Stop {
            requeue_after: None,
            error: Some(error),
        };
    }
    pass.expired_event();
    Settled::Stop {
        requeue_after: Some(EXPIRED_RETRY),
        error: None,
    }
}

/// Policy Delete / DeleteForeground: the claim goes (and its Sandbox with it, by garbage collection).
async fn delete_claim<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    policy: ClaimShutdownPolicy,
) -> Option<String> {
    let name = match policy {
        ClaimShutdownPolicy::Delete => "Delete",
        _ => "DeleteForeground",
    };
    pass.event(
        events::CLAIM_EXPIRED,
        "Deleting",
        format!("Deleting Claim (ShutdownPolicy={name})"),
    );
    match pass
        .api
        .delete_claim(policy == ClaimShutdownPolicy::DeleteForeground)
        .await
    {
        Ok(()) | Err(ApiError::NotFound) => None,
        Err(error) => Some(format!("failed to delete claim: {error}")),
    }
}

/// Policy Retain: delete the claim's own Sandbox, keep the claim.
async fn delete_own_sandbox<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
) -> (Option<Sandbox>, Option<ClaimError>) {
    let bound = pass
        .claim
        .status
        .as_ref()
        .map(|s| s.sandbox.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| pass.name().to_owned());
    let Some(sandbox) = pass.api.cached_sandbox(&bound) else {
        return (None, None);
    };
    if !pass.owns(&sandbox) {
        let error = format!("sandbox {bound:?} is not controlled by the claim");
        return (None, Some(ClaimError::NotOwnedOnExpiry(error)));
    }
    if sandbox.metadata.deletion_timestamp.is_none() {
        let uid = sandbox.metadata.uid.clone().unwrap_or_default();
        match pass.api.delete_sandbox(&bound, &uid).await {
            Ok(()) | Err(ApiError::NotFound) => {}
            Err(error) => {
                let error = format!("failed to delete sandbox {bound:?}: {error}");
                return (Some(sandbox), Some(ClaimError::Other(error)));
            }
        }
    }
    (Some(sandbox), None)
}
