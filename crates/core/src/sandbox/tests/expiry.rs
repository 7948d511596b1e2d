//! Expiry: the two-pass teardown of controllers.md §2.2 step 7 and §2.5.

use std::time::Duration;

use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1beta1::{Sandbox, ShutdownPolicy};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::world::*;
use crate::sandbox::Action;

fn expiring(policy: Option<ShutdownPolicy>) -> Sandbox {
    let mut s = sandbox();
    s.spec.blueprint.service = Some(true);
    s.spec.lifecycle.shutdown_time = Some(Time(now()));
    s.spec.lifecycle.shutdown_policy = policy;
    s
}

/// A world whose Sandbox was running (pod + service) before it expired.
fn expired_world(policy: Option<ShutdownPolicy>) -> World {
    let mut s = expiring(policy);
    s.spec.lifecycle.shutdown_time = None;
    let mut world = World::new(s).with_pod(ready_pod());
    world.pass();
    world.sandbox.as_mut().expect("exists").spec.lifecycle = expiring(policy).spec.lifecycle;
    world
}

#[test]
fn pending_expiry_requeues_at_the_deadline_with_a_two_second_floor() {
    let mut s = sandbox();
    s.spec.lifecycle.shutdown_time = Some(Time(now() + Duration::from_secs(3600)));
    let mut world = World::new(s);
    assert_eq!(
        world.pass().outcome.requeue_after,
        Some(Duration::from_secs(3600))
    );
    let mut s = sandbox();
    s.spec.lifecycle.shutdown_time = Some(Time(now() + Duration::from_millis(500)));
    let mut world = World::new(s);
    assert_eq!(
        world.pass().outcome.requeue_after,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn expired_retain_two_passes_delete_pod_and_service_and_keep_conditions_only() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    assert!(world.service_named(NAME).is_some());
    let first = world.pass();
    assert!(
        first.actions.is_empty(),
        "pass 1 only persists the expired state"
    );
    assert_eq!(first.outcome.requeue_after, Some(Duration::from_millis(1)));
    assert!(world.pod(NAME).is_some() && world.service_named(NAME).is_some());
    assert_eq!(
        world.ready(),
        (
            "False".into(),
            "SandboxExpired".into(),
            "Sandbox has expired".into()
        )
    );
    assert!(
        world.cond("PodScheduled").is_none(),
        "PodScheduled removed in pass 1"
    );

    let second = world.pass();
    assert_eq!(second.outcome.requeue_after, None);
    assert!(world.pod(NAME).is_none() && world.service_named(NAME).is_none());
    let status = world.status();
    assert!(status.pod_ips.is_empty() && status.selector.is_empty() && status.service.is_empty());
    assert!(status.service_fqdn.is_empty() && status.node_name.is_empty());
    assert_eq!(world.ready().1, "SandboxExpired");
    assert!(world.sandbox.is_some(), "Retain keeps the Sandbox");
}

#[test]
fn expired_with_nil_policy_behaves_as_retain() {
    let mut world = expired_world(None);
    world.pass();
    world.pass();
    assert!(world.sandbox.is_some() && world.pods.is_empty());
}

#[test]
fn expired_delete_removes_pod_service_and_the_sandbox() {
    let mut world = expired_world(Some(ShutdownPolicy::Delete));
    world.pass();
    let second = world.pass();
    assert!(
        second.outcome.status_patch.is_none(),
        "no status write for a deleted sandbox"
    );
    assert!(world.sandbox.is_none() && world.pods.is_empty() && world.services.is_empty());
}

#[test]
fn expired_retain_deletes_an_owned_pod_of_another_name() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    world.pods = vec![owned_pod("pool-abcde")];
    world
        .sandbox
        .as_mut()
        .expect("exists")
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(annotations::POD_NAME.into(), "pool-abcde".into());
    world.pass();
    world.pass();
    assert!(world.pod("pool-abcde").is_none());
}

#[test]
fn expired_leaves_a_pod_owned_by_a_deployment() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    world.pods = vec![Pod {
        metadata: meta(NAME, Some("deploy-uid"), &[]),
        ..Default::default()
    }];
    world.pass();
    world.pass();
    assert!(world.pod(NAME).is_some(), "foreign pod survives");
    assert!(world.service_named(NAME).is_none(), "owned service deleted");
}

#[test]
fn expired_leaves_an_unowned_pod() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    world.pods = vec![Pod {
        metadata: meta(NAME, None, &[]),
        ..Default::default()
    }];
    world.pass();
    world.pass();
    assert!(world.pod(NAME).is_some());
}

#[test]
fn expired_without_children_only_reports_expiry() {
    let mut world = World::new(expiring(Some(ShutdownPolicy::Retain)));
    world.pass();
    let second = world.pass();
    assert!(second.actions.is_empty());
    let types: Vec<_> = world
        .status()
        .conditions
        .into_iter()
        .map(|c| (c.type_, c.reason))
        .collect();
    assert_eq!(
        types,
        vec![("Ready".to_owned(), "SandboxExpired".to_owned())]
    );
}

#[test]
fn expiry_preserves_the_finished_condition() {
    for phase in ["Succeeded", "Failed"] {
        let mut s = sandbox();
        s.spec.blueprint.service = Some(true);
        let mut world = World::new(s).with_pod(with_phase(owned_pod(NAME), phase));
        world.pass();
        let finished = world.cond("Finished");
        assert!(finished.is_some(), "{phase}");
        world
            .sandbox
            .as_mut()
            .expect("exists")
            .spec
            .lifecycle
            .shutdown_time = Some(Time(now()));
        let first = world.pass();
        assert!(
            first
                .outcome
                .requeue_after
                .is_some_and(|d| d > Duration::ZERO)
        );
        assert!(world.pod(NAME).is_some() && world.service_named(NAME).is_some());
        let second = world.pass();
        assert_eq!(second.outcome.requeue_after, None);
        assert!(world.pods.is_empty() && world.services.is_empty());
        assert_eq!(
            world.cond("Finished"),
            finished,
            "{phase}: Finished kept through expiry"
        );
    }
}

#[test]
fn a_failed_teardown_delete_keeps_the_status_and_retries() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    world.pass();
    let before = world.status();
    let pass = world
        .pass_with(|a| matches!(a, Action::DeletePod { .. }).then(|| "etcd timeout".to_owned()));
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some("failed to delete pod: etcd timeout")
    );
    assert_eq!(
        world.status(),
        before,
        "status is only reset once the children are gone"
    );
}

#[test]
fn moving_shutdown_time_forward_revives_a_retained_sandbox() {
    let mut world = expired_world(Some(ShutdownPolicy::Retain));
    world.pass();
    world.pass();
    assert!(world.pods.is_empty());
    world
        .sandbox
        .as_mut()
        .expect("exists")
        .spec
        .lifecycle
        .shutdown_time = Some(Time(now() + Duration::from_secs(60)));
    world.pass();
    assert!(
        world.pod(NAME).is_some(),
        "normal reconciliation recreates the pod"
    );
    assert_eq!(world.ready().1, "DependenciesNotReady");
}
