//! SandboxClaim v1beta1: a request for a Sandbox from a warm pool (or cold from its template).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalObjectReference, PersistentVolumeClaimTemplate, PodMetadata};
use crate::extensions::{ClaimLifecycle, EnvVar, SandboxClaimStatus};
use crate::validate;

/// Spec of a SandboxClaim.
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
    version = "v1beta1",
    kind = "SandboxClaim",
    plural = "sandboxclaims",
    singular = "sandboxclaim",
    shortname = "sandboxclaim",
    namespaced,
    status = "SandboxClaimStatus",
    doc = "A request for a Sandbox, adopted from a warm pool or created cold from the pool's template.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(name = "Sandbox", type_ = "string", json_path = ".status.sandbox.name"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason"
    ),
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
pub struct SandboxClaimSpec {
    /// The SandboxWarmPool (same namespace) to take a Sandbox from; its template is used for cold starts.
    #[garde(custom(validate::reference))]
    pub warm_pool_ref: LocalObjectReference,
    /// Expiry of the claim; unset means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub lifecycle: Option<ClaimLifecycle>,
    /// Extra labels and annotations for the Pod (allow-listed domains only).
    #[serde(default, skip_serializing_if = "PodMetadata::is_empty")]
    #[garde(custom(validate::additional_pod_metadata))]
    pub additional_pod_metadata: PodMetadata,
    /// Literal environment variables to inject; non-empty forces a cold start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::env))]
    pub env: Vec<EnvVar>,
    /// Extra PVC templates, merged per the template's policy; non-empty forces a cold start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::volume_claim_templates))]
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
}
