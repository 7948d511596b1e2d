//! TestReconcile: whole passes (controllers.md §2.2–§2.7).

use agent_sandbox_api::keys::{annotations, labels};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, Pod};

use super::world::*;
use crate::sandbox::Action;

#[test]
fn minimal_spec_creates_a_pod_and_reports_it_pending() {
    let mut world = World::new(sandbox());
    let pass = world.pass();
    assert_eq!(
        pass.actions
            .iter()
            .filter(|a| matches!(a, Action::CreatePod(_)))
            .count(),
        1
    );
    let pod = world.pod(NAME).expect("pod created");
    assert_eq!(
        labels_of(&pod.metadata),
        [(labels::SANDBOX_NAME_HASH.to_owned(), hash())].into()
    );
    let owner = &pod.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Sandbox", UID, Some(true))
    );
    assert!(world.services.is_empty(), "no Service unless asked");
    assert_eq!(
        world.status().selector,
        format!("{}={}", labels::SANDBOX_NAME_HASH, hash())
    );
    let types: Vec<_> = world
        .status()
        .conditions
        .iter()
        .map(|c| c.type_.clone())
        .collect();
    assert_eq!(types, ["Suspended", "PodScheduled", "Ready"]);
    assert_eq!(
        world.cond("PodScheduled").map(|c| c.0),
        Some("Unknown".to_owned())
    );
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "DependenciesNotReady".into(),
            "Pod exists with phase: ".into()
        )
    );
    assert!(
        !annotations_of(&world.sandbox().metadata).contains_key(annotations::POD_NAME),
        "the legacy pod-name annotation is not written"
    );
    assert!(pass.outcome.error.is_none());
}

#[test]
fn service_true_creates_a_headless_service_and_reports_its_fqdn() {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    let mut world = World::new(s);
    world.pass();
    let svc = world.service_named(NAME).expect("service created");
    let spec = svc.spec.as_ref().expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(
        spec.selector,
        Some([(labels::SANDBOX_NAME_HASH.to_owned(), hash())].into())
    );
    assert_eq!(
        labels_of(&svc.metadata),
        [(labels::SANDBOX_NAME_HASH.to_owned(), hash())].into()
    );
    assert_eq!(world.status().service, NAME);
    assert_eq!(
        world.status().service_fqdn,
        format!("{NAME}.{NS}.svc.cluster.local")
    );
    assert_eq!(world.ready().2, "Pod exists with phase: ; Service Exists");
}

#[test]
fn custom_cluster_domain_is_used_in_the_fqdn() {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    let mut world = World::new(s);
    world.config.cluster_domain = "corp.example".into();
    world.pass();
    assert_eq!(
        world.status().service_fqdn,
        format!("{NAME}.{NS}.svc.corp.example")
    );
}

#[test]
fn pvc_pod_and_service_are_created_together() {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    let mut template = vct("my-pvc");
    template.metadata.labels.insert("team".into(), "a".into());
    template
        .metadata
        .annotations
        .insert("note".into(), "x".into());
    template.spec = PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        ..Default::default()
    };
    s.spec.blueprint.volume_claim_templates = vec![template];
    s.spec
        .blueprint
        .pod_template
        .metadata
        .labels
        .insert("app".into(), "demo".into());
    s.spec
        .blueprint
        .pod_template
        .metadata
        .annotations
        .insert("note".into(), "y".into());
    let mut world = World::new(s);
    world.pass();
    let pvc = world.pvcs.first().expect("pvc created");
    assert_eq!(pvc.metadata.name.as_deref(), Some("my-pvc-sandbox-name"));
    assert_eq!(
        labels_of(&pvc.metadata),
        [
            ("team".to_owned(), "a".to_owned()),
            (labels::SANDBOX_NAME_HASH.to_owned(), hash())
        ]
        .into()
    );
    assert_eq!(
        annotations_of(&pvc.metadata)
            .get("note")
            .map(String::as_str),
        Some("x")
    );
    assert_eq!(
        pvc.spec.as_ref().and_then(|s| s.access_modes.clone()),
        Some(vec!["ReadWriteOnce".to_owned()])
    );
    assert_eq!(
        pvc.metadata
            .owner_references
            .as_ref()
            .map(|r| r[0].uid.as_str()),
        Some(UID)
    );
    let pod = world.pod(NAME).expect("pod");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .expect("volumes");
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "my-pvc");
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("my-pvc-sandbox-name")
    );
    let pod_annotations = annotations_of(&pod.metadata);
    assert_eq!(
        pod_annotations
            .get(annotations::PROPAGATED_LABELS)
            .map(String::as_str),
        Some("app")
    );
    assert_eq!(
        pod_annotations
            .get(annotations::PROPAGATED_ANNOTATIONS)
            .map(String::as_str),
        Some("note")
    );
    assert!(world.service_named(NAME).is_some());
}

