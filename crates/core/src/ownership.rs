//! Who controls a child object, and whether an unowned one may be adopted.

use std::collections::BTreeMap;

use agent_sandbox_api::keys::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The controller of a child object, judged by owner UID (the kind is not checked).
#[derive(Clone, Debug, PartialEq)]
pub enum Ownership<'a> {
    /// The controller reference names this owner's UID.
    Owned,
    /// There is no controller reference.
    Unowned,
    /// Another object controls it.
    Other(&'a OwnerReference),
}

/// The controller reference of `meta`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Classifies `meta` relative to the owner with `owner_uid`.
pub fn ownership<'a>(meta: &'a ObjectMeta, owner_uid: &str) -> Ownership<'a> {
    match controller_of(meta) {
        None => Ownership::Unowned,
        Some(reference) if reference.uid == owner_uid => Ownership::Owned,
        Some(reference) => Ownership::Other(reference),
    }
}

/// An unowned object may be adopted when it is labelled `adoptable=true` or already carries the
/// owner's name-hash tracking label.
pub fn may_adopt(meta: &ObjectMeta, name_hash: &str) -> bool {
    let labels = meta.labels.as_ref();
    let label = |key: &str| {
        labels
            .and_then(|l: &BTreeMap<String, String>| l.get(key))
            .map(String::as_str)
    };
    label(labels::ADOPTABLE) == Some("true") || label(labels::SANDBOX_NAME_HASH) == Some(name_hash)
}

/// `<Kind>/<Name> (UID: <uid>)`, naming a foreign controller in error messages.
pub fn describe(reference: &OwnerReference) -> String {
    format!(
        "{}/{} (UID: {})",
        reference.kind, reference.name, reference.uid
    )
}

/// A controller owner reference (with `blockOwnerDeletion`) to the given object.
pub fn controller_reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_owner(uid: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                kind: "Deployment".into(),
                name: "d".into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn ownership_is_decided_by_controller_uid() {
        assert_eq!(ownership(&with_owner("u1", true), "u1"), Ownership::Owned);
        assert!(
            matches!(ownership(&with_owner("u2", true), "u1"), Ownership::Other(r) if r.uid == "u2")
        );
        assert_eq!(
            ownership(&with_owner("u1", false), "u1"),
            Ownership::Unowned,
            "a non-controller ref does not own"
        );
        assert_eq!(ownership(&ObjectMeta::default(), "u1"), Ownership::Unowned);
    }

    #[test]
    fn adoption_needs_the_adoptable_label_or_the_exact_tracking_label() {
        let labelled = |k: &str, v: &str| ObjectMeta {
            labels: Some(BTreeMap::from([(k.to_owned(), v.to_owned())])),
            ..ObjectMeta::default()
        };
        assert!(may_adopt(&labelled(labels::ADOPTABLE, "true"), "h"));
        assert!(!may_adopt(&labelled(labels::ADOPTABLE, "yes"), "h"));
        assert!(may_adopt(&labelled(labels::SANDBOX_NAME_HASH, "h"), "h"));
        assert!(!may_adopt(
            &labelled(labels::SANDBOX_NAME_HASH, "other"),
            "h"
        ));
        assert!(!may_adopt(&ObjectMeta::default(), "h"));
    }

    #[test]
    fn foreign_controllers_are_described_by_kind_name_and_uid() {
        let meta = with_owner("u9", true);
        let reference = controller_of(&meta).expect("has a controller");
        assert_eq!(describe(reference), "Deployment/d (UID: u9)");
    }
}
