//! PersistentVolumeClaims made from a Sandbox's volume claim templates, and the pass's PVC step:
//! create the missing ones, adopt adoptable unowned ones.

use std::collections::BTreeMap;

use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::owner::{owner_reference, refuse_adoption, uid_of, with_controller};
use super::plan::{Action, Observed};
use crate::ownership::{Ownership, describe, may_adopt, ownership};

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

/// The PVC step of a pass: the writes for each volume claim template in order, stopping at the first
/// PVC that is someone else's or may not be adopted (the error says which).
pub(super) fn reconcile(
    observed: &Observed,
    hash: &str,
    uid: &str,
) -> (Vec<Action>, Option<String>) {
    let sandbox = observed.sandbox;
    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let templates = &sandbox.spec.blueprint.volume_claim_templates;
    let mut actions = Vec::new();
    if templates.is_empty() {
        return (actions, None);
    }
    let existing = match &observed.pvcs {
        Ok(existing) => existing,
        Err(e) => return (actions, Some(format!("failed to get PVC: {e}"))),
    };
    for template in templates {
        let name = pvc_name(&template.metadata.name, sandbox_name);
        let Some(found) = existing
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            actions.push(Action::CreatePvc(build(sandbox, template, hash)));
            continue;
        };
        match ownership(&found.metadata, uid) {
            Ownership::Owned => {}
            Ownership::Other(owner) => {
                let error = format!(
                    "PVC {name:?} is owned by {}, not by sandbox {sandbox_name:?}",
                    describe(owner)
                );
                return (actions, Some(error));
            }
            Ownership::Unowned if may_adopt(&found.metadata, hash) => {
                actions.push(Action::PatchPvc {
                    name: name.clone(),
                    uid: uid_of(&found.metadata),
                    patch: json!({"metadata": {"ownerReferences": with_controller(&found.metadata, sandbox)}}),
                });
            }
            Ownership::Unowned => return (actions, Some(refuse_adoption("PVC", &name, hash))),
        }
    }
    (actions, None)
}
