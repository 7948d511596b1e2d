//! Finding or making the claim's Sandbox: the status binding, the assigned reference, the Sandbox
//! named like the claim, then warm adoption with two optimistically locked writes, a short wait for
//! candidates still getting their network, and finally a cold create (by the caller).

use std::time::Duration;

use agent_sandbox_api::conditions::events;
use agent_sandbox_api::extensions::SandboxWarmPoolUpdateStrategyType;
use agent_sandbox_api::keys::{EXTENSIONS_GROUP, annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate};

use super::adoption::{complete, verify_candidate};
use super::api::{ApiError, Candidate, ClaimApi};
use super::pass::{Found, Pass, Served, event, grace_left};
use super::patch;
use super::status::ClaimError;
use crate::conditions::sandbox_is_ready;
use crate::ownership::{controller_of, controlling_pool};

/// How long a young claim waits for warm candidates that have no Pod IP yet.
const NETWORK_GRACE: Duration = Duration::from_secs(2);
/// Longest single wait for such candidates.
const NETWORK_RETRY: Duration = Duration::from_millis(500);
/// Attempts at an optimistically locked write before giving up for this pass.
const CONFLICT_ATTEMPTS: usize = 5;
/// Look again after a pass found (on the API server) that the claim already names another Sandbox:
/// it decided on a cached claim older than its own earlier adoption, and the cache is catching up.
const STALE_RETRY: Duration = Duration::from_millis(200);

