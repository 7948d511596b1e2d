//! Whether a pool member was built from an outdated template.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxBlueprint, SandboxTemplate};
use agent_sandbox_core::template::apply_secure_defaults;

/// NameHash of the blueprint's JSON. Upstream hashes Go's JSON, so values differ from upstream's: the
/// semantic comparison below keeps a mixed rollout from treating every member as stale.
pub fn blueprint_hash(blueprint: &SandboxBlueprint) -> String {
    serde_json::to_string(blueprint)
        .map(|json| name_hash(&json))
        .unwrap_or_default()
}

/// NameHash of the pod template's JSON (the deprecated `sandbox-pod-template-hash` label).
pub fn pod_template_hash(blueprint: &SandboxBlueprint) -> String {
    serde_json::to_string(&blueprint.pod_template)
        .map(|json| name_hash(&json))
        .unwrap_or_default()
}

/// True when the member's blueprint means the same as the template's: the pod spec after secure
/// defaults, the volume claim templates by position (name and spec only), and the Service choice.
/// Pod template labels and annotations never make a member stale.
pub fn same_blueprint(template: &SandboxTemplate, sandbox: &Sandbox) -> bool {
    let wanted = &template.spec.blueprint;
    let have = &sandbox.spec.blueprint;
    let mut pod_spec = wanted.pod_template.spec.clone();
    apply_secure_defaults(&mut pod_spec, template);
    pod_spec == have.pod_template.spec
        && wanted.volume_claim_templates.len() == have.volume_claim_templates.len()
        && wanted
            .volume_claim_templates
            .iter()
            .zip(&have.volume_claim_templates)
            .all(|(w, h)| w.metadata.name == h.metadata.name && w.spec == h.spec)
        && wanted.service == have.service
}

