//! Sandbox v1beta1: one Pod with a stable identity, an optional headless Service and PVCs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    PersistentVolumeClaimTemplate, PodTemplate, ShutdownPolicy, conditions_schema,
};
use crate::validate;

/// What a Sandbox runs: shared by Sandbox and SandboxTemplate (inlined into both specs).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema, garde::Validate)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxBlueprint {
    /// The template of the Sandbox's Pod.
    #[garde(custom(validate::pod_template))]
    pub pod_template: PodTemplate,
    /// PVCs created per Sandbox as `<name>-<sandbox>` and mounted as volume `<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::volume_claim_templates))]
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
    /// Headless Service: unset keeps an existing owned one, true ensures one, false removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub service: Option<bool>,
}

/// When a Sandbox expires and what happens then (inlined into the Sandbox spec).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Absolute expiry instant; unset means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_time: Option<Time>,
    /// What to do at `shutdownTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Retain"))]
    pub shutdown_policy: Option<ShutdownPolicy>,
}

/// The desired state of a Sandbox.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SandboxOperatingMode {
    /// The Pod should run.
    #[default]
    Running,
    /// The Pod is removed; storage and the Service are kept.
    Suspended,
}

/// Spec of a Sandbox.
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
    group = "agents.x-k8s.io",
    version = "v1beta1",
    kind = "Sandbox",
    plural = "sandboxes",
    singular = "sandbox",
    shortname = "sandbox",
    namespaced,
    status = "SandboxStatus",
    doc = "A singleton, stateful workload: one Pod with a stable name, an optional headless Service and PVCs.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.volumeClaimTemplates) == has(oldSelf.volumeClaimTemplates) && (!has(self.volumeClaimTemplates) || self.volumeClaimTemplates == oldSelf.volumeClaimTemplates)",
    "message": "volumeClaimTemplates is immutable"
}]))]
pub struct SandboxSpec {
    /// Pod template, volume claim templates and Service choice.
    #[serde(flatten)]
    #[garde(dive)]
    pub blueprint: SandboxBlueprint,
    /// Expiry.
    #[serde(flatten)]
    #[garde(skip)]
    pub lifecycle: Lifecycle,
    /// `Running` (default) or `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Running"))]
    #[garde(skip)]
    pub operating_mode: Option<SandboxOperatingMode>,
}

/// Observed state of a Sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    /// `<service>.<namespace>.svc.<clusterDomain>` while a Service is in use.
    #[serde(
        default,
        rename = "serviceFQDN",
        skip_serializing_if = "String::is_empty"
    )]
    pub service_fqdn: String,
    /// Name of the headless Service in use.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// Ready, Suspended, PodScheduled and Finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Label selector of the Sandbox's Pod (`agents.x-k8s.io/sandbox-name-hash=<hash>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// IPs of the owned Pod, in Pod-status order.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<String>,
    /// Node of the owned Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
}

impl SandboxSpec {
    /// The effective operating mode (unset means `Running`).
    pub fn operating_mode(&self) -> SandboxOperatingMode {
        self.operating_mode.unwrap_or_default()
    }
}
