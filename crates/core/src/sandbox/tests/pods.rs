//! TestReconcilePod and the standalone Pod tests (controllers.md §2.8–§2.10).

use std::collections::BTreeMap;

use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxOperatingMode};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::world::*;
use crate::events::EventType;
use crate::sandbox::Action;

fn annotate(mut s: Sandbox, key: &str, value: &str) -> Sandbox {
    s.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    s
}

fn label(mut s: Sandbox, key: &str, value: &str) -> Sandbox {
    s.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    s
}

fn owned_by_extension(mut s: Sandbox, kind: &str) -> Sandbox {
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "extensions.agents.x-k8s.io/v1alpha1".into(),
        kind: kind.into(),
        name: "owner".into(),
        uid: "owner-uid".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    s
}

fn suspended(mut s: Sandbox) -> Sandbox {
    s.spec.operating_mode = Some(SandboxOperatingMode::Suspended);
    s
}

fn with_template_metadata(
    mut s: Sandbox,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Sandbox {
    let metadata = &mut s.spec.blueprint.pod_template.metadata;
    metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    metadata.annotations = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s
}

/// The legacy pod-name annotation of the Sandbox (never written by the controller).
fn pod_annotation(world: &World) -> Option<String> {
    annotations_of(&world.sandbox().metadata)
        .get(annotations::POD_NAME)
        .cloned()
}

fn pod_labels(world: &World, name: &str) -> BTreeMap<String, String> {
    labels_of(&world.pod(name).expect("pod exists").metadata)
}

#[test]
fn existing_adoptable_unowned_pod_is_adopted_with_template_metadata() {
    let s = with_template_metadata(sandbox(), &[("app", "demo")], &[("note", "n")]);
    let pod = Pod {
        metadata: meta(NAME, None, &[(labels::ADOPTABLE, "true")]),
        ..Default::default()
    };
    let mut world = World::new(s).with_pod(pod);
    world.pass();
    let pod = world.pod(NAME).expect("pod");
    let l = labels_of(&pod.metadata);
    assert_eq!(l.get(labels::SANDBOX_NAME_HASH), Some(&hash()));
    assert_eq!(l.get("app").map(String::as_str), Some("demo"));
    let a = annotations_of(&pod.metadata);
    assert_eq!(a.get("note").map(String::as_str), Some("n"));
    assert_eq!(
        a.get(annotations::PROPAGATED_LABELS).map(String::as_str),
        Some("app")
    );
    assert_eq!(
        a.get(annotations::PROPAGATED_ANNOTATIONS)
            .map(String::as_str),
        Some("note")
    );
    assert_eq!(
        pod.metadata
            .owner_references
            .as_ref()
            .map(|r| r[0].uid.as_str()),
        Some(UID)
    );
    assert_eq!(pod_annotation(&world), None, "not written");
}

#[test]
fn unowned_pod_with_correct_metadata_still_gets_its_owner_reference() {
    let pod = Pod {
        metadata: meta(NAME, None, &[(labels::SANDBOX_NAME_HASH, &hash())]),
        ..Default::default()
    };
    let mut world = World::new(sandbox()).with_pod(pod);
    let pass = world.pass();
    let patch = pass.actions.iter().find_map(|a| match a {
        Action::PatchPod { patch, .. } => Some(patch.clone()),
        _ => None,
    });
    assert!(patch.is_some_and(|p| p["metadata"]["ownerReferences"][0]["uid"] == UID));
}

#[test]
fn no_pod_creates_one_with_template_metadata_and_tracking_annotations() {
    let s = with_template_metadata(sandbox(), &[("b", "2"), ("a", "1")], &[("x", "y")]);
    let mut world = World::new(s);
    world.pass();
    let pod = world.pod(NAME).expect("created");
    let a = annotations_of(&pod.metadata);
    assert_eq!(
        a.get(annotations::PROPAGATED_LABELS).map(String::as_str),
        Some("a,b"),
        "sorted, comma-joined"
    );
    assert_eq!(
        a.get(annotations::PROPAGATED_ANNOTATIONS)
            .map(String::as_str),
        Some("x")
    );
    assert_eq!(pod_annotation(&world), None, "not written");
}

#[test]
fn system_keys_in_the_template_are_dropped_and_the_controller_wins() {
    let s = with_template_metadata(
        sandbox(),
        &[
            (labels::SANDBOX_NAME_HASH, "forged"),
            ("extensions.agents.x-k8s.io/x", "1"),
            ("ok", "1"),
        ],
        &[
            (annotations::POD_NAME, "forged"),
            (annotations::TRACE_CONTEXT, "{}"),
            ("fine", "1"),
        ],
    );
    let mut world = World::new(s);
    world.pass();
    let pod = world.pod(NAME).expect("created");
    let l = labels_of(&pod.metadata);
    assert_eq!(l.get(labels::SANDBOX_NAME_HASH), Some(&hash()));
    assert!(!l.contains_key("extensions.agents.x-k8s.io/x"));
    let a = annotations_of(&pod.metadata);
    assert!(!a.contains_key(annotations::POD_NAME) && !a.contains_key(annotations::TRACE_CONTEXT));
    assert_eq!(
        a.get(annotations::PROPAGATED_LABELS).map(String::as_str),
        Some("ok")
    );
    assert_eq!(
        a.get(annotations::PROPAGATED_ANNOTATIONS)
            .map(String::as_str),
        Some("fine")
    );
}

#[test]
fn system_keys_recorded_by_an_older_controller_are_scrubbed() {
    let mut pod = owned_pod(NAME);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::CLAIM_UID.into(), "c".into());
    pod.metadata.annotations = Some(BTreeMap::from([
        (
            annotations::PROPAGATED_LABELS.to_owned(),
            format!("{},{}", labels::CLAIM_UID, labels::SANDBOX_NAME_HASH),
        ),
        (
            annotations::PROPAGATED_ANNOTATIONS.to_owned(),
            annotations::TRACE_CONTEXT.to_owned(),
        ),
        (annotations::TRACE_CONTEXT.to_owned(), "{}".to_owned()),
    ]));
    let mut world = World::new(sandbox()).with_pod(pod);
    world.pass();
    let l = pod_labels(&world, NAME);
    assert!(!l.contains_key(labels::CLAIM_UID));
    assert_eq!(
        l.get(labels::SANDBOX_NAME_HASH),
        Some(&hash()),
        "the tracking label is never scrubbed"
    );
    let a = annotations_of(&world.pod(NAME).expect("pod").metadata);
    assert!(!a.contains_key(annotations::TRACE_CONTEXT));
    assert_eq!(
        a.get(annotations::PROPAGATED_LABELS).map(String::as_str),
        Some("")
    );
    assert_eq!(
        a.get(annotations::PROPAGATED_ANNOTATIONS)
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn extension_labels_on_a_sandbox_without_an_extension_owner_are_not_propagated() {
    let s = label(
        label(sandbox(), labels::WARM_POOL_SANDBOX, "p"),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "t",
    );
    let mut world = World::new(s);
    world.pass();
    let l = pod_labels(&world, NAME);
    assert!(
        !l.contains_key(labels::WARM_POOL_SANDBOX)
            && !l.contains_key(labels::SANDBOX_TEMPLATE_REF_HASH)
    );
}

#[test]
fn system_labels_inside_the_pod_template_are_not_propagated() {
    let s = with_template_metadata(
        owned_by_extension(sandbox(), "SandboxWarmPool"),
        &[(labels::WARM_POOL_SANDBOX, "p")],
        &[],
    );
    let mut world = World::new(s);
    world.pass();
    assert!(
        !pod_labels(&world, NAME).contains_key(labels::WARM_POOL_SANDBOX),
        "only the Sandbox's own labels count"
    );
}

#[test]
fn pool_owned_sandbox_pods_carry_the_warm_pool_and_template_labels() {
    let s = owned_by_extension(sandbox(), "SandboxWarmPool");
    let s = label(
        label(s, labels::WARM_POOL_SANDBOX, "pool-hash"),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "tpl-hash",
    );
    let mut world = World::new(s);
    world.pass();
    let l = pod_labels(&world, NAME);
    assert_eq!(
        l.get(labels::WARM_POOL_SANDBOX).map(String::as_str),
        Some("pool-hash")
    );
    assert_eq!(
        l.get(labels::SANDBOX_TEMPLATE_REF_HASH).map(String::as_str),
        Some("tpl-hash")
    );
}

#[test]
fn claim_owned_sandbox_pods_get_the_template_label_but_not_the_pool_label() {
    let s = owned_by_extension(sandbox(), "SandboxClaim");
    let s = label(
        label(s, labels::WARM_POOL_SANDBOX, "pool-hash"),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "tpl-hash",
    );
    let mut world = World::new(s);
    world.pass();
    let l = pod_labels(&world, NAME);
    assert!(!l.contains_key(labels::WARM_POOL_SANDBOX));
    assert_eq!(
        l.get(labels::SANDBOX_TEMPLATE_REF_HASH).map(String::as_str),
        Some("tpl-hash")
    );
}

#[test]
fn the_pod_of_a_claims_sandbox_carries_the_claim_uid() {
    let s = label(
        owned_by_extension(sandbox(), "SandboxClaim"),
        labels::CLAIM_UID,
        "claim-uid",
    );
    let mut world = World::new(s);
    world.pass();
    assert_eq!(
        pod_labels(&world, NAME)
            .get(labels::CLAIM_UID)
            .map(String::as_str),
        Some("claim-uid")
    );
}

#[test]
fn a_warm_pod_gains_the_claim_uid_when_a_claim_adopts_its_sandbox_and_loses_it_after() {
    let pool_owned = owned_by_extension(sandbox(), "SandboxWarmPool");
    let mut world = World::new(pool_owned);
    world.pass();
    assert!(!pod_labels(&world, NAME).contains_key(labels::CLAIM_UID));
    let claimed = label(
        owned_by_extension(world.sandbox().clone(), "SandboxClaim"),
        labels::CLAIM_UID,
        "claim-uid",
    );
    world.sandbox = Some(claimed);
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreatePod(_) | Action::DeletePod { .. })),
        "the warm Pod is kept"
    );
    assert_eq!(
        pod_labels(&world, NAME)
            .get(labels::CLAIM_UID)
            .map(String::as_str),
        Some("claim-uid")
    );
    let mut released = world.sandbox().clone();
    released.metadata.owner_references = None;
    world.sandbox = Some(released);
    world.pass();
    assert!(!pod_labels(&world, NAME).contains_key(labels::CLAIM_UID));
}

