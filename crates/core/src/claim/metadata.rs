//! The claim metadata its Sandbox inherits: the controller reference, the `created-by` label,
//! `additionalPodMetadata` merged into template pod metadata without overriding anything, and the
//! trace headers.

use std::collections::BTreeMap;

use agent_sandbox_api::common::PodMetadata;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::SandboxClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::ownership::controller_reference;

/// The controller reference the claim's Sandbox carries.
pub(super) fn claim_reference(claim: &SandboxClaim) -> OwnerReference {
    controller_reference(
        "extensions.agents.x-k8s.io/v1beta1",
        "SandboxClaim",
        &claim.metadata,
    )
}

/// The claim's `created-by` label, if set and non-empty.
pub(super) fn created_by(claim: &SandboxClaim) -> Option<String> {
    claim
        .metadata
        .labels
        .as_ref()?
        .get(labels::CREATED_BY)
        .filter(|v| !v.is_empty())
        .cloned()
}

/// Gives the label `map` the claim's `created-by`, or none when the claim has none.
pub(super) fn set_created_by(map: &mut BTreeMap<String, String>, created_by: Option<&String>) {
    match created_by {
        Some(creator) => map.insert(labels::CREATED_BY.to_owned(), creator.clone()),
        None => map.remove(labels::CREATED_BY),
    };
}

/// The claim's W3C trace headers, which its Sandbox carries too.
pub(super) fn trace_context(claim: &SandboxClaim) -> Option<&String> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::TRACE_CONTEXT)
}

/// Copies `extra` into `target`; a key the target already has with a different value is a conflict.
pub fn merge_no_override(target: &mut PodMetadata, extra: &PodMetadata) -> Result<(), String> {
    fn merge(
        kind: &str,
        target: &mut BTreeMap<String, String>,
        extra: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        for (key, value) in extra {
            match target.get(key) {
                Some(existing) if existing != value => {
                    return Err(format!(
                        "metadata override conflict: {kind} {key:?} is defined in template with value {existing:?}, but claim requests {value:?}"
                    ));
                }
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(())
    }
    merge("label", &mut target.labels, &extra.labels)?;
    merge("annotation", &mut target.annotations, &extra.annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)]) -> PodMetadata {
        PodMetadata {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn new_and_equal_keys_merge_and_different_values_conflict() {
        let mut target = meta(&[("a", "1")]);
        assert_eq!(
            merge_no_override(&mut target, &meta(&[("a", "1"), ("b", "2")])),
            Ok(())
        );
        assert_eq!(target, meta(&[("a", "1"), ("b", "2")]));
        assert_eq!(
            merge_no_override(&mut target, &meta(&[("a", "9")])),
            Err("metadata override conflict: label \"a\" is defined in template with value \"1\", but claim requests \"9\"".into())
        );
    }

    #[test]
    fn annotations_follow_the_same_no_override_rule() {
        let mut target = PodMetadata {
            annotations: [("note".to_owned(), "t".to_owned())].into(),
            ..Default::default()
        };
        let extra = PodMetadata {
            annotations: [("note".to_owned(), "c".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            merge_no_override(&mut target, &extra),
            Err("metadata override conflict: annotation \"note\" is defined in template with value \"t\", but claim requests \"c\"".into())
        );
        let same = PodMetadata {
            annotations: [
                ("note".to_owned(), "t".to_owned()),
                ("new".to_owned(), "n".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(merge_no_override(&mut target, &same), Ok(()));
        assert_eq!(target.annotations.len(), 2);
    }
}