/// The Sandbox the claim's annotation (or legacy label) says it adopted, and whether it came from
/// the legacy label.
pub fn assigned(claim: &SandboxClaim) -> Option<(String, bool)> {
    let from = |map: Option<&std::collections::BTreeMap<String, String>>| {
        map.and_then(|m| m.get(annotations::SANDBOX_NAME))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    from(claim.metadata.annotations.as_ref())
        .map(|name| (name, false))
        .or_else(|| from(claim.metadata.labels.as_ref()).map(|name| (name, true)))
}

fn has_ips(sandbox: &Sandbox) -> bool {
    sandbox
        .status
        .as_ref()
        .is_some_and(|s| !s.pod_ips.is_empty())
}

fn claim_controlled(sandbox: &Sandbox) -> bool {
    controller_of(&sandbox.metadata, EXTENSIONS_GROUP, "SandboxClaim").is_some()
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

/// A failed adoption: whether the candidate goes back to the queue.
enum Failed {
    /// A write failed for another reason: the candidate stays available.
    Retry(ClaimError),
    /// Lost or contended: the candidate is not put back.
    Lost(ClaimError),
}

/// What the assignment write came to.
enum Committed {
    Yes,
    /// The claim on the API server already names another Sandbox: this pass worked on a stale copy.
    AlreadyAssigned,
}

/// What a warm adoption attempt came to.
enum Adoption {
    Adopted(Box<Sandbox>),
    /// No candidate could be had; `pending` candidates had no network yet.
    NoCandidate {
        pending: usize,
    },
    /// The claim already adopted another Sandbox in an earlier pass (the cache lags).
    Stale,
}

impl Failed {
    fn error(self) -> ClaimError {
        match self {
            Failed::Retry(e) | Failed::Lost(e) => e,
        }
    }
}

/// What the strategy check of a pool resolved to (looked up once per pass).
enum Strategy {
    /// OnReplenish (or unset): stale candidates are adopted.
    Lenient,
    /// Recreate: candidates with an outdated blueprint are skipped.
    Recreate(Box<SandboxTemplate>),
    /// Could not tell: never adopt unverified.
    Unknown,
}

impl<A: ClaimApi> Pass<'_, A> {
    pub(super) async fn get_or_create(&mut self) -> Result<Found, ClaimError> {
        let claim_name = self.name().to_owned();
        // A: the binding recorded in status.
        let bound = self
            .claim
            .status
            .as_ref()
            .map(|s| s.sandbox.name.clone())
            .unwrap_or_default();
        if !bound.is_empty()
            && let Some(sandbox) = self.api.cached_sandbox(&bound)
            && self.owns(&sandbox)
        {
            let warm =
                assigned(&self.claim).is_some_and(|(n, _)| n == bound) || bound != claim_name;
            let sandbox = self.ensure_launch_type(sandbox, warm).await?;
            return Ok(Found::Sandbox(Box::new(sandbox)));
        }
        // B: the adoption this claim committed to.
        if let Some((name, from_label)) = assigned(&self.claim) {
            match self.api.cached_sandbox(&name) {
                None => self.remove_reference().await?,
                Some(sandbox) if self.owns(&sandbox) => {
                    if from_label {
                        self.migrate_label(&name).await;
                    }
                    let sandbox = self.ensure_launch_type(sandbox, true).await?;
                    return Ok(Found::Sandbox(Box::new(sandbox)));
                }
                Some(sandbox) if controlling_pool(&sandbox).is_some() => {
                    if verify_candidate(&sandbox, &self.claim).is_err() {
                        self.remove_reference().await?;
                    } else {
                        let adopted = self
                            .complete_adoption(&sandbox)
                            .await
                            .map_err(Failed::error)?;
                        if from_label {
                            self.migrate_label(&name).await;
                        }
                        return Ok(Found::Sandbox(Box::new(adopted)));
                    }
                }
                Some(sandbox) if claim_controlled(&sandbox) => self.remove_reference().await?,
                // Someone else's object: leave the reference for a human to sort out.
                Some(_) => {}
            }
        }
        // C: a Sandbox named like the claim (an earlier cold create). A cache miss for a create
        // the cache has not shown yet is confirmed with the API server: it must not be followed by
        // an adoption, or the claim would end up owning two Sandboxes.
        let named = match self.api.cached_sandbox(&claim_name) {
            Some(sandbox) => Some(sandbox),
            None if !self.api.created_unseen(&claim_name) => None,
            None => match self.api.read_sandbox(&claim_name).await {
                Ok(sandbox) => Some(sandbox),
                Err(ApiError::NotFound) => None,
                Err(error) => {
                    return Err(ClaimError::Other(format!(
                        "failed to look up sandbox {claim_name:?}: {error}"
                    )));
                }
            },
        };
        if let Some(sandbox) = named {
            if !self.owns(&sandbox) {
                return Err(ClaimError::Other(format!(
                    "sandbox {claim_name:?} is not controlled by claim {claim_name:?}. Please use a different claim name or delete the sandbox manually"
                )));
            }
            let sandbox = self.ensure_launch_type(sandbox, false).await?;
            return Ok(Found::Sandbox(Box::new(sandbox)));
        }
        // D: per-claim env or volumes need a Sandbox of their own.
        if !self.claim.spec.env.is_empty() || !self.claim.spec.volume_claim_templates.is_empty() {
            return Ok(Found::Nothing);
        }
        // E, F: warm adoption, or a short wait for candidates still getting their network.
        let pending = match self.adopt().await? {
            Adoption::Adopted(sandbox) => return Ok(Found::Sandbox(sandbox)),
            Adoption::Stale => return Ok(Found::Pending(STALE_RETRY)),
            Adoption::NoCandidate { pending } => pending,
        };
        if pending > 0
            && let Some(left) = grace_left(&self.claim, NETWORK_GRACE, self.now)
        {
            return Ok(Found::Pending(left.min(NETWORK_RETRY)));
        }
        Ok(Found::Nothing)
    }

    /// Sets the launch-type label if it is missing (never overwrites it).
    async fn ensure_launch_type(
        &self,
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
        self.api
            .patch_sandbox(
                &name,
                patch::metadata("labels", &[(labels::LAUNCH_TYPE, Some(value))]),
            )
            .await
            .map_err(|e| ClaimError::Other(format!("failed to label sandbox {name:?}: {e}")))
    }

    /// Moves a legacy `sandbox-name` label to the annotation (best effort: the label still works).
    async fn migrate_label(&mut self, name: &str) {
        let patch = serde_json::json!({"metadata": {
            "annotations": {annotations::SANDBOX_NAME: name},
            "labels": {labels::SANDBOX_NAME: null},
        }});
        if let Ok(claim) = self.api.patch_claim(patch).await {
            self.claim = claim;
        }
    }

    async fn remove_reference(&mut self) -> Result<(), ClaimError> {
        let patch = serde_json::json!({"metadata": {
            "annotations": {annotations::SANDBOX_NAME: null},
            "labels": {labels::SANDBOX_NAME: null},
        }});
        match self.api.patch_claim(patch).await {
            Ok(claim) => {
                self.claim = claim;
                Ok(())
            }
            Err(error) => Err(ClaimError::Other(format!(
                "failed to remove the assigned sandbox reference: {error}"
            ))),
        }
    }

    fn strategy(&self) -> Strategy {
        let Some(pool) = self.api.cached_pool(&self.claim.spec.warm_pool_ref.name) else {
            return Strategy::Unknown;
        };
        let recreate = pool.spec.update_strategy.as_ref().and_then(|s| s.type_)
            == Some(SandboxWarmPoolUpdateStrategyType::Recreate);
        if !recreate {
            return Strategy::Lenient;
        }
        match self
            .api
            .cached_template(&pool.spec.sandbox_template_ref.name)
        {
            Some(template) => Strategy::Recreate(Box::new(template)),
            None => Strategy::Unknown,
        }
    }

    /// One pass over the pool's queue: the first Ready candidate, else the first networked one; how
    /// many were skipped for lack of a Pod IP. Skipped live candidates go back to the queue's tail.
    fn candidate(&self) -> (Option<Sandbox>, usize) {
        let pool = self.claim.spec.warm_pool_ref.name.clone();
        let mut put_back: Vec<Candidate> = Vec::new();
        let mut fallback: Option<(Candidate, Sandbox)> = None;
        let mut pending = 0;
        let mut strategy = None;
        let chosen = loop {
            let Some(mut queued) = self.api.pop_candidate(&pool) else {
                break None;
            };
            // Deleted, or no longer adoptable (adopted elsewhere): forget it.
            let Some(sandbox) = self.api.cached_sandbox(&queued.name) else {
                continue;
            };
            if verify_candidate(&sandbox, &self.claim).is_err() {
                continue;
            }
            match strategy.get_or_insert_with(|| self.strategy()) {
                Strategy::Unknown => {
                    pending += usize::from(!has_ips(&sandbox));
                    put_back.push(queued);
                    continue;
                }
                // The pool controller deletes it.
                Strategy::Recreate(template) if self.api.outdated(template, &sandbox) => continue,
                _ => {}
            }
            if !has_ips(&sandbox) {
                if let Some(node) = sandbox
                    .status
                    .as_ref()
                    .map(|s| s.node_name.clone())
                    .filter(|n| !n.is_empty())
                {
                    queued.node_name = node;
                }
                pending += 1;
                put_back.push(queued);
                continue;
            }
            if sandbox_is_ready(&sandbox) {
                break Some(sandbox);
            }
            if fallback.is_none() {
                fallback = Some((queued, sandbox));
            } else {
                put_back.push(queued);
            }
        };
        let chosen = match chosen {
            Some(sandbox) => {
                put_back.extend(fallback.map(|(queued, _)| queued));
                Some(sandbox)
            }
            None => fallback.map(|(_, sandbox)| sandbox),
        };
        for queued in put_back {
            self.api.push_candidate(&pool, queued);
        }
        (chosen, pending)
    }

    /// Adopts a warm candidate.
    async fn adopt(&mut self) -> Result<Adoption, ClaimError> {
        let (candidate, pending) = self.candidate();
        let Some(candidate) = candidate else {
            return Ok(Adoption::NoCandidate { pending });
        };
        let name = candidate.metadata.name.clone().unwrap_or_default();
        let give_back = |pass: &Self| {
            pass.api.push_candidate(
                &pass.claim.spec.warm_pool_ref.name,
                Candidate {
                    name: name.clone(),
                    node_name: candidate
                        .status
                        .as_ref()
                        .map(|s| s.node_name.clone())
                        .unwrap_or_default(),
                },
            )
        };
        match self.commit_assignment(&name).await {
            Ok(Committed::Yes) => {}
            Ok(Committed::AlreadyAssigned) => {
                give_back(self);
                return Ok(Adoption::Stale);
            }
            Err(failed) => {
                give_back(self);
                return Err(failed.error());
            }
        }
        match self.complete_adoption(&candidate).await {
            Ok(adopted) => {
                let template = adopted
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotations::SANDBOX_TEMPLATE_REF))
                    .cloned()
                    .or_else(|| self.template().ok().and_then(|t| t.metadata.name))
                    .unwrap_or_else(|| "unknown".to_owned());
                self.events.push(event(
                    events::SANDBOX_ADOPTED,
                    "Adoption",
                    format!("Adopted warm pool Sandbox {name:?}"),
                ));
                self.served.push(Served {
                    launch_type: labels::LAUNCH_TYPE_WARM,
                    warmpool_name: controlling_pool(&candidate).unwrap_or_default().to_owned(),
                    sandbox_template: template,
                    ready: sandbox_is_ready(&candidate),
                    created_by: self.created_by(),
                });
                Ok(Adoption::Adopted(Box::new(adopted)))
            }
            Err(Failed::Retry(error)) => {
                give_back(self);
                Err(error)
            }
            Err(Failed::Lost(error)) => Err(error),
        }
    }

    /// Write 1: record on the claim (locked) which Sandbox it adopts, so a later pass finds it again
    /// instead of adopting a second one while caches lag.
    /// The pass's unsent first-observed stamp goes along with it.
    async fn commit_assignment(&mut self, name: &str) -> Result<Committed, Failed> {
        let set = patch::metadata(
            "annotations",
            &self.with_unsent_stamp(&[(annotations::SANDBOX_NAME, Some(name))]),
        );
        // The first write goes on the cached claim; each conflict retries on a fresh read.
        let mut rv = self.claim.metadata.resource_version.clone();
        for attempt in 0..=CONFLICT_ATTEMPTS {
            if attempt > 0 {
                let fresh = self.api.read_claim().await.map_err(|e| {
                    Failed::Retry(ClaimError::Other(format!(
                        "failed to re-read the claim: {e}"
                    )))
                })?;
                if fresh.metadata.uid != self.claim.metadata.uid {
                    return Err(Failed::Retry(ClaimError::AdoptionConflict(
                        "claim was deleted and recreated".into(),
                    )));
                }
                if assigned(&fresh).is_some_and(|(other, _)| other != name) {
                    return Ok(Committed::AlreadyAssigned);
                }
                rv = fresh.metadata.resource_version.clone();
            }
            match self
                .api
                .patch_claim(patch::locked(set.clone(), rv.as_deref()))
                .await
            {
                Ok(claim) => {
                    self.claim = claim;
                    self.unsent_first_observed = None;
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
    async fn complete_adoption(&mut self, candidate: &Sandbox) -> Result<Sandbox, Failed> {
        let name = candidate.metadata.name.clone().unwrap_or_default();
        let template = self.template().ok();
        match self.adoption_patch(candidate, template.as_ref()).await {
            Ok(adopted) => Ok(adopted),
            Err(ApiError::NotFound | ApiError::Conflict(_)) => {
                self.resolve_completion(&name, template.as_ref()).await
            }
            Err(ApiError::Other(detail)) if detail.starts_with("metadata override conflict") => {
                Err(Failed::Retry(ClaimError::Other(detail)))
            }
            Err(error) => Err(Failed::Retry(ClaimError::Other(format!(
                "failed to adopt sandbox {name:?}: {error}"
            )))),
        }
    }

    async fn adoption_patch(
        &self,
        sandbox: &Sandbox,
        template: Option<&SandboxTemplate>,
    ) -> Result<Sandbox, ApiError> {
        let adopted = complete(sandbox, &self.claim, template).map_err(ApiError::Other)?;
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
        self.api.patch_sandbox(&name, diff).await
    }

    async fn resolve_completion(
        &mut self,
        name: &str,
        template: Option<&SandboxTemplate>,
    ) -> Result<Sandbox, Failed> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let fresh = match self.api.read_sandbox(name).await {
                Ok(fresh) => fresh,
                Err(ApiError::NotFound) => {
                    return Err(self
                        .abandon(name, "deleted before adoption completed", "deleted")
                        .await);
                }
                Err(error) => {
                    return Err(Failed::Retry(ClaimError::Other(format!(
                        "failed to re-read sandbox {name:?}: {error}"
                    ))));
                }
            };
            if self.owns(&fresh) {
                return Ok(fresh);
            }
            if verify_candidate(&fresh, &self.claim).is_err() {
                return Err(self
                    .abandon(name, "lost to another owner", "lost to another owner")
                    .await);
            }
            match self.adoption_patch(&fresh, template).await {
                Ok(adopted) => return Ok(adopted),
                Err(ApiError::Conflict(_)) => continue,
                Err(ApiError::NotFound) => {
                    return Err(self
                        .abandon(name, "deleted before adoption completed", "deleted")
                        .await);
                }
                Err(error) => {
                    return Err(Failed::Retry(ClaimError::Other(format!(
                        "failed to adopt sandbox {name:?}: {error}"
                    ))));
                }
            }
        }
        // The reference stays: the next pass retries the same Sandbox.
        Err(Failed::Lost(ClaimError::AdoptionConflict(format!(
            "adopting sandbox {name:?} failed (conflicting concurrent write)"
        ))))
    }

    /// The candidate is gone or someone else's: drop the claim's reference to exactly it (locked on
    /// a fresh read, so a newer assignment is never erased) and report the conflict.
    async fn abandon(&mut self, name: &str, what: &str, short: &str) -> Failed {
        let cleaned = match self.api.read_claim().await {
            Ok(fresh)
                if fresh.metadata.uid == self.claim.metadata.uid
                    && assigned(&fresh).is_some_and(|(n, _)| n == name) =>
            {
                let patch = patch::locked(
                    serde_json::json!({"metadata": {
                        "annotations": {annotations::SANDBOX_NAME: null},
                        "labels": {labels::SANDBOX_NAME: null},
                    }}),
                    fresh.metadata.resource_version.as_deref(),
                );
                self.api
                    .patch_claim(patch)
                    .await
                    .map(|claim| self.claim = claim)
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        Failed::Lost(ClaimError::AdoptionConflict(match cleaned {
            Ok(()) => format!("sandbox {name:?} {what}"),
            Err(_) => format!("sandbox {name} {short} and reference cleanup failed"),
        }))
    }
}
