//! The controller reference a Sandbox's children (Pod, Service, PVCs) carry.

use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::ownership::controller_reference;

/// The controller reference children carry to their Sandbox.
pub(super) fn owner_reference(sandbox: &Sandbox) -> OwnerReference {
    controller_reference("agents.x-k8s.io/v1beta1", "Sandbox", &sandbox.metadata)
}

/// An adopted child's owner references: the ones it had plus the controller reference to `sandbox`.
pub(super) fn with_controller(meta: &ObjectMeta, sandbox: &Sandbox) -> Vec<OwnerReference> {
    let mut references = meta.owner_references.clone().unwrap_or_default();
    references.push(owner_reference(sandbox));
    references
}
