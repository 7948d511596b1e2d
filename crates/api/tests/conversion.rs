//! Conversion rules of api-spec §8, one case per rule.

use std::collections::BTreeMap;

use agent_sandbox_api::convert::{ConversionError, Spoke};
use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1alpha1;
use agent_sandbox_api::v1beta1::{self, SandboxOperatingMode, VolumeClaimTemplatesPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        ..ObjectMeta::default()
    }
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn alpha_sandbox(replicas: Option<i32>) -> v1alpha1::Sandbox {
    v1alpha1::Sandbox {
        metadata: meta("sb"),
        spec: v1alpha1::SandboxSpec {
            replicas,
            ..Default::default()
        },
        status: None,
    }
}

fn hub_sandbox(mode: Option<SandboxOperatingMode>) -> v1beta1::Sandbox {
    v1beta1::Sandbox {
        metadata: meta("sb"),
        spec: v1beta1::SandboxSpec {
            operating_mode: mode,
            ..Default::default()
        },
        status: None,
    }
}

#[test]
fn sandbox_replicas_zero_suspends_and_anything_else_runs() {
    for (replicas, mode) in [
        (Some(0), SandboxOperatingMode::Suspended),
        (Some(1), SandboxOperatingMode::Running),
        (None, SandboxOperatingMode::Running),
    ] {
        let hub = alpha_sandbox(replicas).to_hub().expect("converts");
        assert_eq!(hub.spec.operating_mode, Some(mode), "replicas {replicas:?}");
    }
}

#[test]
fn sandbox_without_snapshot_gets_explicit_replicas_and_synthetic_status_replicas() {
    for (mode, replicas) in [
        (Some(SandboxOperatingMode::Suspended), 0),
        (Some(SandboxOperatingMode::Running), 1),
        (None, 1),
    ] {
        let alpha = v1alpha1::Sandbox::from_hub(&hub_sandbox(mode)).expect("converts");
        assert_eq!(alpha.spec.replicas, Some(replicas), "{mode:?}");
        assert_eq!(
            alpha.status.map(|s| s.replicas),
            (replicas != 0).then_some(1),
            "{mode:?}"
        );
    }
}

#[test]
fn sandbox_snapshot_keeps_an_unset_replicas_unset_and_is_stripped() {
    let hub = alpha_sandbox(None).to_hub().expect("converts");
    assert!(annotation(&hub.metadata, annotations::V1ALPHA1_SANDBOX_STATE).is_some());
    let alpha = v1alpha1::Sandbox::from_hub(&hub).expect("converts");
    assert_eq!(alpha.spec.replicas, None);
    assert_eq!(
        alpha.metadata.annotations, None,
        "snapshot annotation stripped"
    );
}

#[test]
fn sandbox_resumed_through_v1beta1_reads_replicas_one_despite_a_suspended_snapshot() {
    let mut hub = alpha_sandbox(Some(0)).to_hub().expect("converts");
    hub.spec.operating_mode = Some(SandboxOperatingMode::Running);
    let alpha = v1alpha1::Sandbox::from_hub(&hub).expect("converts");
    assert_eq!(alpha.spec.replicas, Some(1));
}

#[test]
fn sandbox_status_replicas_comes_from_the_snapshot_even_when_stale() {
    let mut alpha = alpha_sandbox(Some(1));
    alpha.status = Some(v1alpha1::SandboxStatus {
        replicas: 1,
        selector: "s".into(),
        ..Default::default()
    });
    let mut hub = alpha.to_hub().expect("converts");
    hub.spec.operating_mode = Some(SandboxOperatingMode::Suspended);
    let back = v1alpha1::Sandbox::from_hub(&hub).expect("converts");
    assert_eq!(back.spec.replicas, Some(0));
    assert_eq!(
        back.status.map(|s| s.replicas),
        Some(1),
        "upstream keeps the snapshot's value"
    );
}

#[test]
fn sandbox_node_name_is_dropped_going_to_v1alpha1_and_empty_coming_back() {
    let mut hub = hub_sandbox(None);
    hub.status = Some(v1beta1::SandboxStatus {
        node_name: "kwok-node-0".into(),
        ..Default::default()
    });
    let alpha = v1alpha1::Sandbox::from_hub(&hub).expect("converts");
    let back = alpha.to_hub().expect("converts");
    assert_eq!(back.status.map(|s| s.node_name), Some(String::new()));
}

