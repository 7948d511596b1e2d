//! The Sandbox a warm pool creates from its template (one object per pass; each create sends a copy).

use std::collections::BTreeMap;

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxSpec, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::ownership::controller_reference;
use agent_sandbox_core::template::apply_secure_defaults;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::staleness::{blueprint_hash, pod_template_hash};

/// Pool settings that shape its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// Stamp `cluster-autoscaler.kubernetes.io/safe-to-evict: "true"` unless the template sets it.
    pub eviction_annotation: bool,
}

impl Default for MemberConfig {
    fn default() -> Self {
        Self {
            eviction_annotation: true,
        }
    }
}

/// The next member of `pool`, built from `template` (named by the server from `<pool>-`).
pub fn build(pool: &SandboxWarmPool, template: &SandboxTemplate, config: MemberConfig) -> Sandbox {
    let pool_name = pool.metadata.name.clone().unwrap_or_default();
    let template_name = pool.spec.sandbox_template_ref.name.clone();
    let blueprint = &template.spec.blueprint;
    let hashes = [
        (labels::WARM_POOL_SANDBOX, name_hash(&pool_name)),
        (labels::SANDBOX_TEMPLATE_REF_HASH, name_hash(&template_name)),
        (
            labels::SANDBOX_POD_TEMPLATE_HASH,
            pod_template_hash(blueprint),
        ),
        (labels::SANDBOX_TEMPLATE_HASH, blueprint_hash(blueprint)),
    ];
    let mut sandbox_labels: BTreeMap<String, String> = hashes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    sandbox_labels.insert(
        labels::LAUNCH_TYPE.to_owned(),
        labels::LAUNCH_TYPE_WARM.to_owned(),
    );
    sandbox_labels.insert(labels::CREATED_BY.to_owned(), "controller".to_owned());

    let mut spec_blueprint = blueprint.clone();
    let pod_metadata = &mut spec_blueprint.pod_template.metadata;
    pod_metadata
        .labels
        .extend(hashes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    if config.eviction_annotation {
        pod_metadata
            .annotations
            .entry(annotations::SAFE_TO_EVICT.to_owned())
            .or_insert_with(|| "true".to_owned());
    }
    apply_secure_defaults(&mut spec_blueprint.pod_template.spec, template);

    Sandbox {
        metadata: ObjectMeta {
            generate_name: Some(format!("{pool_name}-")),
            namespace: pool.metadata.namespace.clone(),
            labels: Some(sandbox_labels),
            annotations: Some(BTreeMap::from([(
                annotations::SANDBOX_TEMPLATE_REF.to_owned(),
                template_name,
            )])),
            owner_references: Some(vec![controller_reference(
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxWarmPool",
                &pool.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: SandboxSpec {
            blueprint: spec_blueprint,
            ..SandboxSpec::default()
        },
        status: None,
    }
}

/// Batch sizes for creating or deleting `count` members: 1, 2, 4, … capped by what is left, so a
/// failing API costs one call, not `count`.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (count, 1);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

#[cfg(test)]
mod tests {
    use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
    use agent_sandbox_api::extensions::NetworkPolicyManagement;
    use agent_sandbox_api::v1beta1::{SandboxTemplateSpec, SandboxWarmPoolSpec};
    use k8s_openapi::api::core::v1::Container;

    use super::*;

    fn template() -> SandboxTemplate {
        let mut t = SandboxTemplate::new("python", SandboxTemplateSpec::default());
        let pod = &mut t.spec.blueprint.pod_template;
        pod.spec.containers = vec![Container {
            name: "py".into(),
            image: Some("python:3".into()),
            ..Default::default()
        }];
        pod.metadata
            .labels
            .insert("sandbox.users.io/runtime".into(), "python".into());
        pod.metadata.annotations.insert("note".into(), "n".into());
        t
    }

    fn pool() -> SandboxWarmPool {
        let mut p = SandboxWarmPool::new(
            "py-pool",
            SandboxWarmPoolSpec {
                sandbox_template_ref: agent_sandbox_api::common::LocalObjectReference {
                    name: "python".into(),
                },
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some("pool-uid".into());
        p
    }

    #[test]
    fn members_carry_the_pool_labels_template_metadata_and_eviction_hint() {
        let member = build(&pool(), &template(), MemberConfig::default());
        assert_eq!(member.metadata.generate_name.as_deref(), Some("py-pool-"));
        let l = member.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            l.get(labels::WARM_POOL_SANDBOX),
            Some(&name_hash("py-pool"))
        );
        assert_eq!(
            l.get(labels::SANDBOX_TEMPLATE_REF_HASH),
            Some(&name_hash("python"))
        );
        assert_eq!(l.get(labels::LAUNCH_TYPE).map(String::as_str), Some("warm"));
        assert_eq!(
            l.get(labels::CREATED_BY).map(String::as_str),
            Some("controller")
        );
        assert_eq!(
            l.get(labels::SANDBOX_TEMPLATE_HASH),
            Some(&blueprint_hash(&template().spec.blueprint))
        );
        let pod = &member.spec.blueprint.pod_template.metadata;
        assert_eq!(
            pod.labels
                .get("sandbox.users.io/runtime")
                .map(String::as_str),
            Some("python")
        );
        assert_eq!(
            pod.labels.get(labels::WARM_POOL_SANDBOX),
            Some(&name_hash("py-pool"))
        );
        assert_eq!(pod.annotations.get("note").map(String::as_str), Some("n"));
        assert_eq!(
            pod.annotations
                .get(annotations::SAFE_TO_EVICT)
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            member
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotations::SANDBOX_TEMPLATE_REF))
                .map(String::as_str),
            Some("python")
        );
        let owner = &member.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("SandboxWarmPool", "pool-uid", Some(true))
        );
        assert_eq!(member.spec.operating_mode, None);
        assert_eq!(member.spec.lifecycle, Default::default());
    }

    #[test]
    fn volume_claim_templates_are_copied_in_order() {
        let mut t = template();
        let vct = PersistentVolumeClaimTemplate::named;
        t.spec.blueprint.volume_claim_templates = vec![vct("b"), vct("a")];
        let member = build(&pool(), &t, MemberConfig::default());
        let names: Vec<_> = member
            .spec
            .blueprint
            .volume_claim_templates
            .iter()
            .map(|v| v.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn secure_defaults_are_applied() {
        let member = build(&pool(), &template(), MemberConfig::default());
        let spec = &member.spec.blueprint.pod_template.spec;
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
        let mut unmanaged = template();
        unmanaged.spec.network_policy_management = Some(NetworkPolicyManagement::Unmanaged);
        unmanaged
            .spec
            .blueprint
            .pod_template
            .spec
            .automount_service_account_token = Some(true);
        let member = build(&pool(), &unmanaged, MemberConfig::default());
        let spec = &member.spec.blueprint.pod_template.spec;
        assert_eq!(
            (
                spec.automount_service_account_token,
                spec.dns_policy.clone()
            ),
            (Some(true), None)
        );
    }

    #[test]
    fn the_eviction_hint_respects_the_flag_and_an_explicit_template_value() {
        let off = build(
            &pool(),
            &template(),
            MemberConfig {
                eviction_annotation: false,
            },
        );
        assert!(
            !off.spec
                .blueprint
                .pod_template
                .metadata
                .annotations
                .contains_key(annotations::SAFE_TO_EVICT)
        );
        for explicit in ["false", "true"] {
            let mut t = template();
            t.spec
                .blueprint
                .pod_template
                .metadata
                .annotations
                .insert(annotations::SAFE_TO_EVICT.into(), explicit.into());
            for flag in [true, false] {
                let member = build(
                    &pool(),
                    &t,
                    MemberConfig {
                        eviction_annotation: flag,
                    },
                );
                let value = member
                    .spec
                    .blueprint
                    .pod_template
                    .metadata
                    .annotations
                    .get(annotations::SAFE_TO_EVICT)
                    .cloned();
                assert_eq!(value.as_deref(), Some(explicit), "flag {flag}");
            }
        }
    }

    #[test]
    fn the_blueprint_hash_follows_what_matters() {
        let t = template();
        assert_eq!(
            blueprint_hash(&t.spec.blueprint),
            blueprint_hash(&template().spec.blueprint)
        );
        let mut image = template();
        image.spec.blueprint.pod_template.spec.containers[0].image = Some("python:4".into());
        let mut service = template();
        service.spec.blueprint.service = Some(true);
        let mut vct = template();
        vct.spec
            .blueprint
            .volume_claim_templates
            .push(PersistentVolumeClaimTemplate::default());
        for changed in [image, service, vct] {
            assert_ne!(
                blueprint_hash(&changed.spec.blueprint),
                blueprint_hash(&t.spec.blueprint)
            );
        }
    }

    #[test]
    fn slow_start_batches_double_up_to_what_is_left() {
        assert_eq!(slow_start_batches(14), [1, 2, 4, 7]);
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(15), [1, 2, 4, 8]);
        // A failure at index 5 stops after the batch holding it: calls 1 + 2 + 4 = 7, successes 6.
        let calls_until_index_5: usize = slow_start_batches(14)
            .iter()
            .scan(0, |seen, b| {
                let before = *seen;
                *seen += b;
                (before <= 5).then_some(*b)
            })
            .sum();
        assert_eq!(calls_until_index_5, 7);
    }
}