#[test]
fn existing_adoptable_pod_ips_reach_the_status() {
    let pod = with_ip(
        Pod {
            metadata: meta(NAME, None, &[(labels::ADOPTABLE, "true")]),
            ..Default::default()
        },
        "10.1.1.1",
    );
    let mut world = World::new(sandbox()).with_pod(pod);
    world.pass();
    assert_eq!(world.status().pod_ips, vec!["10.1.1.1".to_owned()]);
    assert!(
        world
            .pod(NAME)
            .and_then(|p| p.metadata.owner_references.clone())
            .is_some_and(|r| r[0].uid == UID)
    );
}

#[test]
fn existing_pod_with_only_the_legacy_tracking_label_is_adopted() {
    let pod = with_ip(
        Pod {
            metadata: meta(NAME, None, &[(labels::SANDBOX_NAME_HASH, &hash())]),
            ..Default::default()
        },
        "10.1.1.2",
    );
    let mut world = World::new(sandbox()).with_pod(pod);
    world.pass();
    assert_eq!(world.status().pod_ips, vec!["10.1.1.2".to_owned()]);
}

#[test]
fn existing_ready_pod_without_service_is_ready() {
    let mut world = World::new(sandbox()).with_pod(ready_pod());
    world.pass();
    assert_eq!(
        world.ready(),
        (
            "True".into(),
            "DependenciesReady".into(),
            "Pod is Ready".into()
        )
    );
}

#[test]
fn suspend_with_a_terminating_owned_pod_waits_for_it() {
    let mut s = sandbox();
    s.spec.operating_mode = Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Suspended);
    let mut pod = with_phase(owned_pod(NAME), "Pending");
    pod.metadata.deletion_timestamp = Some(time(1));
    pod.metadata.finalizers = Some(vec!["hold".into()]);
    let mut world = World::new(s).with_pod(pod);
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::DeletePod { .. })),
        "already terminating: no second delete"
    );
    assert!(world.pod(NAME).is_some());
    assert_eq!(
        world.cond("Suspended").map(|c| c.1),
        Some("PodTerminating".to_owned())
    );
    assert_eq!(
        world.cond("PodScheduled").map(|c| c.0),
        Some("Unknown".to_owned())
    );
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "SandboxSuspended".into(),
            "Sandbox is suspending".into()
        )
    );
}

#[test]
fn suspend_with_no_pod_is_suspended() {
    let mut s = sandbox();
    s.spec.operating_mode = Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Suspended);
    let mut world = World::new(s);
    world.pass();
    assert!(world.pods.is_empty());
    assert_eq!(
        world.cond("Suspended").map(|c| (c.0, c.1)),
        Some(("True".to_owned(), "PodTerminated".to_owned()))
    );
    assert_eq!(world.ready().2, "Sandbox is suspended");
}

#[test]
fn suspend_then_resume_recreates_the_pod_with_the_same_pvcs() {
    let mut s = sandbox();
    s.spec.blueprint.volume_claim_templates = vec![vct("data")];
    let mut world = World::new(s);
    world.pass();
    let first_uid = world.pod(NAME).and_then(|p| p.metadata.uid.clone());
    world.sandbox.as_mut().expect("exists").spec.operating_mode =
        Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Suspended);
    world.pass();
    assert!(world.pod(NAME).is_none(), "pod deleted on suspend");
    assert_eq!(world.pvcs.len(), 1, "PVC kept");
    world.pass();
    assert_eq!(
        world.cond("Suspended").map(|c| c.1),
        Some("PodTerminated".to_owned())
    );
    world.sandbox.as_mut().expect("exists").spec.operating_mode =
        Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Running);
    world.pass();
    let pod = world.pod(NAME).expect("recreated");
    assert!(first_uid.is_some());
    let claim = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v[0].persistent_volume_claim.clone());
    assert_eq!(
        claim.map(|c| c.claim_name),
        Some("data-sandbox-name".to_owned())
    );
    assert_eq!(world.pvcs.len(), 1, "same PVC, no new one");
    assert_eq!(
        world.cond("Suspended").map(|c| c.1),
        Some("NotSuspended".to_owned())
    );
}

