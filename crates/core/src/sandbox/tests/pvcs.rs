//! TestReconcilePVCs (controllers.md §2.4).

use agent_sandbox_api::keys::labels;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::world::*;
use crate::sandbox::Action;

fn with_template() -> World {
    let mut s = sandbox();
    s.spec.blueprint.volume_claim_templates = vec![vct("data")];
    World::new(s)
}

fn pvc(owner_uid: Option<&str>, labels: &[(&str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta("data-sandbox-name", owner_uid, labels),
        ..Default::default()
    }
}

#[test]
fn creates_a_missing_pvc() {
    let mut world = with_template();
    let pass = world.pass();
    assert!(matches!(pass.actions.first(), Some(Action::CreatePvc(_))));
    assert_eq!(world.pvcs.len(), 1);
}

#[test]
fn uses_an_owned_pvc_as_it_is() {
    let mut world = with_template().with_pvc(pvc(Some(UID), &[]));
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreatePvc(_) | Action::PatchPvc { .. }))
    );
}

#[test]
fn refuses_a_pvc_owned_by_another_controller() {
    let mut world = with_template().with_pvc(pvc(Some("other-uid"), &[]));
    let pass = world.pass();
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some(
            "PVC \"data-sandbox-name\" is owned by Deployment/deployment-owner (UID: other-uid), not by sandbox \"sandbox-name\""
        )
    );
    assert_eq!(world.ready().1, "ReconcilerError");
}

#[test]
fn adopts_an_unowned_adoptable_pvc() {
    let mut world = with_template().with_pvc(pvc(None, &[(labels::ADOPTABLE, "true")]));
    world.pass();
    assert!(
        world.pvcs[0]
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|r| r[0].uid == UID)
    );
}

#[test]
fn adopts_a_pvc_with_the_legacy_tracking_label() {
    let mut world = with_template().with_pvc(pvc(None, &[(labels::SANDBOX_NAME_HASH, &hash())]));
    world.pass();
    assert!(world.pvcs[0].metadata.owner_references.is_some());
}

#[test]
fn refuses_an_unowned_pvc_without_adoption_labels() {
    let mut world = with_template().with_pvc(pvc(None, &[]));
    let pass = world.pass();
    assert!(
        pass.outcome
            .error
            .is_some_and(|e| e.starts_with("cannot adopt unowned PVC \"data-sandbox-name\""))
    );
    assert!(world.pvcs[0].metadata.owner_references.is_none());
}

#[test]
fn pvcs_are_never_deleted() {
    let mut world = with_template();
    world.pass();
    world.sandbox.as_mut().expect("exists").spec.operating_mode =
        Some(agent_sandbox_api::v1beta1::SandboxOperatingMode::Suspended);
    for _ in 0..3 {
        let pass = world.pass();
        assert!(pass.actions.iter().all(
            |a| a.target() != crate::sandbox::Target::Pvc || matches!(a, Action::CreatePvc(_))
        ));
    }
    assert_eq!(world.pvcs.len(), 1);
}