/// Staleness of a member against the current template (`template_name` is what the pool references).
/// Orphans always get the full comparison, so a forged hash label cannot smuggle in another pod spec.
pub fn is_stale(
    sandbox: &Sandbox,
    template_name: &str,
    template: &SandboxTemplate,
    orphan: bool,
) -> bool {
    let label = |key: &str| {
        sandbox
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    };
    if label(labels::SANDBOX_TEMPLATE_REF_HASH) != Some(name_hash(template_name).as_str()) {
        return true;
    }
    if orphan {
        return !same_blueprint(template, sandbox);
    }
    let current = blueprint_hash(&template.spec.blueprint);
    if current.is_empty() || label(labels::SANDBOX_TEMPLATE_HASH).is_some_and(|h| h == current) {
        return false;
    }
    !same_blueprint(template, sandbox)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
    use agent_sandbox_api::extensions::NetworkPolicyManagement;
    use agent_sandbox_api::v1beta1::{SandboxSpec, SandboxTemplateSpec};
    use k8s_openapi::api::core::v1::Container;

    use super::*;

    fn template(image: &str) -> SandboxTemplate {
        let mut blueprint = SandboxBlueprint::default();
        blueprint.pod_template.spec.containers = vec![Container {
            name: "c".into(),
            image: Some(image.into()),
            ..Default::default()
        }];
        SandboxTemplate::new(
            "tpl",
            SandboxTemplateSpec {
                blueprint,
                ..Default::default()
            },
        )
    }

    /// A member built from `template` the way the pool builds it (secure defaults applied, labels set).
    fn member(template: &SandboxTemplate) -> Sandbox {
        let mut blueprint = template.spec.blueprint.clone();
        apply_secure_defaults(&mut blueprint.pod_template.spec, template);
        let mut sandbox = Sandbox::new(
            "pool-abcde",
            SandboxSpec {
                blueprint,
                ..Default::default()
            },
        );
        sandbox.metadata.labels = Some(BTreeMap::from([
            (
                labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
                name_hash("tpl"),
            ),
            (
                labels::SANDBOX_TEMPLATE_HASH.to_owned(),
                blueprint_hash(&template.spec.blueprint),
            ),
        ]));
        sandbox
    }

    #[test]
    fn a_fresh_member_is_not_stale_owned_or_orphaned() {
        let t = template("v1");
        assert!(!is_stale(&member(&t), "tpl", &t, false));
        assert!(!is_stale(&member(&t), "tpl", &t, true));
    }

    #[test]
    fn a_changed_image_makes_members_stale() {
        let old = template("v1");
        let new = template("v2");
        assert!(is_stale(&member(&old), "tpl", &new, false));
    }

    #[test]
    fn a_different_template_reference_is_stale() {
        let t = template("v1");
        assert!(is_stale(&member(&t), "another-template", &t, false));
    }

    #[test]
    fn a_foreign_hash_falls_back_to_the_semantic_comparison() {
        // A member made by another implementation carries a hash we cannot reproduce.
        let t = template("v1");
        let mut m = member(&t);
        m.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(labels::SANDBOX_TEMPLATE_HASH.into(), "deadbeef".into());
        assert!(!is_stale(&m, "tpl", &t, false), "same meaning: not stale");
    }

    #[test]
    fn orphans_with_a_forged_hash_are_compared_in_full() {
        let t = template("v1");
        let mut m = member(&t);
        m.spec.blueprint.pod_template.spec.containers[0].image = Some("evil".into());
        assert!(
            !is_stale(&m, "tpl", &t, false),
            "an owned member with a matching hash is trusted"
        );
        assert!(is_stale(&m, "tpl", &t, true), "an orphan is not");
    }

    #[test]
    fn pod_metadata_never_makes_a_member_stale() {
        let mut t = template("v1");
        let m = member(&t);
        t.spec
            .blueprint
            .pod_template
            .metadata
            .labels
            .insert("new".into(), "label".into());
        assert!(!is_stale(&m, "tpl", &t, true));
    }

    #[test]
    fn volume_claim_templates_compare_by_position_name_and_spec() {
        let vct = PersistentVolumeClaimTemplate::named;
        let mut t = template("v1");
        t.spec.blueprint.volume_claim_templates = vec![vct("a"), vct("b")];
        let mut m = member(&t);
        m.spec.blueprint.volume_claim_templates[0]
            .metadata
            .labels
            .insert("x".into(), "y".into());
        assert!(same_blueprint(&t, &m), "labels ignored");
        m.spec.blueprint.volume_claim_templates.reverse();
        assert!(!same_blueprint(&t, &m), "order matters");
    }

    #[test]
    fn the_service_choice_is_tri_state() {
        let mut t = template("v1");
        let m = member(&t);
        t.spec.blueprint.service = Some(false);
        assert!(!same_blueprint(&t, &m), "unset differs from false");
    }

    #[test]
    fn pod_specs_compare_after_secure_defaults() {
        let t = template("v1");
        let m = member(&t);
        assert!(same_blueprint(&t, &m), "identical");
        let mut explicit = template("v1");
        explicit
            .spec
            .blueprint
            .pod_template
            .spec
            .automount_service_account_token = Some(false);
        assert!(same_blueprint(&explicit, &m), "unset automount means false");
        explicit
            .spec
            .blueprint
            .pod_template
            .spec
            .automount_service_account_token = Some(true);
        assert!(!same_blueprint(&explicit, &m), "true differs from false");
        assert_eq!(
            m.spec.blueprint.pod_template.spec.dns_policy.as_deref(),
            Some("None"),
            "the member carries the secure DNS default the template leaves empty"
        );
        let mut dns = template("v1");
        dns.spec.network_policy_management = Some(NetworkPolicyManagement::Unmanaged);
        dns.spec.blueprint.pod_template.spec.dns_policy = Some("Default".into());
        let old = member(&dns);
        dns.spec.blueprint.pod_template.spec.dns_policy = Some("ClusterFirst".into());
        assert!(!same_blueprint(&dns, &old));
        assert!(
            is_stale(&old, "tpl", &dns, false),
            "a DNS policy change is a rollout"
        );
    }

    #[test]
    fn what_makes_a_member_stale_and_what_does_not() {
        let vct = |name: &str, class: &str| {
            let mut v = PersistentVolumeClaimTemplate::named(name);
            v.spec.storage_class_name = Some(class.into());
            v
        };
        let base = || {
            let mut t = template("v1");
            t.spec.blueprint.volume_claim_templates = vec![vct("data", "slow")];
            t
        };
        let m = member(&base());
        type Edit = fn(&mut SandboxTemplate);
        let fresh: [(&str, Edit); 4] = [
            ("unchanged", |_| {}),
            ("pod label", |t| {
                t.spec
                    .blueprint
                    .pod_template
                    .metadata
                    .labels
                    .insert("l".into(), "v".into());
            }),
            ("pod annotation", |t| {
                t.spec
                    .blueprint
                    .pod_template
                    .metadata
                    .annotations
                    .insert("a".into(), "v".into());
            }),
            ("VCT metadata", |t| {
                let v = &mut t.spec.blueprint.volume_claim_templates[0].metadata;
                v.labels.insert("l".into(), "v".into());
                v.annotations.insert("a".into(), "v".into());
            }),
        ];
        let stale: [(&str, Edit); 7] = [
            ("image", |t| {
                t.spec.blueprint.pod_template.spec.containers[0].image = Some("v2".into());
            }),
            ("VCT added", |t| {
                t.spec
                    .blueprint
                    .volume_claim_templates
                    .push(PersistentVolumeClaimTemplate::default());
            }),
            ("VCT removed", |t| {
                t.spec.blueprint.volume_claim_templates.clear()
            }),
            ("VCT renamed", |t| {
                t.spec.blueprint.volume_claim_templates[0].metadata.name = "other".into();
            }),
            ("storage class", |t| {
                t.spec.blueprint.volume_claim_templates[0]
                    .spec
                    .storage_class_name = Some("fast".into());
            }),
            ("service on", |t| t.spec.blueprint.service = Some(true)),
            ("service off", |t| t.spec.blueprint.service = Some(false)),
        ];
        for (expected, cases) in [(false, &fresh[..]), (true, &stale[..])] {
            for (what, edit) in cases {
                let mut t = base();
                edit(&mut t);
                assert_eq!(is_stale(&m, "tpl", &t, false), expected, "{what}");
                assert_eq!(is_stale(&m, "tpl", &t, true), expected, "{what} (orphan)");
            }
        }
        let mut with_service = base();
        with_service.spec.blueprint.service = Some(true);
        let serviced = member(&with_service);
        with_service.spec.blueprint.service = Some(false);
        assert!(
            !same_blueprint(&with_service, &serviced),
            "true differs from false"
        );
    }

    #[test]
    fn a_blueprint_is_exactly_pod_template_volume_claim_templates_and_service() {
        // Adding a field to the blueprint breaks this destructuring: decide then whether staleness
        // must compare it.
        let SandboxBlueprint {
            pod_template: _,
            volume_claim_templates: _,
            service: _,
        } = SandboxBlueprint::default();
    }
}