#[test]
fn conditions_do_not_accumulate() {
    let mut world = World::new(sandbox()).with_pod(ready_pod());
    for _ in 0..20 {
        world.pass();
    }
    assert_eq!(
        world.status().conditions.len(),
        3,
        "{:?}",
        world.status().conditions
    );
}

#[test]
fn a_converged_sandbox_writes_nothing() {
    let mut world = World::new(sandbox()).with_pod(ready_pod());
    world.pass();
    world.pass();
    let writes = world.writes;
    let pass = world.pass();
    assert!(pass.actions.is_empty(), "{:?}", pass.actions);
    assert!(pass.outcome.status_patch.is_none());
    assert_eq!(world.writes, writes);
}

#[test]
fn node_name_only_changes_wait_for_readiness() {
    let pending = on_node(with_phase(owned_pod(NAME), "Pending"), "node-a");
    let mut world = World::new(sandbox()).with_pod(with_phase(owned_pod(NAME), "Pending"));
    world.pass();
    world.pods = vec![pending];
    let pass = world.pass();
    assert!(
        pass.outcome.status_patch.is_none(),
        "nodeName alone is not written while not Ready"
    );
    assert_eq!(world.status().node_name, "");
    world.pods = vec![on_node(ready_pod(), "node-a")];
    world.pass();
    assert_eq!(
        world.status().node_name,
        "node-a",
        "written together with Ready"
    );
    world.pods = vec![on_node(ready_pod(), "node-b")];
    let pass = world.pass();
    assert!(
        pass.outcome.status_patch.is_some(),
        "on a Ready sandbox node changes are written at once"
    );
    assert_eq!(world.status().node_name, "node-b");
}

#[test]
fn a_deleting_sandbox_is_left_alone() {
    let mut s = sandbox();
    s.metadata.deletion_timestamp = Some(time(1));
    let mut world = World::new(s);
    let pass = world.pass();
    assert!(pass.actions.is_empty());
    assert_eq!(pass.outcome, Default::default());
}

#[test]
fn pod_lookup_failure_keeps_pod_scheduled_unknown_and_errors() {
    let mut world = World::new(sandbox());
    world.pod_lookup_error = Some("timeout".into());
    let pass = world.pass();
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some("pod get failed: timeout")
    );
    assert_eq!(
        world.cond("PodScheduled").map(|c| c.0),
        Some("Unknown".to_owned())
    );
    assert_eq!(world.ready().1, "ReconcilerError");
}

#[test]
fn suspended_condition_is_unknown_when_pod_lookup_fails() {
    let mut s = sandbox();
    s.spec.operating_mode = Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Suspended);
    let mut world = World::new(s);
    world.pod_lookup_error = Some("timeout".into());
    world.pass();
    assert_eq!(
        world.cond("Suspended").map(|c| (c.0, c.1)),
        Some(("Unknown".into(), "PodStateUnknown".into()))
    );
}

#[test]
fn a_failed_pod_create_is_reported_and_retried() {
    let mut world = World::new(sandbox());
    let pass =
        world.pass_with(|a| matches!(a, Action::CreatePod(_)).then(|| "quota exceeded".to_owned()));
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some("failed to create pod: quota exceeded")
    );
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "ReconcilerError".into(),
            "Error seen: failed to create pod: quota exceeded".into()
        )
    );
    assert!(world.status().pod_ips.is_empty());
    world.pass();
    assert!(world.pod(NAME).is_some(), "the next pass creates it");
}

#[test]
fn tracing_normalisation_of_created_by() {
    use crate::sandbox::normalise_created_by;
    assert_eq!(normalise_created_by("go-client"), "go-client");
    assert_eq!(normalise_created_by("python-client"), "python-client");
    assert_eq!(normalise_created_by("controller"), "controller");
    assert_eq!(normalise_created_by("my-script"), "unknown");
}

