//! Who controls an object and who writes it: the field manager of every controller, controller
//! references by kind, and whether an unowned child may be adopted.

use std::collections::BTreeMap;

use agent_sandbox_api::keys::{EXTENSIONS_GROUP, labels};
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Field manager of every object the controllers create or patch (one name, so server-side field
/// ownership does not change hands between controllers).
pub const FIELD_MANAGER: &str = "sandbox-controller";

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

/// The controller reference of `meta`, whatever its kind.
pub fn any_controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The part of the reference's `apiVersion` before the `/`: its API group (for every group but the
/// core one, which has no `/`).
pub fn api_group(reference: &OwnerReference) -> &str {
    reference.api_version.split('/').next().unwrap_or_default()
}

/// The controller reference of `meta`, if it names kind `kind` in API group `group` (any version:
/// references written by older controllers name the deprecated one).
pub fn controller_of<'a>(
    meta: &'a ObjectMeta,
    group: &str,
    kind: &str,
) -> Option<&'a OwnerReference> {
    any_controller(meta).filter(|r| r.kind == kind && api_group(r) == group)
}

/// The name of the SandboxWarmPool controlling `sandbox`.
pub fn controlling_pool(sandbox: &Sandbox) -> Option<&str> {
    controller_of(&sandbox.metadata, EXTENSIONS_GROUP, "SandboxWarmPool").map(|r| r.name.as_str())
}

/// The name of the SandboxClaim controlling `sandbox`.
pub fn controlling_claim(sandbox: &Sandbox) -> Option<&str> {
    controller_of(&sandbox.metadata, EXTENSIONS_GROUP, "SandboxClaim").map(|r| r.name.as_str())
}

/// Classifies `meta` relative to the owner with `owner_uid`.
pub fn ownership<'a>(meta: &'a ObjectMeta, owner_uid: &str) -> Ownership<'a> {
    match any_controller(meta) {
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
    fn controller_of_matches_group_and_kind_in_any_version() {
        let owned_by = |api_version: &str, kind: &str, controller: bool| ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "p".into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        };
        for version in ["v1alpha1", "v1beta1"] {
            let meta = owned_by(
                &format!("{EXTENSIONS_GROUP}/{version}"),
                "SandboxWarmPool",
                true,
            );
            assert!(controller_of(&meta, EXTENSIONS_GROUP, "SandboxWarmPool").is_some());
        }
        let meta = owned_by("apps/v1", "SandboxWarmPool", true);
        assert!(controller_of(&meta, EXTENSIONS_GROUP, "SandboxWarmPool").is_none());
        let meta = owned_by("extensions.agents.x-k8s.io/v1", "SandboxClaim", true);
        assert!(controller_of(&meta, EXTENSIONS_GROUP, "SandboxWarmPool").is_none());
        let meta = owned_by("extensions.agents.x-k8s.io/v1", "SandboxWarmPool", false);
        assert!(controller_of(&meta, EXTENSIONS_GROUP, "SandboxWarmPool").is_none());
    }

    #[test]
    fn foreign_controllers_are_described_by_kind_name_and_uid() {
        let meta = with_owner("u9", true);
        let reference = any_controller(&meta).expect("has a controller");
        assert_eq!(describe(reference), "Deployment/d (UID: u9)");
    }
}