#[test]
fn adoption_by_a_claim_moves_the_pod_labels_along() {
    let pool_owned = label(
        label(
            owned_by_extension(sandbox(), "SandboxWarmPool"),
            labels::WARM_POOL_SANDBOX,
            "pool-hash",
        ),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "tpl-hash",
    );
    let mut world = World::new(pool_owned);
    world.pass();
    assert!(pod_labels(&world, NAME).contains_key(labels::WARM_POOL_SANDBOX));
    // The claim takes over: pool label gone from the Sandbox, controller is now the claim.
    let mut claimed = owned_by_extension(world.sandbox().clone(), "SandboxClaim");
    claimed
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .remove(labels::WARM_POOL_SANDBOX);
    world.sandbox = Some(claimed);
    world.pass();
    let l = pod_labels(&world, NAME);
    assert!(
        !l.contains_key(labels::WARM_POOL_SANDBOX),
        "warm-pool label removed from the pod"
    );
    assert_eq!(
        l.get(labels::SANDBOX_TEMPLATE_REF_HASH).map(String::as_str),
        Some("tpl-hash")
    );
    // No longer extension-owned at all: the template label goes too.
    let mut plain = world.sandbox().clone();
    plain.metadata.owner_references = None;
    world.sandbox = Some(plain);
    world.pass();
    assert!(!pod_labels(&world, NAME).contains_key(labels::SANDBOX_TEMPLATE_REF_HASH));
}

