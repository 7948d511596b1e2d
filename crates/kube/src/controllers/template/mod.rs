//! The SandboxTemplate controller: the template hash label and the managed NetworkPolicy.
//!
//! [`triggers`]: which templates a NetworkPolicy change concerns; [`pass`]: one pass (decided by
//! `agent_sandbox_core::template::plan`); [`writes`]: its writes; [`controller`]: the wiring.

pub mod controller;
pub mod pass;
pub mod triggers;
pub mod writes;

pub use controller::TemplateController;
