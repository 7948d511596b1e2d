//! The claim's status: Ready (from the pass's outcome or mirrored from its Sandbox), Finished mirrored,
//! and the bound Sandbox's name, IPs and Service FQDN, which a transient error never clears.

use agent_sandbox_api::conditions::{claim as reason, sandbox as sandbox_reason, types};
use agent_sandbox_api::extensions::{SandboxClaimStatus, SandboxedObjectStatus};
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self as condition_list, Desired};

/// How a claim pass went wrong, classified the way the Ready condition reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The pool's SandboxTemplate does not exist (its name).
    #[error("SandboxTemplate {0:?} not found")]
    TemplateNotFound(String),
    /// The referenced SandboxWarmPool does not exist (its name).
    #[error("SandboxWarmPool {0:?} not found")]
    WarmPoolNotFound(String),
    /// Lost a race adopting a warm Sandbox (detail).
    #[error("{0}")]
    AdoptionConflict(String),
    /// A cold create found the Sandbox already there (the cache lags).
    #[error("Sandbox already created; waiting for cache to converge")]
    CreatePending,
    /// `additionalPodMetadata` failed validation.
    #[error("{0}")]
    InvalidMetadata(String),
    /// `spec.env` rejected by the template policy.
    #[error("{0}")]
    EnvRejected(String),
    /// Expired, but the Sandbox to delete is not controlled by the claim.
    #[error("{0}")]
    NotOwnedOnExpiry(String),
    /// Volume claim templates disallowed or invalid.
    #[error("{0}")]
    VolumeClaimTemplates(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// What the status computation needs from a pass.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The pass's error, if any.
    pub error: Option<ClaimError>,
    /// The claim's lifecycle has ended.
    pub expired: bool,
    /// The bound Sandbox, if the pass found or made one.
    pub sandbox: Option<&'a Sandbox>,
}

fn not_ready(r: &str, message: impl Into<String>) -> Desired {
    Desired::new(types::READY, "False", r, message)
}

/// The claim's Ready condition: computed from the pass, or the bound Sandbox's own, mirrored.
enum Ready<'a> {
    Computed(Desired),
    Mirrored(&'a Condition),
}

fn ready<'a>(inputs: &Inputs, sandbox_ready: Option<&'a Condition>) -> Ready<'a> {
    if let Some(error) = &inputs.error {
        return Ready::Computed(match error {
            ClaimError::TemplateNotFound(name) => not_ready(
                reason::TEMPLATE_NOT_FOUND,
                format!("SandboxTemplate {name:?} not found"),
            ),
            ClaimError::WarmPoolNotFound(name) => not_ready(
                reason::WARM_POOL_NOT_FOUND,
                format!("SandboxWarmPool {name:?} not found"),
            ),
            ClaimError::AdoptionConflict(detail) => not_ready(
                reason::ADOPTION_CONFLICT,
                format!("{detail}; the next pass retries from a converged view"),
            ),
            ClaimError::CreatePending => not_ready(
                reason::SANDBOX_CREATE_PENDING,
                "Sandbox already created; waiting for cache to converge",
            ),
            ClaimError::InvalidMetadata(m) => not_ready(reason::INVALID_METADATA, m.clone()),
            ClaimError::EnvRejected(m) => not_ready(reason::ENV_VARS_INJECTION_REJECTED, m.clone()),
            ClaimError::NotOwnedOnExpiry(m) => not_ready(
                reason::CLAIM_EXPIRED,
                format!("Claim expired. {m}; deletion skipped."),
            ),
            ClaimError::VolumeClaimTemplates(m) => {
                not_ready(reason::VOLUME_CLAIM_TEMPLATES_ERROR, m.clone())
            }
            ClaimError::Other(m) => not_ready(reason::RECONCILER_ERROR, format!("Error seen: {m}")),
        });
    }
    if inputs.expired {
        return Ready::Computed(not_ready(
            reason::CLAIM_EXPIRED,
            "Claim expired. Sandbox cleanup initiated.",
        ));
    }
    let Some(_) = inputs.sandbox else {
        return Ready::Computed(not_ready(reason::SANDBOX_MISSING, "Sandbox does not exist"));
    };
    match sandbox_ready {
        Some(c) if c.reason == sandbox_reason::SANDBOX_EXPIRED => Ready::Computed(not_ready(
            reason::SANDBOX_EXPIRED,
            "Underlying Sandbox resource has expired independently of the Claim.",
        )),
        Some(c) => Ready::Mirrored(c),
        None => Ready::Computed(not_ready(reason::SANDBOX_NOT_READY, "Sandbox is not ready")),
    }
}

fn find<'a>(sandbox: &'a Sandbox, type_: &str) -> Option<&'a Condition> {
    sandbox
        .status
        .as_ref()
        .and_then(|s| condition_list::find(&s.conditions, type_))
}

fn put(conditions: &mut Vec<Condition>, condition: Condition) {
    condition_list::remove(conditions, &condition.type_);
    conditions.push(condition);
}

/// The claim status after a pass, from the old one. Conditions are kept sorted by type.
pub fn compute(
    old: &SandboxClaimStatus,
    inputs: &Inputs,
    generation: Option<i64>,
    now: Timestamp,
) -> SandboxClaimStatus {
    if inputs.sandbox.is_none()
        && inputs.error == Some(ClaimError::CreatePending)
        && !old.sandbox.name.is_empty()
    {
        return old.clone();
    }
    let mut status = old.clone();
    match ready(inputs, inputs.sandbox.and_then(|s| find(s, types::READY))) {
        Ready::Computed(desired) => {
            condition_list::set(&mut status.conditions, desired, generation, now)
        }
        Ready::Mirrored(mirrored) => put(
            &mut status.conditions,
            Condition {
                observed_generation: generation,
                ..mirrored.clone()
            },
        ),
    }
    match inputs.sandbox {
        Some(sandbox) => match find(sandbox, types::FINISHED) {
            Some(finished) => put(&mut status.conditions, finished.clone()),
            None => condition_list::remove(&mut status.conditions, types::FINISHED),
        },
        None if !inputs.expired => condition_list::remove(&mut status.conditions, types::FINISHED),
        None => {}
    }
    match inputs.sandbox {
        Some(sandbox) => {
            let observed = sandbox.status.clone().unwrap_or_default();
            status.sandbox = SandboxedObjectStatus {
                name: sandbox.metadata.name.clone().unwrap_or_default(),
                pod_ips: observed.pod_ips,
                service_fqdn: observed.service_fqdn,
            };
        }
        None if matches!(inputs.error, None | Some(ClaimError::NotOwnedOnExpiry(_))) => {
            status.sandbox = SandboxedObjectStatus::default();
        }
        // A transient error never clears the binding: that would force a second (cold) Sandbox.
        None => {}
    }
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status
}

#[cfg(test)]
mod tests;
