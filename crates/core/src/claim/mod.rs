//! The SandboxClaim decision: expiry, the Sandbox a cold start creates (metadata merge, env
//! injection, volume claim template policy, secure defaults), warm adoption, the claim's status, and
//! [`pass::reconcile`], which runs one whole pass over a [`api::ClaimApi`].

pub mod adoption;
pub mod api;
pub mod cold;
pub mod expiry;
pub mod metadata;
pub mod pass;
pub mod patch;
pub mod readiness;
pub mod resolve;
pub mod status;

#[cfg(test)]
mod tests;

use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1beta1::SandboxClaim;

/// The claim's W3C trace headers, which its Sandbox carries too.
fn trace_context(claim: &SandboxClaim) -> Option<&String> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::TRACE_CONTEXT)
}