#[test]
fn an_invalid_spec_is_reported_once_and_not_retried() {
    let mut s = sandbox();
    s.spec.blueprint.pod_template.spec.containers.clear();
    let mut world = World::new(s);
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreatePod(_))),
        "{:?}",
        pass.actions
    );
    assert!(
        pass.outcome.error.is_none(),
        "only a spec change can fix it: no retry storm"
    );
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "InvalidConfiguration".into(),
            "invalid spec: spec.podTemplate: spec.containers must list at least one container"
                .into()
        )
    );
    assert_eq!(pass.outcome.events.len(), 1);
    assert_eq!(
        (pass.outcome.events[0].type_, pass.outcome.events[0].reason),
        (crate::events::EventType::Warning, "InvalidConfiguration")
    );
    assert!(world.pass().outcome.events.is_empty(), "reported once");
    // Fixing the spec (a new generation) lets the Sandbox proceed.
    let fixed = world.sandbox.as_mut().expect("exists");
    fixed.spec = sandbox().spec;
    fixed.metadata.generation = Some(2);
    world.pass();
    assert!(world.pod(NAME).is_some());
}

#[test]
fn an_invalid_spec_leaves_a_running_pod_alone() {
    let mut s = sandbox();
    s.spec.blueprint.volume_claim_templates = vec![vct("data"), vct("data")];
    let mut world = World::new(s).with_pod(ready_pod());
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::DeletePod { .. } | Action::CreatePvc(_)))
    );
    assert!(world.pod(NAME).is_some());
    assert_eq!(world.status().pod_ips, vec!["10.0.0.7".to_owned()]);
    assert!(
        world.ready().2.contains("is used more than once"),
        "{}",
        world.ready().2
    );
}

#[test]
fn a_service_name_longer_than_63_characters_is_an_invalid_configuration_reported_once() {
    let mut s = sandbox();
    s.metadata.name = Some("s".repeat(64));
    s.spec.blueprint.service = Some(true);
    let mut world = World::new(s);
    let pass = world.pass();
    assert!(
        pass.actions.is_empty(),
        "nothing is created: {:?}",
        pass.actions
    );
    assert!(pass.outcome.error.is_none(), "not retried");
    let (status, reason, message) = world.ready();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidConfiguration")
    );
    assert!(
        message.contains("metadata.name") && message.contains("64 characters long, more than 63"),
        "{message}"
    );
    assert_eq!(pass.outcome.events.len(), 1);
    assert_eq!(pass.outcome.events[0].reason, "InvalidConfiguration");
    let again = world.pass();
    assert!(again.outcome.events.is_empty() && again.outcome.status_patch.is_none());
}

#[test]
fn a_create_the_api_server_rejects_as_invalid_is_not_sent_again_until_the_spec_changes() {
    let rejection = "Pod \"sandbox-name\" is invalid: spec.containers[0].image: Required value";
    let mut world = World::new(sandbox());
    let pass = world.pass_failing(|action| {
        matches!(action, Action::CreatePod(_)).then(|| (rejection.to_owned(), true))
    });
    assert!(pass.outcome.error.is_none(), "not retried");
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "InvalidConfiguration".into(),
            format!("failed to create pod: {rejection}")
        )
    );
    assert_eq!(pass.outcome.events.len(), 1);
    assert_eq!(pass.outcome.events[0].reason, "InvalidConfiguration");
    // The status write wakes the Sandbox again: the same generation sends nothing.
    let again = world.pass();
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert!(again.outcome.events.is_empty() && again.outcome.status_patch.is_none());
    // A spec change is tried again.
    let sandbox = world.sandbox.as_mut().expect("exists");
    sandbox.metadata.generation = Some(sandbox.metadata.generation.unwrap_or_default() + 1);
    world.pass();
    assert!(world.pod(NAME).is_some());
    assert_eq!(world.ready().1, "DependenciesNotReady");
}

#[test]
fn a_create_refused_for_another_reason_is_retried_as_a_reconciler_error() {
    let mut world = World::new(sandbox());
    let pass = world.pass_failing(|action| {
        matches!(action, Action::CreatePod(_)).then(|| ("exceeded quota".to_owned(), false))
    });
    assert!(pass.outcome.error.is_some(), "retried");
    assert_eq!(world.ready().1, "ReconcilerError");
    world.pass();
    assert!(world.pod(NAME).is_some());
}
