//! Warm adoption with two optimistically locked writes: the claim records which Sandbox it adopts,
//! then the Sandbox moves from the pool to the claim. Conflicts are settled on the API server's copy
//! of the same Sandbox; a pass never switches candidates once the claim named one.

use agent_sandbox_api::conditions::events;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate};
use serde_json::{Value, json};

use super::outcome::Served;
use super::pick::{candidate, node_name};
use super::state::{Pass, assigned};
use crate::claim::adoption::{complete, verify_candidate};
use crate::claim::api::{ApiError, Candidate, ClaimApi};
use crate::claim::patch;
use crate::claim::status::ClaimError;
use crate::conditions::sandbox_is_ready;
use crate::ownership::controlling_pool;

/// Attempts at an optimistically locked write before giving up for this pass.
const CONFLICT_ATTEMPTS: usize = 5;

/// A failed adoption: whether the candidate goes back to the queue.
pub(super) enum Failed {
    /// A write failed for another reason: the candidate stays available.
    Retry(ClaimError),
    /// Lost or contended: the candidate is not put back.
    Lost(ClaimError),
}

impl Failed {
    pub(super) fn error(self) -> ClaimError {
        match self {
            Failed::Retry(e) | Failed::Lost(e) => e,
        }
    }
}

/// What the assignment write came to.
enum Committed {
    Yes,
    /// The claim on the API server already names another Sandbox: this pass worked on a stale copy.
    AlreadyAssigned,
}

/// What a warm adoption attempt came to.
pub(super) enum Adoption {
    Adopted(Box<Sandbox>),
    /// No candidate could be had; `pending` candidates had no network yet.
    NoCandidate {
        pending: usize,
    },
    /// The claim already adopted another Sandbox in an earlier pass (the cache lags).
    Stale,
}

/// The claim metadata patch dropping its reference to an adopted Sandbox (annotation and legacy label).
pub(super) fn unassign_patch() -> Value {
    json!({"metadata": {
        "annotations": {annotations::SANDBOX_NAME: null},
        "labels": {labels::SANDBOX_NAME: null},
    }})
}

/// Adopts a warm candidate.
pub(super) async fn adopt<A: ClaimApi>(pass: &mut Pass<'_, A>) -> Result<Adoption, ClaimError> {
    let (candidate, pending) = candidate(pass);
    let Some(candidate) = candidate else {
        return Ok(Adoption::NoCandidate { pending });
    };
    let name = candidate.metadata.name.clone().unwrap_or_default();
    let give_back = |pass: &Pass<'_, A>| {
        let queued = Candidate {
            name: name.clone(),
            node_name: node_name(&candidate).unwrap_or_default(),
        };
        pass.api
            .push_candidate(&pass.claim.spec.warm_pool_ref.name, queued)
    };
    match commit_assignment(pass, &name).await {
        Ok(Committed::Yes) => {}
        Ok(Committed::AlreadyAssigned) => {
            give_back(pass);
            return Ok(Adoption::Stale);
        }
        Err(failed) => {
            give_back(pass);
            return Err(failed.error());
        }
    }
    match complete_adoption(pass, &candidate).await {
        Ok(adopted) => {
            record_adoption(pass, &candidate, &adopted);
            Ok(Adoption::Adopted(Box::new(adopted)))
        }
        Err(Failed::Retry(error)) => {
            give_back(pass);
            Err(error)
        }
        Err(Failed::Lost(error)) => Err(error),
    }
}

/// The event and the served claim of a completed adoption.
fn record_adoption<A: ClaimApi>(pass: &mut Pass<'_, A>, candidate: &Sandbox, adopted: &Sandbox) {
    let name = candidate.metadata.name.clone().unwrap_or_default();
    let template = adopted
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::SANDBOX_TEMPLATE_REF))
        .cloned()
        .or_else(|| pass.template().ok().and_then(|t| t.metadata.name))
        .unwrap_or_else(|| "unknown".to_owned());
    pass.event(
        events::SANDBOX_ADOPTED,
        "Adoption",
        format!("Adopted warm pool Sandbox {name:?}"),
    );
    let served = Served {
        launch_type: labels::LAUNCH_TYPE_WARM,
        warmpool_name: controlling_pool(candidate).unwrap_or_default().to_owned(),
        sandbox_template: template,
        ready: sandbox_is_ready(candidate),
        created_by: pass.created_by(),
    };
    pass.served.push(served);
}