#[test]
fn existing_pod_of_a_pool_owned_sandbox_gains_the_labels() {
    let s = owned_by_extension(sandbox(), "SandboxWarmPool");
    let s = label(
        label(s, labels::WARM_POOL_SANDBOX, "p"),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "t",
    );
    let mut world = World::new(s).with_pod(owned_pod(NAME));
    world.pass();
    let l = pod_labels(&world, NAME);
    assert_eq!(
        (
            l.get(labels::WARM_POOL_SANDBOX).map(String::as_str),
            l.get(labels::SANDBOX_TEMPLATE_REF_HASH).map(String::as_str)
        ),
        (Some("p"), Some("t"))
    );
}

#[test]
fn template_label_removed_from_an_extension_owned_sandbox_is_removed_from_the_pod() {
    let s = label(
        owned_by_extension(sandbox(), "SandboxClaim"),
        labels::SANDBOX_TEMPLATE_REF_HASH,
        "t",
    );
    let mut world = World::new(s);
    world.pass();
    world.sandbox.as_mut().expect("exists").metadata.labels = None;
    world.pass();
    assert!(!pod_labels(&world, NAME).contains_key(labels::SANDBOX_TEMPLATE_REF_HASH));
}

#[test]
fn suspended_owned_pod_is_deleted() {
    let mut world = World::new(suspended(sandbox())).with_pod(owned_pod(NAME));
    let pass = world.pass();
    assert!(pass.actions.iter().any(|a| matches!(a, Action::DeletePod { name, uid } if name == NAME && uid == "sandbox-name-uid")));
    assert!(world.pod(NAME).is_none());
}