fn alpha_claim(template: &str, warmpool: Option<&str>, bound: &str) -> v1alpha1::SandboxClaim {
    v1alpha1::SandboxClaim {
        metadata: meta("claim"),
        spec: v1alpha1::SandboxClaimSpec {
            sandbox_template_ref: v1alpha1::LocalObjectReference {
                name: template.into(),
            },
            warmpool: warmpool.map(String::from),
            ..Default::default()
        },
        status: (!bound.is_empty()).then(|| v1alpha1::SandboxClaimStatus {
            sandbox: v1alpha1::SandboxedObjectStatus {
                name: bound.into(),
                ..Default::default()
            },
            ..Default::default()
        }),
    }
}

#[test]
fn claim_warm_pool_ref_derivation_follows_the_three_rules() {
    let pool =
        |claim: v1alpha1::SandboxClaim| claim.to_hub().expect("converts").spec.warm_pool_ref.name;
    // 1. a specific pool name wins
    assert_eq!(
        pool(alpha_claim("tpl", Some("fast-pool"), "other-pool-abcde")),
        "fast-pool"
    );
    // 2. a warm-started claim: its sandbox name minus the random suffix
    assert_eq!(
        pool(alpha_claim("tpl", Some("default"), "warm-pool-x7k2q")),
        "warm-pool"
    );
    assert_eq!(
        pool(alpha_claim("tpl", None, "warm-pool-x7k2q")),
        "warm-pool"
    );
    // 3. otherwise the migration's shadow pool
    assert_eq!(
        pool(alpha_claim("tpl", Some("none"), "")),
        "shadow-pool-tpl"
    );
    assert_eq!(
        pool(alpha_claim("tpl", Some(""), "claim")),
        "shadow-pool-tpl",
        "cold start: sandbox named like the claim"
    );
}

#[test]
fn claim_from_hub_without_snapshot_reads_shadow_pools_back_as_templates() {
    let hub = |pool: &str| v1beta1::SandboxClaim {
        metadata: meta("claim"),
        spec: v1beta1::SandboxClaimSpec {
            warm_pool_ref: v1beta1::LocalObjectReference { name: pool.into() },
            volume_claim_templates: vec![Default::default()],
            ..Default::default()
        },
        status: None,
    };
    let alpha = v1alpha1::SandboxClaim::from_hub(&hub("shadow-pool-tpl")).expect("converts");
    assert_eq!(alpha.spec.sandbox_template_ref.name, "tpl");
    assert_eq!(alpha.spec.warmpool.as_deref(), Some("default"));
    let alpha = v1alpha1::SandboxClaim::from_hub(&hub("fast-pool")).expect("converts");
    assert_eq!(
        alpha.spec.sandbox_template_ref.name, "fast-pool",
        "upstream's guess"
    );
    assert_eq!(alpha.spec.warmpool.as_deref(), Some("fast-pool"));
}

#[test]
fn claim_snapshot_restores_the_template_unless_the_pool_was_changed() {
    let hub = alpha_claim("tpl", Some("default"), "")
        .to_hub()
        .expect("converts");
    assert_eq!(hub.spec.warm_pool_ref.name, "shadow-pool-tpl");
    let back = v1alpha1::SandboxClaim::from_hub(&hub).expect("converts");
    assert_eq!(back.spec.sandbox_template_ref.name, "tpl");
    assert_eq!(back.spec.warmpool.as_deref(), Some("default"));

    let mut moved = hub.clone();
    moved.spec.warm_pool_ref.name = "another-pool".into();
    let back = v1alpha1::SandboxClaim::from_hub(&moved).expect("converts");
    assert_eq!(
        back.spec.sandbox_template_ref.name, "tpl",
        "template kept from the snapshot"
    );
    assert_eq!(back.spec.warmpool.as_deref(), Some("another-pool"));
}

