//! The Sandbox controller: one Pod, an optional headless Service and PVCs per Sandbox.
//!
//! [`caches`] says what is watched; [`triggers`] which Sandbox a child's change wakes; [`pass`] runs
//! one pass (observe with [`observe`], decide with `agent_sandbox_core::sandbox::plan`, execute with
//! [`writes`], remember what must show up in the caches with [`expectations`]); [`controller`] ties
//! them to the control loop.

pub mod caches;
pub mod controller;
pub mod expectations;
pub mod index;
pub mod observe;
pub mod pass;
pub mod triggers;
pub mod writes;

pub use caches::{SandboxCaches, SandboxWatches};
pub use controller::{SandboxController, SandboxSettings};
