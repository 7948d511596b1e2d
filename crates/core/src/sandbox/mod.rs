//! The Sandbox decision: one Pod, an optional headless Service and PVCs per Sandbox.

mod active;
mod conditions;
mod configuration;
mod decide;
mod expiry;
mod owner;
mod plan;
mod pod;
mod pvc;
mod service;
mod status;
mod teardown;
mod tracked_pod;

pub use decide::{Plan, plan};
pub use plan::{Action, Config, Failure, Observed, Outcome, Target};
pub use pod::normalise_created_by;
pub use pvc::pvc_name;

#[cfg(test)]
mod tests;
