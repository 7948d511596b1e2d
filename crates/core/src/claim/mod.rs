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
pub mod status;

#[cfg(test)]
mod tests;