#[test]
fn suspended_without_a_pod_does_nothing() {
    let mut world = World::new(suspended(sandbox()));
    let pass = world.pass();
    assert!(pass.actions.is_empty());
    assert!(pass.outcome.error.is_none());
}

#[test]
fn a_legacy_pod_name_annotation_is_neither_followed_nor_changed() {
    let s = annotate(sandbox(), annotations::POD_NAME, "warm-pod");
    let pod = Pod {
        metadata: meta("warm-pod", None, &[(labels::ADOPTABLE, "true")]),
        ..Default::default()
    };
    let mut world = World::new(s).with_pod(pod);
    let pass = world.pass();
    assert!(
        world
            .pod("warm-pod")
            .is_some_and(|p| p.metadata.owner_references.is_none()),
        "the Pod the annotation names is not adopted"
    );
    assert!(
        world.pod(NAME).is_some(),
        "the Pod is named like the Sandbox"
    );
    assert_eq!(pod_annotation(&world).as_deref(), Some("warm-pod"), "kept");
    assert!(pass.outcome.error.is_none());
}

#[test]
fn running_with_a_pod_owned_by_another_controller_errors_and_leaves_it() {
    let foreign = Pod {
        metadata: meta(NAME, Some("deploy-uid"), &[]),
        ..Default::default()
    };
    let mut world = World::new(sandbox()).with_pod(foreign.clone());
    let pass = world.pass();
    assert!(pass.actions.is_empty(), "{:?}", pass.actions);
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some(
            "pod \"sandbox-name\" is owned by Deployment/deployment-owner (UID: deploy-uid), not by sandbox \"sandbox-name\""
        )
    );
    assert_eq!(world.pod(NAME), Some(&foreign));
}

#[test]
fn suspended_with_an_annotated_foreign_pod_leaves_the_pod_and_the_annotation() {
    let s = annotate(
        annotate(suspended(sandbox()), annotations::POD_NAME, "other"),
        "keep",
        "me",
    );
    let mut world = World::new(s).with_pod(Pod {
        metadata: meta("other", Some("deploy-uid"), &[]),
        ..Default::default()
    });
    let pass = world.pass();
    assert!(pass.actions.is_empty(), "{:?}", pass.actions);
    assert!(world.pod("other").is_some());
    let a = annotations_of(&world.sandbox().metadata);
    assert_eq!(
        a.get(annotations::POD_NAME).map(String::as_str),
        Some("other")
    );
    assert_eq!(a.get("keep").map(String::as_str), Some("me"));
    assert_eq!(
        world.cond("Suspended").map(|c| c.1),
        Some("PodTerminated".into())
    );
}

