//! SandboxTemplate v1beta1: a reusable blueprint plus its managed NetworkPolicy.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::sandbox::SandboxBlueprint;
use crate::extensions::{EnvVarsInjectionPolicy, NetworkPolicyManagement, NetworkPolicySpec};

/// Whether a claim may bring its own volume claim templates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum VolumeClaimTemplatesPolicy {
    /// Claims may not set `volumeClaimTemplates`.
    #[default]
    Disallowed,
    /// Claim templates are appended; names may not collide with the template's.
    Allowed,
    /// Claim templates replace same-named template entries; new ones are appended.
    Overrides,
}

/// Spec of a SandboxTemplate.
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
    version = "v1beta1",
    kind = "SandboxTemplate",
    plural = "sandboxtemplates",
    singular = "sandboxtemplate",
    shortname = "sandboxtemplate",
    namespaced,
    doc = "A reusable Sandbox blueprint with the NetworkPolicy its Sandboxes run under.",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxTemplateSpec {
    /// Pod template, volume claim templates and Service choice of Sandboxes made from this template.
    #[serde(flatten)]
    #[garde(dive)]
    pub blueprint: SandboxBlueprint,
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
    /// Whether claims may set `volumeClaimTemplates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Disallowed"))]
    #[garde(skip)]
    pub volume_claim_templates_policy: Option<VolumeClaimTemplatesPolicy>,
}
