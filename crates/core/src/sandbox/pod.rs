//! The Sandbox's Pod: what a new one looks like, and which metadata drift on an existing one to repair.

use std::collections::BTreeMap;

use agent_sandbox_api::keys::{EXTENSIONS_GROUP, annotations, is_reserved, labels};
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_api::validate::is_dns_label;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::owner::owner_reference;
use crate::ownership::{any_controller, api_group, controlling_claim, controlling_pool};

/// The values of `created-by` kept on Pods; anything else becomes `unknown`.
const KNOWN_CREATORS: [&str; 3] = ["go-client", "python-client", "controller"];

/// `created-by` as recorded on Pods and in metrics.
pub fn normalise_created_by(value: &str) -> &str {
    if KNOWN_CREATORS.contains(&value) {
        value
    } else {
        "unknown"
    }
}

/// A label key the controller owns and never copies from a pod template.
fn is_system_label(key: &str) -> bool {
    is_reserved(key)
}

/// An annotation key the controller owns and never copies from a pod template.
fn is_system_annotation(key: &str) -> bool {
    is_reserved(key) || key == annotations::TRACE_CONTEXT
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Labels a Pod gets because an extension controller (pool or claim) owns its Sandbox: pool membership,
/// the template reference and, for a claim's Sandbox (cold or adopted warm), the claim's UID (as upstream
/// 1.0, so Pods can be selected by claim).
fn extension_labels(sandbox: &Sandbox) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let extension_owned =
        any_controller(&sandbox.metadata).is_some_and(|r| api_group(r) == EXTENSIONS_GROUP);
    if !extension_owned {
        return out;
    }
    if controlling_pool(sandbox).is_some()
        && let Some(pool) = label(&sandbox.metadata, labels::WARM_POOL_SANDBOX)
    {
        out.insert(labels::WARM_POOL_SANDBOX.to_owned(), pool.to_owned());
    }
    if controlling_claim(sandbox).is_some()
        && let Some(claim) = label(&sandbox.metadata, labels::CLAIM_UID)
    {
        out.insert(labels::CLAIM_UID.to_owned(), claim.to_owned());
    }
    if let Some(template) = label(&sandbox.metadata, labels::SANDBOX_TEMPLATE_REF_HASH) {
        out.insert(
            labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
            template.to_owned(),
        );
    }
    out
}

/// The template's labels and annotations that may be copied onto the Pod.
fn template_metadata(sandbox: &Sandbox) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let metadata = &sandbox.spec.blueprint.pod_template.metadata;
    let labels = metadata.labels.iter().filter(|(k, _)| !is_system_label(k));
    let annotations = metadata
        .annotations
        .iter()
        .filter(|(k, _)| !is_system_annotation(k));
    (
        labels.map(|(k, v)| (k.clone(), v.clone())).collect(),
        annotations.map(|(k, v)| (k.clone(), v.clone())).collect(),
    )
}

