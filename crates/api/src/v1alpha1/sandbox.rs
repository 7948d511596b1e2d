//! Sandbox v1alpha1: `replicas` 0/1 instead of `operatingMode`, with a scale subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    PersistentVolumeClaimTemplate, PodTemplate, ShutdownPolicy, conditions_schema,
};
use crate::validate;

/// Spec of a v1alpha1 Sandbox.
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
    version = "v1alpha1",
    kind = "Sandbox",
    plural = "sandboxes",
    singular = "sandbox",
    shortname = "sandbox",
    namespaced,
    status = "SandboxStatus",
    doc = "A singleton, stateful workload: one Pod with a stable name, an optional headless Service and PVCs.",
    deprecated = "agents.x-k8s.io/v1alpha1 Sandbox is deprecated; use agents.x-k8s.io/v1beta1 Sandbox instead",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[garde(context(crate::validate::ValidationContext))]
pub struct SandboxSpec {
    /// The template of the Sandbox's Pod.
    #[garde(custom(validate::pod_template))]
    pub pod_template: PodTemplate,
    /// PVCs created per Sandbox as `<name>-<sandbox>` and mounted as volume `<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    #[garde(custom(validate::volume_claim_templates))]
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
    /// Absolute expiry instant; unset means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub shutdown_time: Option<Time>,
    /// What to do at `shutdownTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Retain"))]
    #[garde(skip)]
    pub shutdown_policy: Option<ShutdownPolicy>,
    /// 1 runs the Sandbox, 0 suspends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1), extend("default" = 1))]
    #[garde(skip)]
    pub replicas: Option<i32>,
    /// Headless Service: unset keeps an existing owned one, true ensures one, false removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub service: Option<bool>,
}

/// Observed state of a v1alpha1 Sandbox.
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
    /// 1 while running, 0 while suspended (synthesised by conversion).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Label selector of the Sandbox's Pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// IPs of the owned Pod, in Pod-status order.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<String>,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}