#[test]
fn claim_volume_claim_templates_do_not_survive_v1alpha1() {
    let hub = v1beta1::SandboxClaim {
        metadata: meta("claim"),
        spec: v1beta1::SandboxClaimSpec {
            warm_pool_ref: v1beta1::LocalObjectReference { name: "p".into() },
            volume_claim_templates: vec![Default::default()],
            ..Default::default()
        },
        status: None,
    };
    let back = v1alpha1::SandboxClaim::from_hub(&hub)
        .and_then(|a| a.to_hub())
        .expect("converts");
    assert!(back.spec.volume_claim_templates.is_empty());
}

#[test]
fn template_policy_travels_in_an_annotation() {
    let hub = v1beta1::SandboxTemplate {
        metadata: meta("tpl"),
        spec: v1beta1::SandboxTemplateSpec {
            volume_claim_templates_policy: Some(VolumeClaimTemplatesPolicy::Overrides),
            ..Default::default()
        },
    };
    let alpha = v1alpha1::SandboxTemplate::from_hub(&hub).expect("converts");
    assert_eq!(
        annotation(
            &alpha.metadata,
            annotations::V1BETA1_VOLUME_CLAIM_TEMPLATES_POLICY
        ),
        Some("Overrides")
    );
    let back = alpha.to_hub().expect("converts");
    assert_eq!(
        back, hub,
        "policy restored and annotation removed from the stored object"
    );
}

#[test]
fn template_with_a_bad_policy_annotation_is_refused_with_a_message_naming_it() {
    let mut alpha = v1alpha1::SandboxTemplate {
        metadata: meta("tpl"),
        ..Default::default()
    };
    alpha.metadata.annotations = Some(BTreeMap::from([(
        annotations::V1BETA1_VOLUME_CLAIM_TEMPLATES_POLICY.to_owned(),
        "Sometimes".to_owned(),
    )]));
    let error = alpha.to_hub().expect_err("refused");
    assert!(matches!(error, ConversionError::InvalidAnnotation { .. }));
    assert_eq!(
        error.to_string(),
        "SandboxTemplate ns/tpl: annotation api.agents.x-k8s.io/v1beta1-volume-claim-templates-policy has value \"Sometimes\", which is not one of Disallowed, Allowed, Overrides"
    );
}

#[test]
fn templates_and_pools_get_no_snapshot_and_lose_an_upstream_one() {
    let upstream_snapshot = BTreeMap::from([
        (
            annotations::V1ALPHA1_SANDBOXTEMPLATE_STATE.to_owned(),
            "{}".to_owned(),
        ),
        (
            annotations::V1ALPHA1_SANDBOXWARMPOOL_STATE.to_owned(),
            "{}".to_owned(),
        ),
    ]);
    let mut template = v1alpha1::SandboxTemplate {
        metadata: meta("tpl"),
        ..Default::default()
    };
    template.metadata.annotations = Some(upstream_snapshot.clone());
    let hub = template.to_hub().expect("converts");
    assert_eq!(
        hub.metadata
            .annotations
            .as_ref()
            .map(|a| a.keys().cloned().collect::<Vec<_>>()),
        Some(vec![annotations::V1ALPHA1_SANDBOXWARMPOOL_STATE.to_owned()])
    );
    let mut pool = v1alpha1::SandboxWarmPool {
        metadata: meta("pool"),
        ..Default::default()
    };
    pool.metadata.annotations = Some(upstream_snapshot);
    let hub = pool.to_hub().expect("converts");
    assert_eq!(
        hub.metadata
            .annotations
            .as_ref()
            .map(|a| a.keys().cloned().collect::<Vec<_>>()),
        Some(vec![annotations::V1ALPHA1_SANDBOXTEMPLATE_STATE.to_owned()])
    );
}

#[test]
fn pool_replicas_default_to_one_and_observed_generation_is_dropped() {
    let hub = v1beta1::SandboxWarmPool {
        metadata: meta("pool"),
        spec: Default::default(),
        status: Some(v1beta1::SandboxWarmPoolStatus {
            observed_generation: 7,
            replicas: 2,
            ..Default::default()
        }),
    };
    let alpha = v1alpha1::SandboxWarmPool::from_hub(&hub).expect("converts");
    assert_eq!(alpha.spec.replicas, 1);
    let back = alpha.to_hub().expect("converts");
    assert_eq!(back.spec.replicas, Some(1));
    assert_eq!(
        back.status.map(|s| (s.replicas, s.observed_generation)),
        Some((2, 0))
    );
}
