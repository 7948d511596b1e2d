//! PersistentVolumeClaims made from a Sandbox's volume claim templates.

use std::collections::BTreeMap;

use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::owner::owner_reference;

/// The PVC name for template `template` of Sandbox `sandbox`: `<template>-<sandbox>`.
pub fn pvc_name(template: &str, sandbox: &str) -> String {
    format!("{template}-{sandbox}")
}

/// The PVC to create for one volume claim template.
pub fn build(
    sandbox: &Sandbox,
    template: &PersistentVolumeClaimTemplate,
    name_hash: &str,
) -> PersistentVolumeClaim {
    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let mut pvc_labels = template.metadata.labels.clone();
    pvc_labels.insert(labels::SANDBOX_NAME_HASH.to_owned(), name_hash.to_owned());
    let annotations: BTreeMap<String, String> = template.metadata.annotations.clone();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(pvc_name(&template.metadata.name, sandbox_name)),
            namespace: sandbox.metadata.namespace.clone(),
            labels: Some(pvc_labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner_reference(sandbox)]),
            ..ObjectMeta::default()
        },
        spec: Some(template.spec.clone()),
        status: None,
    }
}
