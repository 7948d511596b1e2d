//! What the template controller observed, and the writes it decides.

use agent_sandbox_api::v1beta1::SandboxTemplate;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;

/// What the template controller observed for one template.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The template.
    pub template: &'a SandboxTemplate,
    /// The NetworkPolicy named `<template>-network-policy`, if it exists.
    pub network_policy: Option<&'a NetworkPolicy>,
}

/// One write of the template controller, in the template's namespace.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Merge-patch the template's metadata (its hash label).
    PatchTemplate {
        /// The merge patch.
        patch: Value,
    },
    /// Create this NetworkPolicy.
    CreateNetworkPolicy(NetworkPolicy),
    /// Replace a NetworkPolicy; guarded by the `resourceVersion` it carries.
    ReplaceNetworkPolicy(NetworkPolicy),
    /// Delete NetworkPolicy `name` if its UID is still `uid`.
    DeleteNetworkPolicy {
        /// Policy name.
        name: String,
        /// UID precondition.
        uid: String,
    },
}

/// The decision for one template: writes to perform and an error to report (retry with backoff).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// A state the controller refuses to change (a policy of the reserved name it does not own).
    pub error: Option<String>,
}
