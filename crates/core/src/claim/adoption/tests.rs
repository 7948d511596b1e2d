//! Candidate checks and the adopted Sandbox, on a fixture pool member and claim.

use std::collections::BTreeMap;

use agent_sandbox_api::common::LocalObjectReference;
use agent_sandbox_api::v1beta1::{SandboxClaimSpec, SandboxTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn claim(pool: &str) -> SandboxClaim {
    let mut c = SandboxClaim::new(
        "claim",
        SandboxClaimSpec {
            warm_pool_ref: LocalObjectReference { name: pool.into() },
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("claim-uid".into());
    c
}

fn member(pool: &str) -> Sandbox {
    let mut s = Sandbox::new("pool-abcde", Default::default());
    s.metadata.namespace = Some("ns".into());
    s.metadata.labels = Some(BTreeMap::from([
        (labels::WARM_POOL_SANDBOX.to_owned(), name_hash(pool)),
        (
            labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
            name_hash("tpl"),
        ),
        (labels::SANDBOX_TEMPLATE_HASH.to_owned(), "h".to_owned()),
        (labels::SANDBOX_POD_TEMPLATE_HASH.to_owned(), "p".to_owned()),
        (labels::CREATED_BY.to_owned(), "controller".to_owned()),
    ]));
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "extensions.agents.x-k8s.io/v1alpha1".into(),
        kind: "SandboxWarmPool".into(),
        name: pool.into(),
        uid: "pool-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let pod = &mut s.spec.blueprint.pod_template.metadata;
    pod.annotations
        .insert(annotations::SAFE_TO_EVICT.into(), "true".into());
    pod.labels
        .insert(labels::WARM_POOL_SANDBOX.into(), name_hash(pool));
    s
}

/// A pool member whose pod template says it is not safe to evict.
fn member_not_safe_to_evict() -> Sandbox {
    let mut m = member("p");
    m.spec
        .blueprint
        .pod_template
        .metadata
        .annotations
        .insert(annotations::SAFE_TO_EVICT.into(), "false".into());
    m
}

#[test]
fn candidates_must_be_unclaimed_members_of_the_claims_pool() {
    assert_eq!(
        verify_candidate(&member("p"), &claim("p")),
        Ok(()),
        "owner refs match by group and kind, any version"
    );
    assert!(
        verify_candidate(&member("p"), &claim("other"))
            .is_err_and(|e| e.contains("belongs to pool \"p\""))
    );
    let mut deleting = member("p");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    assert!(verify_candidate(&deleting, &claim("p")).is_err());
    let mut unowned = member("p");
    unowned.metadata.owner_references = None;
    assert!(verify_candidate(&unowned, &claim("p")).is_err_and(|e| e.ends_with("is unowned")));
    let mut unlabelled = member("p");
    unlabelled
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .remove(labels::SANDBOX_TEMPLATE_REF_HASH);
    assert!(verify_candidate(&unlabelled, &claim("p")).is_err());
    let mut elsewhere = member("p");
    elsewhere.metadata.namespace = Some("other".into());
    assert!(verify_candidate(&elsewhere, &claim("p")).is_err());
}

#[test]
fn adoption_moves_the_sandbox_from_the_pool_to_the_claim() {
    let mut c = claim("p");
    c.metadata.labels = Some(BTreeMap::from([(
        labels::CREATED_BY.to_owned(),
        "go-client".to_owned(),
    )]));
    c.spec
        .additional_pod_metadata
        .labels
        .insert("sandbox.users.io/session".into(), "s".into());
    let mut t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    t.spec
        .blueprint
        .pod_template
        .metadata
        .labels
        .insert("sandbox.users.io/tier".into(), "gold".into());
    let adopted = complete(&member("p"), &c, Some(&t)).expect("adopts");
    let l = adopted.metadata.labels.clone().unwrap_or_default();
    for gone in [
        labels::WARM_POOL_SANDBOX,
        labels::SANDBOX_TEMPLATE_HASH,
        labels::SANDBOX_POD_TEMPLATE_HASH,
    ] {
        assert!(!l.contains_key(gone), "{gone}");
    }
    assert_eq!(l.get(labels::LAUNCH_TYPE).map(String::as_str), Some("warm"));
    assert_eq!(
        l.get(labels::CLAIM_UID).map(String::as_str),
        Some("claim-uid")
    );
    assert_eq!(
        l.get(labels::CREATED_BY).map(String::as_str),
        Some("go-client")
    );
    assert_eq!(
        l.get(labels::SANDBOX_TEMPLATE_REF_HASH),
        Some(&name_hash("tpl"))
    );
    let owners = adopted
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("SandboxClaim", "claim-uid")
    );
    assert!(
        !adopted
            .metadata
            .annotations
            .iter()
            .flatten()
            .any(|(k, _)| k == annotations::POD_NAME),
        "the legacy pod-name annotation is not written"
    );
    let pod = &adopted.spec.blueprint.pod_template.metadata;
    assert!(!pod.annotations.contains_key(annotations::SAFE_TO_EVICT));
    assert!(
        !pod.labels.contains_key(labels::WARM_POOL_SANDBOX),
        "rebuilt from the template"
    );
    assert_eq!(
        pod.labels.get("sandbox.users.io/tier").map(String::as_str),
        Some("gold")
    );
    assert_eq!(
        pod.labels
            .get("sandbox.users.io/session")
            .map(String::as_str),
        Some("s")
    );
    assert_eq!(
        adopted.metadata.name,
        member("p").metadata.name,
        "the warm Sandbox keeps its name"
    );
}

#[test]
fn a_legacy_pod_name_annotation_on_the_member_is_kept_as_it_is() {
    let mut m = member("p");
    m.metadata.annotations = Some(BTreeMap::from([(
        annotations::POD_NAME.to_owned(),
        "legacy-pod".to_owned(),
    )]));
    let adopted = complete(&m, &claim("p"), None).expect("adopts");
    assert_eq!(
        adopted
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::POD_NAME))
            .map(String::as_str),
        Some("legacy-pod")
    );
}

