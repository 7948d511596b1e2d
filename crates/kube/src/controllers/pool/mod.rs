//! The SandboxWarmPool controller: keeps each pool at its size with fresh members.
//!
//! [`state`]: what it remembers between passes; [`triggers`]: which pools a Sandbox or template
//! change concerns; [`pass`]: one pass (decided by `agent_sandbox_warmpool::pool::plan`);
//! [`writes`]: its writes; [`controller`]: the wiring.

pub mod controller;
pub mod pass;
pub mod state;
pub mod triggers;
pub mod writes;

#[cfg(test)]
mod tests;

pub use controller::WarmPoolController;
