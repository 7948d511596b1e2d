//! The pass's view of its claim: the claim as last read or written, what the pass produced so far,
//! and the claim writes every step shares (the first-observed stamp and the status).

use agent_sandbox_api::conditions::events;
use agent_sandbox_api::extensions::SandboxClaimStatus;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::outcome::{Outcome, Served, Settings};
use crate::claim::api::{ApiError, ClaimApi};
use crate::claim::patch;
use crate::claim::status::ClaimError;
use crate::events::{Event, EventType};
use crate::ownership::{Ownership, ownership};
use crate::sandbox::normalise_created_by;

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

/// The Sandbox the claim's annotation (or legacy label) says it adopted, and whether it came from
/// the legacy label.
pub(super) fn assigned(claim: &SandboxClaim) -> Option<(String, bool)> {
    let from = |map: Option<&std::collections::BTreeMap<String, String>>| {
        map.and_then(|m| m.get(annotations::SANDBOX_NAME))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    from(claim.metadata.annotations.as_ref())
        .map(|name| (name, false))
        .or_else(|| from(claim.metadata.labels.as_ref()).map(|name| (name, true)))
}

fn status_patch(status: &SandboxClaimStatus, resource_version: Option<&str>) -> Value {
    let or_null = |empty: bool, value: Value| if empty { Value::Null } else { value };
    patch::locked(
        json!({"status": {
            "conditions": or_null(status.conditions.is_empty(), json!(status.conditions)),
            "sandbox": {
                "name": or_null(status.sandbox.name.is_empty(), json!(status.sandbox.name)),
                "podIPs": or_null(status.sandbox.pod_ips.is_empty(), json!(status.sandbox.pod_ips)),
                "serviceFQDN": or_null(
                    status.sandbox.service_fqdn.is_empty(),
                    json!(status.sandbox.service_fqdn),
                ),
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

impl<'a, A: ClaimApi> Pass<'a, A> {
    /// A pass over `claim` at `now`, its first-observed stamp set in memory.
    pub(super) fn new(
        api: &'a A,
        claim: SandboxClaim,
        now: Timestamp,
        first_observed: Option<Timestamp>,
        settings: &Settings,
    ) -> Self {
        let mut pass = Self {
            api,
            claim,
            now,
            events: Vec::new(),
            served: Vec::new(),
            unsent_first_observed: None,
        };
        pass.initialize_annotations(first_observed, settings);
        pass
    }

    /// The outcome of a pass that ends here, with the events and claims served so far.
    pub(super) fn into_outcome(
        self,
        requeue_after: Option<std::time::Duration>,
        error: Option<String>,
    ) -> Outcome {
        Outcome {
            requeue_after,
            error,
            events: self.events,
            served: self.served,
            ..Outcome::default()
        }
    }

    /// Records a Normal event about the claim.
    pub(super) fn event(&mut self, reason: &'static str, action: &'static str, note: String) {
        self.events.push(Event {
            type_: EventType::Normal,
            reason,
            action,
            note,
        });
    }

    /// Records that the claim expired.
    pub(super) fn expired_event(&mut self) {
        self.event(
            events::CLAIM_EXPIRED,
            "Claim Expired",
            "Claim expired".into(),
        );
    }

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
    pub(super) async fn flush_first_observed(&mut self) -> Result<(), String> {
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
    pub(super) async fn write_status(
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
}