#[test]
fn a_template_safe_to_evict_false_survives_and_created_by_is_removed_when_the_claim_has_none() {
    let m = member_not_safe_to_evict();
    let adopted = complete(&m, &claim("p"), None).expect("adopts");
    let pod = &adopted.spec.blueprint.pod_template.metadata;
    assert_eq!(
        pod.annotations
            .get(annotations::SAFE_TO_EVICT)
            .map(String::as_str),
        Some("false")
    );
    assert!(
        !adopted
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(labels::CREATED_BY))
    );
}

fn template_with_pod_annotation(key: &str, value: &str) -> SandboxTemplate {
    let mut t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    t.spec
        .blueprint
        .pod_template
        .metadata
        .annotations
        .insert(key.into(), value.into());
    t
}

fn pod_annotation(sandbox: &Sandbox, key: &str) -> Option<String> {
    sandbox
        .spec
        .blueprint
        .pod_template
        .metadata
        .annotations
        .get(key)
        .cloned()
}

#[test]
fn candidates_need_the_pool_label_and_a_pool_controller() {
    let mut unlabelled = member("p");
    unlabelled
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .remove(labels::WARM_POOL_SANDBOX);
    assert!(
        verify_candidate(&unlabelled, &claim("p"))
            .is_err_and(|e| e.contains(labels::WARM_POOL_SANDBOX))
    );
    for (api_version, kind) in [
        ("apps/v1", "SandboxWarmPool"),
        ("extensions.agents.x-k8s.io/v1beta1", "SandboxClaim"),
    ] {
        let mut foreign = member("p");
        let owner = &mut foreign.metadata.owner_references.as_mut().expect("owned")[0];
        owner.api_version = api_version.into();
        owner.kind = kind.into();
        assert!(
            verify_candidate(&foreign, &claim("p"))
                .is_err_and(|e| e.ends_with("is not managed by a warm pool")),
            "{api_version} {kind}"
        );
    }
}

