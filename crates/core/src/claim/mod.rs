//! The SandboxClaim decision, in pieces: expiry, the Sandbox a cold start creates (metadata merge, env
//! injection, volume claim template policy, secure defaults) and the claim's status.

pub mod adoption;
pub mod cold;
pub mod expiry;
pub mod metadata;
pub mod status;
