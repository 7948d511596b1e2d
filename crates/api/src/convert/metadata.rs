//! Object metadata as conversion handles it: the JSON snapshot annotation that carries fields the hub
//! cannot express, and naming an object in error messages.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The JSON snapshot of a spoke object stored under `key`: without that annotation (no nesting) and
/// without `managedFields` (server bookkeeping that would only bloat the annotation).
pub(super) fn snapshot<T: Serialize>(object: &T, key: &str) -> Option<String> {
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
pub(super) fn read_snapshot<T: DeserializeOwned>(metadata: &ObjectMeta, key: &str) -> Option<T> {
    let text = metadata.annotations.as_ref()?.get(key)?;
    serde_json::from_str(text).ok()
}

/// `metadata` with annotation `key` set to `value`, or removed when `value` is `None`.
pub(super) fn with_annotation(
    metadata: &ObjectMeta,
    key: &str,
    value: Option<String>,
) -> ObjectMeta {
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
pub(super) fn object_name(metadata: &ObjectMeta) -> String {
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
