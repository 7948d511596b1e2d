//! One SandboxClaim pass, top to bottom: the expired or the live path settles a Sandbox (or ends the
//! pass), the first-observed stamp is persisted, then the status is written and the retry decided.

use agent_sandbox_api::v1beta1::SandboxClaim;
use k8s_openapi::jiff::Timestamp;

use super::finish::{Before, finish};
use super::outcome::{Outcome, Settings, Settled};
use super::state::Pass;
use super::{active, expire};
use crate::claim::api::ClaimApi;
use crate::claim::expiry::{self, ClaimExpiry};

/// Runs one pass over `claim` (from the cache) at `now`. `first_observed` is when this process first
/// saw the claim.
pub async fn reconcile<A: ClaimApi>(
    api: &A,
    claim: SandboxClaim,
    first_observed: Option<Timestamp>,
    now: Timestamp,
    settings: &Settings,
) -> Outcome {
    // No finalizer: garbage collection removes the Sandbox through its owner reference.
    if claim.metadata.deletion_timestamp.is_some() {
        return Outcome::default();
    }
    let mut pass = Pass::new(api, claim, now, first_observed, settings);
    let status = pass.claim.status.clone().unwrap_or_default();
    let lifecycle = pass.claim.spec.lifecycle.clone();
    let expired =
        expiry::check(lifecycle.as_ref(), &status.conditions, now) == ClaimExpiry::Expired;
    let before = Before {
        status,
        lifecycle,
        expired,
        first_observed,
    };
    let settled = if expired {
        expire::settle(&mut pass, &before.status).await
    } else {
        active::settle(&mut pass, settings).await
    };
    let (sandbox, error) = match settled {
        Settled::Stop {
            requeue_after,
            error,
        } => return pass.into_outcome(requeue_after, error),
        Settled::Bound { sandbox, error } => (sandbox.map(|s| *s), error),
    };
    if let Err(error) = pass.flush_first_observed().await {
        return pass.into_outcome(None, Some(error));
    }
    finish(pass, &before, sandbox, error).await
}
