//! Pure conversion between `v1alpha1` (spoke) and `v1beta1` (hub, storage) for all four kinds.
//!
//! Going to the hub, the Sandbox and SandboxClaim keep a JSON snapshot of the v1alpha1 object in an
//! annotation so that fields v1beta1 cannot express survive a round trip. Templates and pools need no
//! snapshot (nothing is restored from it), so unlike upstream none is written for them: a template with
//! a large pod spec would otherwise double in size and can exceed the annotation size limit.

mod claim;
mod sandbox;
mod template;
mod warmpool;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A conversion the webhook cannot perform; the message names the object and the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConversionError {
    /// An annotation that carries a v1beta1-only field holds a value the field does not allow.
    #[error("{kind} {object}: annotation {key} has value {value:?}, which is not one of {allowed}")]
    InvalidAnnotation {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        object: String,
        /// The annotation key.
        key: &'static str,
        /// The offending value.
        value: String,
        /// The allowed values, comma-separated.
        allowed: &'static str,
    },
}

/// A served, non-storage version that converts to and from the storage version.
pub trait Spoke: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Sized {
    /// The storage (hub) version of the same kind.
    type Hub: Resource<DynamicType = ()> + Serialize + DeserializeOwned;

    /// Converts this object to the hub version.
    fn to_hub(&self) -> Result<Self::Hub, ConversionError>;

    /// Converts a hub object to this version.
    fn from_hub(hub: &Self::Hub) -> Result<Self, ConversionError>;
}

/// The JSON snapshot of a spoke object stored under `key`: without that annotation (no nesting) and
/// without `managedFields` (server bookkeeping that would only bloat the annotation).
fn snapshot<T: Serialize>(object: &T, key: &str) -> Option<String> {
    let mut value = serde_json::to_value(object).ok()?;
    if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
        let now_empty = metadata
            .get_mut("annotations")
            .and_then(|a| a.as_object_mut())
            .map(|annotations| {
                annotations.remove(key);
                annotations.is_empty()
            });
        if now_empty == Some(true) {
            metadata.remove("annotations");
        }
    }
    serde_json::to_string(&value).ok()
}

/// The snapshot stored under `key`, if present and readable. A damaged snapshot is ignored: it only
/// refines values that conversion can otherwise derive, so a read must not fail because of it.
fn read_snapshot<T: DeserializeOwned>(metadata: &ObjectMeta, key: &str) -> Option<T> {
    let text = metadata.annotations.as_ref()?.get(key)?;
    serde_json::from_str(text).ok()
}

/// `metadata` with annotation `key` set to `value`, or removed when `value` is `None`.
fn with_annotation(metadata: &ObjectMeta, key: &str, value: Option<String>) -> ObjectMeta {
    let mut metadata = metadata.clone();
    let mut annotations = metadata.annotations.take().unwrap_or_default();
    match value {
        Some(value) => {
            annotations.insert(key.to_owned(), value);
        }
        None => {
            annotations.remove(key);
        }
    }
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    metadata
}

/// `namespace/name` of an object, for error messages.
fn object_name(metadata: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn with_annotation_sets_and_removes_and_drops_an_empty_map() {
        let meta = with_annotation(&ObjectMeta::default(), "k", Some("v".into()));
        assert_eq!(
            meta.annotations,
            Some(BTreeMap::from([("k".into(), "v".into())]))
        );
        let meta = with_annotation(&meta, "k", None);
        assert_eq!(meta.annotations, None);
    }

    #[test]
    fn snapshot_excludes_its_own_annotation_and_managed_fields() {
        let meta = ObjectMeta {
            name: Some("a".into()),
            annotations: Some(BTreeMap::from([("snap".into(), "old".into())])),
            managed_fields: Some(vec![Default::default()]),
            ..ObjectMeta::default()
        };
        let text =
            snapshot(&serde_json::json!({ "metadata": meta }), "snap").expect("serialisable");
        assert_eq!(text, r#"{"metadata":{"name":"a"}}"#);
    }

    #[test]
    fn a_damaged_snapshot_is_ignored() {
        let meta = with_annotation(&ObjectMeta::default(), "snap", Some("{not json".into()));
        assert_eq!(read_snapshot::<serde_json::Value>(&meta, "snap"), None);
    }
}
