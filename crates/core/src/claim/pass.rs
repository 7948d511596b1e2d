//! One SandboxClaim pass, top to bottom: observability stamps, the two-pass expiry, binding a Sandbox
//! (see [`super::resolve`]), status, first-Ready bookkeeping, and how the outcome is retried.

use std::time::Duration;

use agent_sandbox_api::conditions::{claim as reason, events, types};
use agent_sandbox_api::extensions::{ClaimShutdownPolicy, SandboxClaimStatus};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate};
use agent_sandbox_api::validate::{self, ValidationContext};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::api::{ApiError, ClaimApi};
use super::expiry::{self, ClaimExpiry};
use super::metadata::merge_no_override;
use super::readiness::{self, Latencies};
use super::status::{self, ClaimError, Inputs};
use super::{cold, patch};
use crate::conditions::{self as condition_list, Desired};
use crate::events::{Event, EventType};
use crate::ownership::{Ownership, ownership};
use crate::sandbox::normalise_created_by;

/// Longest wait for a TemplateNotFound / WarmPoolNotFound claim (watches usually wake it sooner).
const NOT_FOUND_RETRY: Duration = Duration::from_secs(60);
/// Retry after a cold create found its Sandbox already there (the cache lags the create).
const CREATE_PENDING_RETRY: Duration = Duration::from_millis(200);
/// Requeue that lets the persisted expiry act in the next pass.
const EXPIRED_RETRY: Duration = Duration::from_millis(1);

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

/// The pass's view of the claim and what it produced so far.
pub(super) struct Pass<'a, A> {
    pub(super) api: &'a A,
    pub(super) claim: SandboxClaim,
    pub(super) now: Timestamp,
    pub(super) events: Vec<Event>,
    pub(super) served: Vec<Served>,
    /// A `controller-first-observed-at` value not yet persisted: it rides along with the pass's
    /// first claim metadata write (the adoption's assignment), or is written on its own before the
    /// status ([`Pass::flush_first_observed`]).
    pub(super) unsent_first_observed: Option<String>,
}

/// Where a Sandbox for an active claim stands.
pub(super) enum Found {
    /// Bound (found, adopted or created).
    Sandbox(Box<Sandbox>),
    /// None yet: create one cold.
    Nothing,
    /// Warm candidates are still getting their network; look again after this long.
    Pending(Duration),
}

pub(super) fn event(reason: &'static str, action: &'static str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason,
        action,
        note,
    }
}

fn ready_reason(status: &SandboxClaimStatus) -> Option<&str> {
    condition_list::find(&status.conditions, types::READY).map(|c| c.reason.as_str())
}

fn status_patch(status: &SandboxClaimStatus, resource_version: Option<&str>) -> Value {
    let or_null = |empty: bool, value: Value| if empty { Value::Null } else { value };
    patch::locked(
        json!({"status": {
            "conditions": or_null(status.conditions.is_empty(), json!(status.conditions)),
            "sandbox": {
                "name": or_null(status.sandbox.name.is_empty(), json!(status.sandbox.name)),
                "podIPs": or_null(status.sandbox.pod_ips.is_empty(), json!(status.sandbox.pod_ips)),
            },
        }}),
        resource_version,
    )
}

fn same_status(old: &SandboxClaimStatus, new: &SandboxClaimStatus) -> bool {
    let mut old = old.clone();
    old.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    old == *new
}