#[test]
fn the_claim_identity_lands_on_the_pod_template_and_created_by_leaves_it() {
    let mut m = member("p");
    m.spec
        .blueprint
        .pod_template
        .metadata
        .labels
        .insert(labels::CREATED_BY.into(), "controller".into());
    let t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    for template in [None, Some(&t)] {
        let adopted = complete(&m, &claim("p"), template).expect("adopts");
        let pod = &adopted.spec.blueprint.pod_template.metadata;
        assert_eq!(
            pod.labels.get(labels::CLAIM_UID).map(String::as_str),
            Some("claim-uid")
        );
        assert!(!pod.labels.contains_key(labels::CREATED_BY));
        assert_eq!(
            pod.labels.get(labels::SANDBOX_TEMPLATE_REF_HASH),
            Some(&name_hash("tpl"))
        );
    }
}

#[test]
fn a_template_safe_to_evict_false_survives_when_the_template_is_known() {
    let m = member_not_safe_to_evict();
    let t = template_with_pod_annotation(annotations::SAFE_TO_EVICT, "false");
    let adopted = complete(&m, &claim("p"), Some(&t)).expect("adopts");
    assert_eq!(
        pod_annotation(&adopted, annotations::SAFE_TO_EVICT).as_deref(),
        Some("false")
    );
}

#[test]
fn a_claim_asking_for_safe_to_evict_keeps_it() {
    let mut c = claim("p");
    c.spec
        .additional_pod_metadata
        .annotations
        .insert(annotations::SAFE_TO_EVICT.into(), "true".into());
    let t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    for template in [None, Some(&t)] {
        let adopted = complete(&member("p"), &c, template).expect("adopts");
        assert_eq!(
            pod_annotation(&adopted, annotations::SAFE_TO_EVICT).as_deref(),
            Some("true")
        );
    }
}

#[test]
fn a_missing_template_ref_hash_is_derived_from_the_template() {
    let mut m = member("p");
    m.metadata
        .labels
        .as_mut()
        .expect("labels")
        .remove(labels::SANDBOX_TEMPLATE_REF_HASH);
    let t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    let adopted = complete(&m, &claim("p"), Some(&t)).expect("adopts");
    assert_eq!(
        adopted
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SANDBOX_TEMPLATE_REF_HASH)),
        Some(&name_hash("tpl"))
    );
    let adopted = complete(&m, &claim("p"), None).expect("adopts");
    assert!(
        !adopted
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(labels::SANDBOX_TEMPLATE_REF_HASH)),
        "nothing to derive it from"
    );
}

#[test]
fn without_the_template_the_existing_pod_metadata_is_kept_and_extended() {
    let mut c = claim("p");
    c.spec
        .additional_pod_metadata
        .labels
        .insert("sandbox.users.io/session".into(), "s".into());
    c.metadata.annotations = Some(BTreeMap::from([(
        annotations::TRACE_CONTEXT.to_owned(),
        "{}".to_owned(),
    )]));
    let adopted = complete(&member("p"), &c, None).expect("adopts");
    let pod = &adopted.spec.blueprint.pod_template.metadata;
    assert_eq!(
        pod.labels.get(labels::WARM_POOL_SANDBOX),
        Some(&name_hash("p")),
        "the fallback does not rebuild the pod metadata"
    );
    assert_eq!(
        pod.labels
            .get("sandbox.users.io/session")
            .map(String::as_str),
        Some("s")
    );
    assert_eq!(
        adopted
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::TRACE_CONTEXT))
            .map(String::as_str),
        Some("{}")
    );
}

#[test]
fn claim_metadata_conflicting_with_the_template_fails_the_adoption() {
    let mut c = claim("p");
    c.spec
        .additional_pod_metadata
        .annotations
        .insert("note".into(), "claim".into());
    let t = template_with_pod_annotation("note", "template");
    assert_eq!(
        complete(&member("p"), &c, Some(&t)),
        Err("metadata override conflict: annotation \"note\" is defined in template with value \"template\", but claim requests \"claim\"".into())
    );
}
