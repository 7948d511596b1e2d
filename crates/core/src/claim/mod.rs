//! The SandboxClaim decision, in pieces: expiry, the Sandbox a cold start creates (metadata merge, env
//! injection, volume claim template policy, secure defaults) and the claim's status.

pub mod adoption;
pub mod cold;
pub mod expiry;
pub mod metadata;
pub mod status;

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