#[test]
fn suspended_with_an_annotated_unowned_pod_leaves_the_pod_and_the_annotation() {
    let s = annotate(suspended(sandbox()), annotations::POD_NAME, "stray");
    let mut world = World::new(s).with_pod(Pod {
        metadata: meta("stray", None, &[]),
        ..Default::default()
    });
    let pass = world.pass();
    assert!(pass.actions.is_empty(), "{:?}", pass.actions);
    assert!(world.pod("stray").is_some());
    assert_eq!(pod_annotation(&world).as_deref(), Some("stray"));
}

#[test]
fn suspended_with_an_owned_pod_of_another_name_deletes_it_and_keeps_the_annotation() {
    let s = annotate(suspended(sandbox()), annotations::POD_NAME, "warm-pod");
    let mut world = World::new(s).with_pod(owned_pod("warm-pod"));
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .any(|a| matches!(a, Action::DeletePod { name, .. } if name == "warm-pod"))
    );
    assert_eq!(pod_annotation(&world).as_deref(), Some("warm-pod"));
}

#[test]
fn running_with_an_annotated_foreign_pod_creates_its_own_and_leaves_the_other() {
    let s = annotate(sandbox(), annotations::POD_NAME, "other");
    let foreign = Pod {
        metadata: meta("other", Some("deploy-uid"), &[]),
        ..Default::default()
    };
    let mut world = World::new(s).with_pod(foreign.clone());
    let pass = world.pass();
    assert!(pass.outcome.error.is_none());
    assert_eq!(world.pod("other"), Some(&foreign), "untouched");
    assert!(world.pod(NAME).is_some());
    assert_eq!(pod_annotation(&world).as_deref(), Some("other"));
}

#[test]
fn labels_and_annotations_removed_from_the_template_leave_the_pod() {
    let s = with_template_metadata(
        sandbox(),
        &[("a", "1"), ("b", "2")],
        &[("x", "1"), ("y", "2")],
    );
    let mut world = World::new(s);
    world.pass();
    // A key added by someone else (a mutating webhook) is never removed.
    world.pods[0]
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("webhook".into(), "w".into());
    let s = with_template_metadata(world.sandbox().clone(), &[("a", "1")], &[("x", "1")]);
    world.sandbox = Some(s);
    world.pass();
    let pod = world.pod(NAME).expect("pod");
    let l = labels_of(&pod.metadata);
    assert!(l.contains_key("a") && !l.contains_key("b") && l.contains_key("webhook"));
    let a = annotations_of(&pod.metadata);
    assert!(a.contains_key("x") && !a.contains_key("y"));
    assert_eq!(
        a.get(annotations::PROPAGATED_LABELS).map(String::as_str),
        Some("a")
    );
}

#[test]
fn an_unowned_pod_without_adoption_labels_is_refused() {
    let mut world = World::new(sandbox()).with_pod(Pod {
        metadata: meta(NAME, None, &[]),
        ..Default::default()
    });
    let pass = world.pass();
    let error = pass.outcome.error.expect("refused");
    assert!(
        error.starts_with("cannot adopt unowned pod \"sandbox-name\""),
        "{error}"
    );
    assert!(
        world
            .pod(NAME)
            .is_some_and(|p| p.metadata.owner_references.is_none())
    );
}

#[test]
fn created_by_is_normalised_updated_and_removed() {
    let mut world = World::new(label(sandbox(), labels::CREATED_BY, "go-client"));
    world.pass();
    assert_eq!(
        pod_labels(&world, NAME)
            .get(labels::CREATED_BY)
            .map(String::as_str),
        Some("go-client")
    );
    world.sandbox = Some(label(
        world.sandbox().clone(),
        labels::CREATED_BY,
        "my-script",
    ));
    world.pass();
    assert_eq!(
        pod_labels(&world, NAME)
            .get(labels::CREATED_BY)
            .map(String::as_str),
        Some("unknown")
    );
    world.sandbox.as_mut().expect("exists").metadata.labels = None;
    world.pass();
    assert!(!pod_labels(&world, NAME).contains_key(labels::CREATED_BY));
}

