//! SandboxWarmPool v1alpha1: `replicas` is required and there is no `observedGeneration`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::LocalObjectReference;
use crate::extensions::SandboxWarmPoolUpdateStrategy;
use crate::validate;

/// Spec of a v1alpha1 SandboxWarmPool.
// Each `printcolumn(...)` repeats the same keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    JsonSchema,
    garde::Validate,
)]
#[kube(
    group = "extensions.agents.x-k8s.io",
    version = "v1alpha1",
    kind = "SandboxWarmPool",
    plural = "sandboxwarmpools",
    singular = "sandboxwarmpool",
    shortname = "swp",
    namespaced,
    status = "SandboxWarmPoolStatus",
    doc = "A pool of pre-warmed Sandboxes built from one SandboxTemplate, ready to be claimed.",
    deprecated = "extensions.agents.x-k8s.io/v1alpha1 SandboxWarmPool is deprecated; use extensions.agents.x-k8s.io/v1beta1 SandboxWarmPool instead",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxWarmPoolSpec {
    /// Desired number of unclaimed Sandboxes.
    #[schemars(range(min = 0))]
    #[garde(skip)]
    pub replicas: i32,
    /// The SandboxTemplate (same namespace) members are built from.
    #[garde(custom(validate::reference))]
    pub sandbox_template_ref: LocalObjectReference,
    /// How members built from an outdated template are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub update_strategy: Option<SandboxWarmPoolUpdateStrategy>,
}

/// Observed state of a v1alpha1 SandboxWarmPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxWarmPoolStatus {
    /// Active (not terminating) members, Ready or not.
    #[serde(default)]
    pub replicas: i32,
    /// Active members whose Sandbox is Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the pool's Sandboxes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}