/// Runs one pass over `claim` (from the cache) at `now`. `first_observed` is when this process first
/// saw the claim.
pub async fn reconcile<A: ClaimApi>(
    api: &A,
    claim: SandboxClaim,
    first_observed: Option<Timestamp>,
    now: Timestamp,
    settings: &Settings,
) -> Outcome {
    let mut outcome = Outcome::default();
    // No finalizer: garbage collection removes the Sandbox through its owner reference.
    if claim.metadata.deletion_timestamp.is_some() {
        return outcome;
    }
    let mut pass = Pass {
        api,
        claim,
        now,
        events: Vec::new(),
        served: Vec::new(),
        unsent_first_observed: None,
    };
    pass.initialize_annotations(first_observed, settings);
    let old = pass.claim.status.clone().unwrap_or_default();
    let lifecycle = pass.claim.spec.lifecycle.clone();
    let before = expiry::check(lifecycle.as_ref(), &old.conditions, now);

    let (sandbox, error) = if before == ClaimExpiry::Expired {
        if ready_reason(&old) != Some(reason::CLAIM_EXPIRED) {
            // First of two passes: persist the verdict; act on the next pass.
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
                now,
            );
            status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
            if let Err(error) = pass.flush_first_observed().await {
                outcome.error = Some(error);
                return outcome;
            }
            if let Err(error) = pass.write_status(&old, &status).await {
                outcome.error = Some(error);
                return outcome;
            }
            pass.events.push(event(
                events::CLAIM_EXPIRED,
                "Claim Expired",
                "Claim expired".into(),
            ));
            outcome.events = pass.events;
            outcome.requeue_after = Some(EXPIRED_RETRY);
            return outcome;
        }
        let policy = lifecycle
            .as_ref()
            .and_then(|l| l.shutdown_policy)
            .unwrap_or_default();
        if matches!(
            policy,
            ClaimShutdownPolicy::Delete | ClaimShutdownPolicy::DeleteForeground
        ) {
            let name = match policy {
                ClaimShutdownPolicy::Delete => "Delete",
                _ => "DeleteForeground",
            };
            outcome.events.push(event(
                events::CLAIM_EXPIRED,
                "Deleting",
                format!("Deleting Claim (ShutdownPolicy={name})"),
            ));
            match api
                .delete_claim(policy == ClaimShutdownPolicy::DeleteForeground)
                .await
            {
                Ok(()) | Err(ApiError::NotFound) => {}
                Err(error) => outcome.error = Some(format!("failed to delete claim: {error}")),
            }
            return outcome;
        }
        pass.reconcile_expired().await
    } else {
        match pass.reconcile_active(settings).await {
            Active::Pending(wait) => {
                // Nothing decided yet: no status write, just look again soon.
                if let Err(error) = pass.flush_first_observed().await {
                    outcome.error = Some(error);
                }
                outcome.events = pass.events;
                outcome.served = pass.served;
                outcome.requeue_after = Some(wait);
                return outcome;
            }
            Active::Done(sandbox, error) => (sandbox.map(|s| *s), error),
        }
    };

    if let Err(error) = pass.flush_first_observed().await {
        outcome.error = Some(error);
        outcome.events = pass.events;
        outcome.served = pass.served;
        return outcome;
    }
    let expired = before == ClaimExpiry::Expired;
    let inputs = Inputs {
        error: error.clone(),
        expired,
        sandbox: sandbox.as_ref(),
    };
    let mut new = status::compute(&old, &inputs, pass.claim.metadata.generation, now);
    // A Finished condition mirrored just now may end the claim already.
    let after = expiry::check(lifecycle.as_ref(), &new.conditions, now);
    let newly_expired = !expired && after == ClaimExpiry::Expired;
    if newly_expired && ready_reason(&new) != Some(reason::CLAIM_EXPIRED) {
        new = status::compute(
            &old,
            &Inputs {
                expired: true,
                ..inputs
            },
            pass.claim.metadata.generation,
            now,
        );
        pass.events.push(event(
            events::CLAIM_EXPIRED,
            "Claim Expired",
            "Claim expired".into(),
        ));
    }
    let mut errors = Vec::new();
    match pass.write_status(&old, &new).await {
        Err(error) => errors.push(error),
        Ok(true) => {
            let decision = readiness::decide(
                &pass.claim,
                condition_list::find(&old.conditions, types::READY),
                condition_list::find(&new.conditions, types::READY),
                sandbox.as_ref(),
                first_observed,
                now,
            );
            outcome.latencies = decision.record;
            outcome.drain_first_observed = decision.drain;
            if let Some(value) = decision.stamp {
                let patch = patch::metadata(
                    "annotations",
                    &[(annotations::CLAIM_FIRST_READY_AT, Some(&value))],
                );
                match api.patch_claim(patch).await {
                    Ok(_) | Err(ApiError::NotFound) => {}
                    Err(error) => {
                        errors.push(format!("failed to stamp the first-ready time: {error}"))
                    }
                }
            }
        }
        Ok(false) => {}
    }

    let base = if newly_expired {
        Some(EXPIRED_RETRY)
    } else {
        match after {
            ClaimExpiry::In(left) if !expired => Some(left),
            _ => None,
        }
    };
    let cap = |limit: Duration| Some(base.map_or(limit, |b| b.min(limit)));
    outcome.requeue_after = base;
    match error {
        Some(ClaimError::TemplateNotFound(_) | ClaimError::WarmPoolNotFound(_)) => {
            outcome.requeue_after = cap(NOT_FOUND_RETRY)
        }
        Some(ClaimError::CreatePending) => outcome.requeue_after = cap(CREATE_PENDING_RETRY),
        // Only a spec change fixes these: report, don't retry.
        Some(
            ClaimError::InvalidMetadata(_)
            | ClaimError::EnvRejected(_)
            | ClaimError::NotOwnedOnExpiry(_)
            | ClaimError::VolumeClaimTemplates(_),
        )
        | None => {}
        Some(ClaimError::AdoptionConflict(detail)) => errors.insert(0, detail),
        Some(ClaimError::Other(detail)) => errors.insert(0, detail),
    }
    if !errors.is_empty() {
        outcome.error = Some(errors.join("; "));
    }
    outcome.events = pass.events;
    outcome.served = pass.served;
    outcome
}