#[test]
fn an_owned_pod_of_another_name_stays_in_use_and_no_second_pod_is_created() {
    let s = annotate(sandbox(), annotations::POD_NAME, "gone");
    let mut world = World::new(s).with_pod(owned_pod("survivor"));
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreatePod(_)))
    );
    assert!(world.pod("survivor").is_some());
    assert_eq!(
        pod_annotation(&world).as_deref(),
        Some("gone"),
        "not repaired"
    );
}

#[test]
fn an_owned_pod_of_another_name_beats_an_adoptable_pod_named_like_the_sandbox() {
    let adoptable = Pod {
        metadata: meta(NAME, None, &[(labels::ADOPTABLE, "true")]),
        ..Default::default()
    };
    let mut world = World::new(sandbox())
        .with_pod(adoptable)
        .with_pod(owned_pod("survivor"));
    world.pass();
    assert!(
        world
            .pod(NAME)
            .is_some_and(|p| p.metadata.owner_references.is_none()),
        "not adopted beside the owned Pod"
    );
}

#[test]
fn two_owned_pods_freeze_the_sandbox_with_one_event() {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    let mut world = World::new(s)
        .with_pod(with_ip(owned_pod(NAME), "10.0.0.1"))
        .with_pod(owned_pod("twin"));
    let pass = world.pass();
    assert!(
        pass.actions.is_empty(),
        "nothing created, deleted or adopted: {:?}",
        pass.actions
    );
    assert!(pass.outcome.error.is_none(), "a steady state, not retried");
    let (status, reason, message) = world.ready();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "MultiplePods")
    );
    assert!(message.starts_with("multiple Pods (2)"), "{message}");
    assert!(world.status().pod_ips.is_empty() && world.status().node_name.is_empty());
    assert!(world.services.is_empty(), "no Service while frozen");
    assert_eq!(pass.outcome.events.len(), 1);
    assert_eq!(
        (pass.outcome.events[0].type_, pass.outcome.events[0].reason),
        (EventType::Warning, "MultiplePods")
    );
    let again = world.pass();
    assert!(again.outcome.events.is_empty(), "no duplicate event");
}

#[test]
fn only_pods_controlled_by_this_uid_count_as_owned() {
    let mut old_incarnation = owned_pod("old");
    old_incarnation.metadata.owner_references =
        Some(vec![owner("previous-sandbox-uid", "Sandbox")]);
    let mut world = World::new(sandbox())
        .with_pod(old_incarnation)
        .with_pod(owned_pod(NAME));
    let pass = world.pass();
    assert!(pass.outcome.events.is_empty() && pass.outcome.error.is_none());
    assert!(world.pod("old").is_some());
}

#[test]
fn a_terminating_owned_pod_blocks_a_replacement() {
    let mut pod = owned_pod(NAME);
    pod.metadata.deletion_timestamp = Some(time(1));
    let mut world = World::new(sandbox()).with_pod(pod);
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreatePod(_) | Action::DeletePod { .. }))
    );
}

#[test]
fn new_pods_get_a_stable_hostname_and_the_service_as_subdomain() {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    let mut world = World::new(s);
    world.pass();
    let spec = world.pod(NAME).and_then(|p| p.spec.clone()).expect("spec");
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some(NAME), Some(NAME))
    );
    let mut s = sandbox();
    s.spec.blueprint.pod_template.spec.hostname = Some("custom".into());
    let mut world = World::new(s);
    world.pass();
    let spec = world.pod(NAME).and_then(|p| p.spec.clone()).expect("spec");
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain),
        (Some("custom"), None),
        "the template wins; no Service, no subdomain"
    );
}

#[test]
fn pvc_volumes_replace_same_named_template_volumes() {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume};
    let mut s = sandbox();
    s.spec.blueprint.pod_template.spec.volumes = Some(vec![
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ]);
    s.spec.blueprint.volume_claim_templates = vec![vct("data"), vct("cache")];
    let mut world = World::new(s);
    world.pass();
    let volumes = world
        .pod(NAME)
        .and_then(|p| p.spec.clone())
        .and_then(|s| s.volumes)
        .expect("volumes");
    let names: Vec<_> = volumes
        .iter()
        .map(|v| (v.name.as_str(), v.persistent_volume_claim.is_some()))
        .collect();
    assert_eq!(names, [("scratch", false), ("data", true), ("cache", true)]);
}
