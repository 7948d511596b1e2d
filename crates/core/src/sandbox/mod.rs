//! The Sandbox decision: one Pod, an optional headless Service and PVCs per Sandbox.

mod conditions;
mod decide;
mod expiry;
mod plan;
mod pod;
mod pvc;
mod service;
mod status;

use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub use decide::{Plan, plan, tracked_pod_name};
pub use plan::{Action, Config, Failure, Observed, Outcome, Target};
pub use pod::normalise_created_by;
pub use pvc::pvc_name;

/// The controller reference children carry to their Sandbox.
fn owner_reference(sandbox: &Sandbox) -> OwnerReference {
    crate::ownership::controller_reference("agents.x-k8s.io/v1beta1", "Sandbox", &sandbox.metadata)
}

#[cfg(test)]
mod tests;