/// Write 1: record on the claim (locked) which Sandbox it adopts, so a later pass finds it again
/// instead of adopting a second one while caches lag.
/// The pass's unsent first-observed stamp goes along with it.
async fn commit_assignment<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    name: &str,
) -> Result<Committed, Failed> {
    let set = patch::metadata(
        "annotations",
        &pass.with_unsent_stamp(&[(annotations::SANDBOX_NAME, Some(name))]),
    );
    // The first write goes on the cached claim; each conflict retries on a fresh read.
    let mut rv = pass.claim.metadata.resource_version.clone();
    for attempt in 0..=CONFLICT_ATTEMPTS {
        if attempt > 0 {
            let fresh = pass.api.read_claim().await.map_err(|e| {
                Failed::Retry(ClaimError::Other(format!(
                    "failed to re-read the claim: {e}"
                )))
            })?;
            if fresh.metadata.uid != pass.claim.metadata.uid {
                return Err(Failed::Retry(ClaimError::AdoptionConflict(
                    "claim was deleted and recreated".into(),
                )));
            }
            if assigned(&fresh).is_some_and(|(other, _)| other != name) {
                return Ok(Committed::AlreadyAssigned);
            }
            rv = fresh.metadata.resource_version.clone();
        }
        match pass
            .api
            .patch_claim(patch::locked(set.clone(), rv.as_deref()))
            .await
        {
            Ok(claim) => {
                pass.claim = claim;
                pass.unsent_first_observed = None;
                return Ok(Committed::Yes);
            }
            Err(ApiError::Conflict(_)) => {}
            Err(error) => {
                return Err(Failed::Retry(ClaimError::Other(format!(
                    "failed to record the assigned sandbox: {error}"
                ))));
            }
        }
    }
    Err(Failed::Retry(ClaimError::AdoptionConflict(format!(
        "recording sandbox {name:?} on the claim failed (conflicting concurrent write)"
    ))))
}

/// Write 2: move the Sandbox from the pool to the claim, locked on the candidate's
/// resourceVersion. On a conflict or a 404 the outcome is settled on the API server's copy of the
/// same Sandbox; the pass never switches to another candidate after the claim named this one.
pub(super) async fn complete_adoption<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    candidate: &Sandbox,
) -> Result<Sandbox, Failed> {
    let name = candidate.metadata.name.clone().unwrap_or_default();
    let template = pass.template().ok();
    match adoption_patch(pass, candidate, template.as_ref()).await {
        Ok(adopted) => Ok(adopted),
        Err(ApiError::NotFound | ApiError::Conflict(_)) => {
            resolve_completion(pass, &name, template.as_ref()).await
        }
        Err(ApiError::Other(detail)) if detail.starts_with("metadata override conflict") => {
            Err(Failed::Retry(ClaimError::Other(detail)))
        }
        Err(error) => Err(Failed::Retry(ClaimError::Other(format!(
            "failed to adopt sandbox {name:?}: {error}"
        )))),
    }
}

async fn adoption_patch<A: ClaimApi>(
    pass: &Pass<'_, A>,
    sandbox: &Sandbox,
    template: Option<&SandboxTemplate>,
) -> Result<Sandbox, ApiError> {
    let adopted = complete(sandbox, &pass.claim, template).map_err(ApiError::Other)?;
    let (Ok(before), Ok(after)) = (
        serde_json::to_value(sandbox),
        serde_json::to_value(&adopted),
    ) else {
        return Err(ApiError::Other("cannot serialise the sandbox".into()));
    };
    let diff = patch::locked(
        patch::diff(&before, &after),
        sandbox.metadata.resource_version.as_deref(),
    );
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    pass.api.patch_sandbox(&name, diff).await
}

/// Settles a contended adoption on fresh reads of the same Sandbox.
async fn resolve_completion<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    name: &str,
    template: Option<&SandboxTemplate>,
) -> Result<Sandbox, Failed> {
    for _ in 0..CONFLICT_ATTEMPTS {
        let fresh = match pass.api.read_sandbox(name).await {
            Ok(fresh) => fresh,
            Err(error) => return Err(completion_failed(pass, name, "re-read", error).await),
        };
        if pass.owns(&fresh) {
            return Ok(fresh);
        }
        if verify_candidate(&fresh, &pass.claim).is_err() {
            let what = "lost to another owner";
            return Err(abandon(pass, name, what, what).await);
        }
        match adoption_patch(pass, &fresh, template).await {
            Ok(adopted) => return Ok(adopted),
            Err(ApiError::Conflict(_)) => continue,
            Err(error) => return Err(completion_failed(pass, name, "adopt", error).await),
        }
    }
    // The reference stays: the next pass retries the same Sandbox.
    Err(Failed::Lost(ClaimError::AdoptionConflict(format!(
        "adopting sandbox {name:?} failed (conflicting concurrent write)"
    ))))
}

/// A read or write of the candidate failed while settling: gone means abandoned, anything else is
/// retried.
async fn completion_failed<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    name: &str,
    doing: &str,
    error: ApiError,
) -> Failed {
    match error {
        ApiError::NotFound => {
            abandon(pass, name, "deleted before adoption completed", "deleted").await
        }
        error => Failed::Retry(ClaimError::Other(format!(
            "failed to {doing} sandbox {name:?}: {error}"
        ))),
    }
}

/// The candidate is gone or someone else's: drop the claim's reference to exactly it (locked on
/// a fresh read, so a newer assignment is never erased) and report the conflict.
async fn abandon<A: ClaimApi>(
    pass: &mut Pass<'_, A>,
    name: &str,
    what: &str,
    short: &str,
) -> Failed {
    let cleaned = match pass.api.read_claim().await {
        Ok(fresh)
            if fresh.metadata.uid == pass.claim.metadata.uid
                && assigned(&fresh).is_some_and(|(n, _)| n == name) =>
        {
            let patch = patch::locked(unassign_patch(), fresh.metadata.resource_version.as_deref());
            pass.api
                .patch_claim(patch)
                .await
                .map(|claim| pass.claim = claim)
        }
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    };
    Failed::Lost(ClaimError::AdoptionConflict(match cleaned {
        Ok(()) => format!("sandbox {name:?} {what}"),
        Err(_) => format!("sandbox {name} {short} and reference cleanup failed"),
    }))
}
