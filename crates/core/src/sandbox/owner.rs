//! The Sandbox's children (Pod, Service, PVCs) and their owner: the controller reference they carry,
//! and why an unowned one is not adopted.

use agent_sandbox_api::keys::labels;
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

/// The object's UID (empty when unset), as a precondition or an owner to compare with.
pub(super) fn uid_of(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

/// Why an unowned child of that `kind` and `name` is not adopted.
pub(super) fn refuse_adoption(kind: &str, name: &str, hash: &str) -> String {
    format!(
        "cannot adopt unowned {kind} {name:?}: it has neither label {}=true nor {}={hash}",
        labels::ADOPTABLE,
        labels::SANDBOX_NAME_HASH
    )
}
