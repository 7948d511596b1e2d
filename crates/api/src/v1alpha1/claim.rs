//! SandboxClaim v1alpha1: references a template directly and picks a pool by a `warmpool` policy string.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalObjectReference, PodMetadata};
use crate::extensions::{ClaimLifecycle, EnvVar, SandboxClaimStatus};
use crate::validate;

/// Spec of a v1alpha1 SandboxClaim.
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
    kind = "SandboxClaim",
    plural = "sandboxclaims",
    singular = "sandboxclaim",
    shortname = "sandboxclaim",
    namespaced,
    status = "SandboxClaimStatus",
    doc = "A request for a Sandbox, adopted from a warm pool or created cold from the pool's template.",
    deprecated = "extensions.agents.x-k8s.io/v1alpha1 SandboxClaim is deprecated; use extensions.agents.x-k8s.io/v1beta1 SandboxClaim instead",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxClaimSpec {
    /// The SandboxTemplate (same namespace) to build the Sandbox from.
    #[garde(custom(validate::reference))]
    pub sandbox_template_ref: LocalObjectReference,
    /// Expiry of the claim; unset means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub lifecycle: Option<ClaimLifecycle>,
    /// `none` never adopts, `default` (or empty) adopts from any matching pool, anything else names a pool.
    #[serde(default, rename = "warmpool", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "default"))]
    #[garde(skip)]
    pub warmpool: Option<String>,
    /// Extra labels and annotations for the Pod (allow-listed domains only).
    #[serde(default, skip_serializing_if = "PodMetadata::is_empty")]
    #[garde(custom(validate::additional_pod_metadata))]
    pub additional_pod_metadata: PodMetadata,
    /// Literal environment variables to inject; non-empty forces a cold start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::env))]
    pub env: Vec<EnvVar>,
}

/// The meaning of a v1alpha1 `warmpool` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarmPoolPolicy<'a> {
    /// `none`: never adopt from a pool.
    None,
    /// `default` or empty: adopt from any matching pool.
    Default,
    /// Adopt only from the named pool.
    Specific(&'a str),
}

impl SandboxClaimSpec {
    /// The parsed `warmpool` policy.
    pub fn warm_pool_policy(&self) -> WarmPoolPolicy<'_> {
        match self.warmpool.as_deref() {
            Some("none") => WarmPoolPolicy::None,
            None | Some("" | "default") => WarmPoolPolicy::Default,
            Some(pool) => WarmPoolPolicy::Specific(pool),
        }
    }
}
