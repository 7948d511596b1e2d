//! SandboxTemplate v1alpha1: like v1beta1 without `volumeClaimTemplatesPolicy`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{PersistentVolumeClaimTemplate, PodTemplate};
use crate::extensions::{EnvVarsInjectionPolicy, NetworkPolicyManagement, NetworkPolicySpec};
use crate::validate;

/// Spec of a v1alpha1 SandboxTemplate.
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
    kind = "SandboxTemplate",
    plural = "sandboxtemplates",
    singular = "sandboxtemplate",
    shortname = "sandboxtemplate",
    namespaced,
    doc = "A reusable Sandbox blueprint with the NetworkPolicy its Sandboxes run under.",
    deprecated = "extensions.agents.x-k8s.io/v1alpha1 SandboxTemplate is deprecated; use extensions.agents.x-k8s.io/v1beta1 SandboxTemplate instead",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxTemplateSpec {
    /// The template of the Sandbox's Pod.
    #[garde(custom(validate::pod_template))]
    pub pod_template: PodTemplate,
    /// PVC templates of Sandboxes made from this template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::volume_claim_templates))]
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
    /// Ingress/egress rules of the managed NetworkPolicy; unset means the secure default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub network_policy: Option<NetworkPolicySpec>,
    /// `Managed` (default) or `Unmanaged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Managed"))]
    #[garde(skip)]
    pub network_policy_management: Option<NetworkPolicyManagement>,
    /// Whether claims may set `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Disallowed"))]
    #[garde(skip)]
    pub env_vars_injection_policy: Option<EnvVarsInjectionPolicy>,
    /// Headless Service choice of Sandboxes made from this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub service: Option<bool>,
}
