//! JSON merge patches (RFC 7386) the claim controller sends.

use serde_json::{Map, Value, json};

/// The merge patch that turns `old` into `new` (keys missing from `new` become `null`).
pub fn diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before @ Value::Object(_)) if value.is_object() => {
                        patch.insert(key.clone(), diff(before, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// True when a patch changes nothing.
pub fn is_empty(patch: &Value) -> bool {
    patch.as_object().is_some_and(Map::is_empty)
}

/// Adds `metadata.resourceVersion` so the server rejects the patch if the object changed since.
pub fn locked(mut patch: Value, resource_version: Option<&str>) -> Value {
    if let (Some(rv), Some(object)) = (resource_version, patch.as_object_mut()) {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("resourceVersion".into(), json!(rv));
        }
    }
    patch
}

/// `{"metadata":{"<field>":{<key>:<value>,...}}}` with `None` values as deletions.
pub fn metadata(field: &str, entries: &[(&str, Option<&str>)]) -> Value {
    let map: Map<String, Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map_or(Value::Null, |v| json!(v))))
        .collect();
    json!({ "metadata": { field: map } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_sets_changed_keys_nulls_removed_ones_and_recurses_into_objects() {
        let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": true});
        let new = json!({"a": 1, "b": {"x": 1, "y": 3, "z": 4}, "c": [2]});
        assert_eq!(
            diff(&old, &new),
            json!({"gone": null, "b": {"y": 3, "z": 4}, "c": [2]})
        );
        assert!(is_empty(&diff(&new, &new)));
    }

    #[test]
    fn a_locked_patch_carries_the_resource_version() {
        let patch = locked(
            metadata("labels", &[("k", Some("v")), ("old", None)]),
            Some("7"),
        );
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"k": "v", "old": null}, "resourceVersion": "7"}})
        );
    }
}
