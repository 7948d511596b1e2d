//! Building blocks of the `extensions.agents.x-k8s.io` kinds shared by both versions.

use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{conditions_schema, without_descriptions};

/// Whether the template controller manages the template's NetworkPolicy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum NetworkPolicyManagement {
    /// The controller creates and updates `<template>-network-policy`.
    #[default]
    Managed,
    /// The controller leaves network policy to the user (and deletes one it owns).
    Unmanaged,
}

/// Whether a claim may inject environment variables into the template's containers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum EnvVarsInjectionPolicy {
    /// New variables may be added; existing ones may not be redefined.
    Allowed,
    /// New variables may be added and existing ones replaced.
    Overrides,
    /// Claims may not set `env`.
    #[default]
    Disallowed,
}

/// Ingress and egress rules of the managed NetworkPolicy (the controller fills selector and types).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NetworkPolicySpec {
    /// Allowed ingress; empty denies all ingress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = without_descriptions)]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Allowed egress; empty denies all egress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = without_descriptions)]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

/// What happens to a claim when its lifecycle ends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ClaimShutdownPolicy {
    /// Delete the claim (garbage collection then removes the Sandbox).
    Delete,
    /// Delete the claim with foreground propagation: it stays visible until its Sandbox is gone.
    DeleteForeground,
    /// Keep the claim; delete only its Sandbox.
    #[default]
    Retain,
}

/// Expiry of a claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimLifecycle {
    /// Absolute expiry instant of the claim (not copied to the Sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_time: Option<Time>,
    /// Seconds after the claim's `Finished=True` transition at which it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// What to do at expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Retain"))]
    pub shutdown_policy: Option<ClaimShutdownPolicy>,
}

/// A literal environment variable a claim injects into a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    pub value: String,
    /// Target container (regular or init); empty means the first regular container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
}

/// The Sandbox bound to a claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SandboxedObjectStatus {
    /// Name of the bound Sandbox.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The bound Sandbox's Pod IPs.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<String>,
    /// The bound Sandbox's `status.serviceFQDN`; empty while it has no Service.
    #[serde(
        default,
        rename = "serviceFQDN",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_fqdn: String,
}

/// Observed state of a SandboxClaim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SandboxClaimStatus {
    /// Ready and Finished, sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The bound Sandbox.
    #[serde(default)]
    pub sandbox: SandboxedObjectStatus,
}

/// How a warm pool replaces members built from an outdated template.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SandboxWarmPoolUpdateStrategyType {
    /// Delete stale unclaimed members right away, then refill.
    Recreate,
    /// Leave stale unclaimed members until they are adopted or deleted.
    #[default]
    OnReplenish,
}

/// Rollout strategy of a warm pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SandboxWarmPoolUpdateStrategy {
    /// `Recreate` or `OnReplenish` (default).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "OnReplenish"))]
    pub type_: Option<SandboxWarmPoolUpdateStrategyType>,
}