fn joined(keys: impl Iterator<Item = impl AsRef<str>>) -> String {
    keys.map(|k| k.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// The Pod spec of the template with one PVC volume per volume claim template (replacing a template volume
/// of the same name), and a stable hostname (plus the Service as subdomain) where the template sets none.
fn pod_spec(sandbox: &Sandbox, name: &str) -> PodSpec {
    let blueprint = &sandbox.spec.blueprint;
    let mut spec = blueprint.pod_template.spec.clone();
    let claims: Vec<Volume> = blueprint
        .volume_claim_templates
        .iter()
        .map(|vct| Volume {
            name: vct.metadata.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: super::pvc::pvc_name(&vct.metadata.name, name),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    if !claims.is_empty() {
        let mut volumes: Vec<Volume> = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.iter().any(|c| c.name == v.name))
            .collect();
        volumes.extend(claims);
        spec.volumes = Some(volumes);
    }
    if is_dns_label(name) {
        spec.hostname.get_or_insert_with(|| name.to_owned());
        if blueprint.service == Some(true) {
            spec.subdomain.get_or_insert_with(|| name.to_owned());
        }
    }
    spec
}

/// The Pod to create for a Sandbox that has none.
pub fn build(sandbox: &Sandbox, name_hash: &str) -> Pod {
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    let (template_labels, template_annotations) = template_metadata(sandbox);
    let mut pod_labels = template_labels.clone();
    pod_labels.insert(labels::SANDBOX_NAME_HASH.to_owned(), name_hash.to_owned());
    pod_labels.extend(extension_labels(sandbox));
    if let Some(creator) = label(&sandbox.metadata, labels::CREATED_BY) {
        pod_labels.insert(
            labels::CREATED_BY.to_owned(),
            normalise_created_by(creator).to_owned(),
        );
    }
    let mut pod_annotations = template_annotations.clone();
    if !template_labels.is_empty() {
        pod_annotations.insert(
            annotations::PROPAGATED_LABELS.to_owned(),
            joined(template_labels.keys()),
        );
    }
    if !template_annotations.is_empty() {
        pod_annotations.insert(
            annotations::PROPAGATED_ANNOTATIONS.to_owned(),
            joined(template_annotations.keys()),
        );
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: sandbox.metadata.namespace.clone(),
            labels: Some(pod_labels),
            annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
            owner_references: Some(vec![owner_reference(sandbox)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec(sandbox, &name)),
        status: None,
    }
}

fn tracked(list: Option<&String>) -> Vec<String> {
    list.map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

fn set_or_remove(map: &mut BTreeMap<String, String>, key: &str, value: Option<&str>) {
    match value {
        Some(value) => map.insert(key.to_owned(), value.to_owned()),
        None => map.remove(key),
    };
}

/// The merge-patch object turning `before` into `after` (`null` deletes a key), or `None` if equal.
fn map_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Option<Value> {
    let mut diff = Map::new();
    for (key, value) in after {
        if before.get(key) != Some(value) {
            diff.insert(key.clone(), json!(value));
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        diff.insert(key.clone(), Value::Null);
    }
    (!diff.is_empty()).then_some(Value::Object(diff))
}

/// The metadata merge patch that brings an existing Pod in line with the Sandbox, or `None`.
/// Only keys the controller propagated earlier are ever removed; the Pod spec is never touched.
pub fn metadata_drift(sandbox: &Sandbox, pod: &Pod, name_hash: &str) -> Option<Map<String, Value>> {
    let before_labels = pod.metadata.labels.clone().unwrap_or_default();
    let before_annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let (template_labels, template_annotations) = template_metadata(sandbox);

    let mut pod_labels = before_labels.clone();
    pod_labels.insert(labels::SANDBOX_NAME_HASH.to_owned(), name_hash.to_owned());
    pod_labels.extend(template_labels.clone());
    for key in tracked(before_annotations.get(annotations::PROPAGATED_LABELS)) {
        let scrub = is_system_label(&key) && key != labels::SANDBOX_NAME_HASH;
        if scrub || (!is_system_label(&key) && !template_labels.contains_key(&key)) {
            pod_labels.remove(&key);
        }
    }
    let extension = extension_labels(sandbox);
    for key in [
        labels::WARM_POOL_SANDBOX,
        labels::SANDBOX_TEMPLATE_REF_HASH,
        labels::CLAIM_UID,
    ] {
        set_or_remove(&mut pod_labels, key, extension.get(key).map(String::as_str));
    }
    let creator = label(&sandbox.metadata, labels::CREATED_BY).map(normalise_created_by);
    set_or_remove(&mut pod_labels, labels::CREATED_BY, creator);

    let mut pod_annotations = before_annotations.clone();
    pod_annotations.extend(template_annotations.clone());
    for key in tracked(before_annotations.get(annotations::PROPAGATED_ANNOTATIONS)) {
        let bookkeeping =
            key == annotations::PROPAGATED_LABELS || key == annotations::PROPAGATED_ANNOTATIONS;
        let scrub = is_system_annotation(&key) && !bookkeeping;
        if scrub || (!is_system_annotation(&key) && !template_annotations.contains_key(&key)) {
            pod_annotations.remove(&key);
        }
    }
    for (key, list) in [
        (
            annotations::PROPAGATED_LABELS,
            joined(template_labels.keys()),
        ),
        (
            annotations::PROPAGATED_ANNOTATIONS,
            joined(template_annotations.keys()),
        ),
    ] {
        // An absent list reads as empty, so an empty list is only written over a non-empty one.
        let now = pod_annotations
            .get(key)
            .map(String::as_str)
            .unwrap_or_default();
        if now != list {
            pod_annotations.insert(key.to_owned(), list);
        }
    }

    let mut metadata = Map::new();
    if let Some(diff) = map_diff(&before_labels, &pod_labels) {
        metadata.insert("labels".to_owned(), diff);
    }
    if let Some(diff) = map_diff(&before_annotations, &pod_annotations) {
        metadata.insert("annotations".to_owned(), diff);
    }
    (!metadata.is_empty()).then_some(metadata)
}

/// Applies a metadata merge patch produced by [`metadata_drift`] to a Pod (the view after the write).
pub fn apply_metadata(pod: &mut Pod, patch: &Map<String, Value>) {
    for (field, target) in [
        ("labels", &mut pod.metadata.labels),
        ("annotations", &mut pod.metadata.annotations),
    ] {
        let Some(edits) = patch.get(field).and_then(Value::as_object) else {
            continue;
        };
        let map = target.get_or_insert_with(BTreeMap::new);
        for (key, value) in edits {
            match value.as_str() {
                Some(v) => map.insert(key.clone(), v.to_owned()),
                None => map.remove(key),
            };
        }
    }
}