/// The result of the active path.
pub(super) enum Active {
    /// Status can be computed from this.
    Done(Option<Box<Sandbox>>, Option<ClaimError>),
    /// Wait for warm candidates' network.
    Pending(Duration),
}

impl<A: ClaimApi> Pass<'_, A> {
    pub(super) fn uid(&self) -> &str {
        self.claim.metadata.uid.as_deref().unwrap_or_default()
    }

    pub(super) fn name(&self) -> &str {
        self.claim.metadata.name.as_deref().unwrap_or_default()
    }

    pub(super) fn owns(&self, sandbox: &Sandbox) -> bool {
        ownership(&sandbox.metadata, self.uid()) == Ownership::Owned
    }

    pub(super) fn created_by(&self) -> String {
        self.claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::CREATED_BY))
            .map_or("unknown", |v| normalise_created_by(v))
            .to_owned()
    }

    /// Stamps `controller-first-observed-at` on the in-memory claim if it has none; persisting it is
    /// left to the pass's first claim metadata write (see [`Pass::unsent_first_observed`]), which saves
    /// a request on every warm claim.
    fn initialize_annotations(&mut self, first_observed: Option<Timestamp>, settings: &Settings) {
        let stamped = self
            .claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::CONTROLLER_FIRST_OBSERVED_AT))
            .is_some_and(|v| !v.is_empty());
        if stamped {
            return;
        }
        let value = first_observed.unwrap_or(self.now).to_string();
        self.claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                annotations::CONTROLLER_FIRST_OBSERVED_AT.to_owned(),
                value.clone(),
            );
        if settings.observability_annotations {
            self.unsent_first_observed = Some(value);
        }
    }

    /// The annotations a claim metadata patch sets: `entries` plus the unsent first-observed stamp.
    pub(super) fn with_unsent_stamp<'v>(
        &'v self,
        entries: &[(&'v str, Option<&'v str>)],
    ) -> Vec<(&'v str, Option<&'v str>)> {
        let mut all = entries.to_vec();
        if let Some(value) = &self.unsent_first_observed {
            all.push((annotations::CONTROLLER_FIRST_OBSERVED_AT, Some(value)));
        }
        all
    }

    /// Persists the first-observed stamp if no earlier write of this pass carried it.
    async fn flush_first_observed(&mut self) -> Result<(), String> {
        let Some(value) = self.unsent_first_observed.take() else {
            return Ok(());
        };
        let patch = patch::metadata(
            "annotations",
            &[(annotations::CONTROLLER_FIRST_OBSERVED_AT, Some(&value))],
        );
        match self.api.patch_claim(patch).await {
            Ok(claim) => {
                self.claim = claim;
                Ok(())
            }
            // Gone: the status write finds that out too.
            Err(ApiError::NotFound) => Ok(()),
            Err(error) => Err(format!("failed to stamp the first-observed time: {error}")),
        }
    }

    /// Writes the status if it changed; `Ok(true)` when the write is authoritative.
    async fn write_status(
        &mut self,
        old: &SandboxClaimStatus,
        new: &SandboxClaimStatus,
    ) -> Result<bool, String> {
        if same_status(old, new) {
            return Ok(false);
        }
        let patch = status_patch(new, self.claim.metadata.resource_version.as_deref());
        match self.api.patch_claim_status(patch).await {
            Ok(()) => {
                self.claim.status = Some(new.clone());
                Ok(true)
            }
            // Gone: nothing left to do.
            Err(ApiError::NotFound) => Ok(false),
            // Computed from a stale claim: drop it. The write that won re-enqueues the claim, and a
            // stale pass must never regress the status nor record latencies.
            Err(ApiError::Conflict(_)) => Ok(false),
            Err(error) => Err(format!("failed to update claim status: {error}")),
        }
    }

    /// The pool's template, or why it cannot be had.
    pub(super) fn template(&self) -> Result<SandboxTemplate, ClaimError> {
        let pool_name = &self.claim.spec.warm_pool_ref.name;
        let pool = self
            .api
            .cached_pool(pool_name)
            .ok_or_else(|| ClaimError::WarmPoolNotFound(pool_name.clone()))?;
        let template_name = &pool.spec.sandbox_template_ref.name;
        self.api
            .cached_template(template_name)
            .ok_or_else(|| ClaimError::TemplateNotFound(template_name.clone()))
    }

    async fn reconcile_active(&mut self, settings: &Settings) -> Active {
        if let Err(error) = validate::additional_pod_metadata(
            &self.claim.spec.additional_pod_metadata,
            &settings.validation,
        ) {
            return Active::Done(
                None,
                Some(ClaimError::InvalidMetadata(format!(
                    "invalid additionalPodMetadata: {}",
                    error.message()
                ))),
            );
        }
        match self.get_or_create().await {
            Err(error) => Active::Done(None, Some(error)),
            Ok(Found::Pending(wait)) => Active::Pending(wait),
            Ok(Found::Sandbox(sandbox)) => {
                let (sandbox, error) = self.sync_metadata(*sandbox).await;
                Active::Done(Some(Box::new(sandbox)), error)
            }
            Ok(Found::Nothing) => match self.template() {
                Err(error) => Active::Done(None, Some(error)),
                Ok(template) => {
                    // A create cannot be locked on the claim, so make sure this pass is not
                    // deciding on a stale claim that already adopted or created a Sandbox.
                    match self.api.read_claim().await {
                        Ok(fresh)
                            if fresh.metadata.resource_version
                                != self.claim.metadata.resource_version =>
                        {
                            return Active::Pending(CREATE_PENDING_RETRY);
                        }
                        Ok(_) => {}
                        Err(ApiError::NotFound) => return Active::Pending(NOT_FOUND_RETRY),
                        Err(error) => {
                            return Active::Done(
                                None,
                                Some(ClaimError::Other(format!(
                                    "failed to re-read the claim before a cold create: {error}"
                                ))),
                            );
                        }
                    }
                    self.cold_start(&template).await
                }
            },
        }
    }

    async fn cold_start(&mut self, template: &SandboxTemplate) -> Active {
        match self.create_cold(template).await {
            Ok(sandbox) => Active::Done(Some(Box::new(sandbox)), None),
            Err(error) => Active::Done(None, Some(error)),
        }
    }

    /// Keeps the bound Sandbox's pod metadata equal to template + claim identity + the claim's
    /// additional metadata, so later claim edits reach the Pod in place.
    async fn sync_metadata(&mut self, sandbox: Sandbox) -> (Sandbox, Option<ClaimError>) {
        let template = match self.template() {
            Ok(template) => template,
            Err(error) => {
                let extra = &self.claim.spec.additional_pod_metadata;
                if extra.labels.is_empty() && extra.annotations.is_empty() {
                    return (sandbox, None);
                }
                let detail = match error {
                    ClaimError::WarmPoolNotFound(n) => format!("SandboxWarmPool {n:?} not found"),
                    ClaimError::TemplateNotFound(n) => format!("SandboxTemplate {n:?} not found"),
                    other => format!("{other:?}"),
                };
                return (
                    sandbox,
                    Some(ClaimError::Other(format!(
                        "failed to get template for metadata propagation: {detail}"
                    ))),
                );
            }
        };
        let template_hash = name_hash(template.metadata.name.as_deref().unwrap_or_default());
        let created_by = self
            .claim
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::CREATED_BY))
            .filter(|v| !v.is_empty())
            .cloned();
        let mut desired = template.spec.blueprint.pod_template.metadata.clone();
        desired
            .labels
            .insert(labels::CLAIM_UID.to_owned(), self.uid().to_owned());
        desired.labels.insert(
            labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
            template_hash.clone(),
        );
        match &created_by {
            Some(creator) => desired
                .labels
                .insert(labels::CREATED_BY.to_owned(), creator.clone()),
            None => desired.labels.remove(labels::CREATED_BY),
        };
        if let Err(conflict) =
            merge_no_override(&mut desired, &self.claim.spec.additional_pod_metadata)
        {
            return (sandbox, Some(ClaimError::Other(conflict)));
        }
        let mut updated = sandbox.clone();
        updated.spec.blueprint.pod_template.metadata = desired;
        let sandbox_labels = updated.metadata.labels.get_or_insert_with(Default::default);
        sandbox_labels.insert(labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(), template_hash);
        match created_by {
            Some(creator) => sandbox_labels.insert(labels::CREATED_BY.to_owned(), creator),
            None => sandbox_labels.remove(labels::CREATED_BY),
        };
        let (Ok(before), Ok(after)) = (
            serde_json::to_value(&sandbox),
            serde_json::to_value(&updated),
        ) else {
            return (sandbox, None);
        };
        let diff = patch::diff(&before, &after);
        if patch::is_empty(&diff) {
            return (sandbox, None);
        }
        let name = sandbox.metadata.name.clone().unwrap_or_default();
        match self.api.patch_sandbox(&name, diff).await {
            Ok(written) => (written, None),
            // The status keeps naming the Sandbox: this is transient.
            Err(error) => (
                sandbox,
                Some(ClaimError::Other(format!(
                    "failed to update sandbox {name:?} metadata: {error}"
                ))),
            ),
        }
    }

    async fn create_cold(&mut self, template: &SandboxTemplate) -> Result<Sandbox, ClaimError> {
        let sandbox = cold::build(&self.claim, template).map_err(|e| match e {
            cold::ColdError::EnvRejected(m) => ClaimError::EnvRejected(m),
            cold::ColdError::VolumeClaimTemplates(m) => ClaimError::VolumeClaimTemplates(m),
            cold::ColdError::Other(m) => ClaimError::Other(m),
        })?;
        match self.api.create_sandbox(sandbox).await {
            Ok(created) => {
                let name = created.metadata.name.clone().unwrap_or_default();
                self.events.push(event(
                    events::SANDBOX_PROVISIONED,
                    "Provisioning",
                    format!("Created Sandbox {name:?}"),
                ));
                self.served.push(Served {
                    launch_type: labels::LAUNCH_TYPE_COLD,
                    warmpool_name: self.claim.spec.warm_pool_ref.name.clone(),
                    sandbox_template: template.metadata.name.clone().unwrap_or_default(),
                    ready: false,
                    created_by: self.created_by(),
                });
                Ok(created)
            }
            Err(ApiError::AlreadyExists) => Err(ClaimError::CreatePending),
            Err(error) => Err(ClaimError::Other(format!("sandbox create error: {error}"))),
        }
    }

    /// Retain at expiry: delete the claim's own Sandbox, keep the claim.
    async fn reconcile_expired(&mut self) -> (Option<Sandbox>, Option<ClaimError>) {
        let bound = self
            .claim
            .status
            .as_ref()
            .map(|s| s.sandbox.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.name().to_owned());
        let Some(sandbox) = self.api.cached_sandbox(&bound) else {
            return (None, None);
        };
        if !self.owns(&sandbox) {
            return (
                None,
                Some(ClaimError::NotOwnedOnExpiry(format!(
                    "sandbox {bound:?} is not controlled by the claim"
                ))),
            );
        }
        if sandbox.metadata.deletion_timestamp.is_none() {
            let uid = sandbox.metadata.uid.clone().unwrap_or_default();
            match self.api.delete_sandbox(&bound, &uid).await {
                Ok(()) | Err(ApiError::NotFound) => {}
                Err(error) => {
                    return (
                        Some(sandbox),
                        Some(ClaimError::Other(format!(
                            "failed to delete sandbox {bound:?}: {error}"
                        ))),
                    );
                }
            }
        }
        (Some(sandbox), None)
    }
}

/// The claim's age passed `grace` at `now`? Returns the time left if not.
pub(super) fn grace_left(
    claim: &SandboxClaim,
    grace: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let created = claim.metadata.creation_timestamp.as_ref()?.0;
    let deadline = created
        .checked_add(SignedDuration::try_from(grace).ok()?)
        .ok()?;
    (now < deadline)
        .then(|| Duration::try_from(deadline.duration_since(now)).ok())
        .flatten()
}
