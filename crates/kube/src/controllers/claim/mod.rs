//! The SandboxClaim controller: binds each claim to a warm or cold Sandbox and mirrors its status.
//!
//! [`triggers`]: which claims a Sandbox, pool or template change wakes, and the adoption queue kept
//! from the Sandbox feed; [`pass`]: one pass (decided by `agent_sandbox_core::claim::pass`), with
//! [`first_observed`] and [`legacy`]; [`writes`]: its reads and writes; [`controller`]: the wiring.

pub mod controller;
pub mod first_observed;
pub mod legacy;
pub mod pass;
pub mod triggers;
pub mod writes;

pub use controller::ClaimController;
