//! TestReconcileService (controllers.md §2.11).

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{Container, ContainerPort, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::world::*;
use crate::sandbox::Action;

fn wants_service(s: Sandbox, value: Option<bool>) -> Sandbox {
    let mut s = s;
    s.spec.blueprint.service = value;
    s
}

fn ports_of(world: &World) -> Vec<(String, i32, String)> {
    world
        .service_named(NAME)
        .and_then(|s| s.spec.clone())
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.name.unwrap_or_default(),
                p.port,
                p.protocol.unwrap_or_default(),
            )
        })
        .collect()
}

fn p(name: &str, port: i32, protocol: &str) -> (String, i32, String) {
    (name.into(), port, protocol.into())
}

#[test]
fn service_true_creates_a_headless_service_with_container_ports() {
    let s = with_ports(
        wants_service(sandbox(), Some(true)),
        &[(8080, Some("http"), None), (53, None, Some("UDP"))],
    );
    let mut world = World::new(s);
    world.pass();
    assert_eq!(
        ports_of(&world),
        [p("p-53-udp", 53, "UDP"), p("http", 8080, "TCP")]
    );
    let target = world
        .service_named(NAME)
        .and_then(|s| s.spec.clone())
        .and_then(|s| s.ports)
        .map(|p| p[1].target_port.clone());
    assert_eq!(target, Some(Some(IntOrString::Int(8080))));
}

#[test]
fn native_sidecar_ports_are_included_but_plain_init_containers_are_not() {
    let mut s = wants_service(sandbox(), Some(true));
    let port = |n| {
        Some(vec![ContainerPort {
            container_port: n,
            ..Default::default()
        }])
    };
    s.spec.blueprint.pod_template.spec.init_containers = Some(vec![
        Container {
            name: "sidecar".into(),
            restart_policy: Some("Always".into()),
            ports: port(9000),
            ..Default::default()
        },
        Container {
            name: "init".into(),
            ports: port(9001),
            ..Default::default()
        },
    ]);
    let mut world = World::new(s);
    world.pass();
    assert_eq!(ports_of(&world), [p("p-9000-tcp", 9000, "TCP")]);
}

#[test]
fn ports_are_sorted_deduplicated_and_the_first_explicit_name_wins() {
    let s = with_ports(
        wants_service(sandbox(), Some(true)),
        &[
            (9090, None, None),
            (8080, Some("web"), None),
            (8080, Some("other"), Some("TCP")),
            (0, Some("zero"), None),
        ],
    );
    let mut world = World::new(s);
    world.pass();
    assert_eq!(
        ports_of(&world),
        [p("web", 8080, "TCP"), p("p-9090-tcp", 9090, "TCP")]
    );
}

#[test]
fn a_generated_name_steps_aside_for_an_explicit_one() {
    let s = with_ports(
        wants_service(sandbox(), Some(true)),
        &[(80, None, None), (81, Some("p-80-tcp"), None)],
    );
    let mut world = World::new(s);
    world.pass();
    assert_eq!(
        ports_of(&world),
        [p("p-80-tcp-2", 80, "TCP"), p("p-80-tcp", 81, "TCP")]
    );
}

#[test]
fn no_container_ports_means_no_service_ports() {
    let mut world = World::new(wants_service(sandbox(), Some(true)));
    world.pass();
    assert!(
        world
            .service_named(NAME)
            .and_then(|s| s.spec.clone())
            .is_some_and(|s| s.ports.is_none())
    );
}

#[test]
fn an_owned_service_is_reused_and_its_drift_repaired() {
    let s = with_ports(
        wants_service(sandbox(), Some(true)),
        &[(8080, Some("http"), None)],
    );
    let mut svc = service(
        NAME,
        Some(UID),
        &[(labels::SANDBOX_NAME_HASH, "stale")],
        "None",
    );
    let spec = svc.spec.as_mut().expect("spec");
    spec.selector = Some([("app".to_owned(), "x".to_owned())].into());
    spec.ports = Some(vec![ServicePort {
        name: Some("http".into()),
        port: 80,
        ..Default::default()
    }]);
    let mut world = World::new(s).with_service(svc);
    world.pass();
    let svc = world.service_named(NAME).expect("kept");
    assert_eq!(
        labels_of(&svc.metadata).get(labels::SANDBOX_NAME_HASH),
        Some(&hash())
    );
    assert_eq!(
        svc.spec.as_ref().and_then(|s| s.selector.clone()),
        Some([(labels::SANDBOX_NAME_HASH.to_owned(), hash())].into())
    );
    assert_eq!(ports_of(&world), [p("http", 8080, "TCP")]);
    assert_eq!(world.services.len(), 1);
}

#[test]
fn unmanaged_port_fields_survive_when_the_controlled_ones_match() {
    let s = with_ports(
        wants_service(sandbox(), Some(true)),
        &[(8080, Some("http"), None)],
    );
    let mut world = World::new(s);
    world.pass();
    world.services[0]
        .spec
        .as_mut()
        .and_then(|s| s.ports.as_mut())
        .expect("ports")[0]
        .app_protocol = Some("h2c".into());
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::PatchService { .. })),
        "{:?}",
        pass.actions
    );
}

#[test]
fn a_service_owned_by_another_controller_is_an_error() {
    let svc = service(NAME, Some("deploy-uid"), &[], "None");
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    let pass = world.pass();
    assert!(
        pass.outcome
            .error
            .is_some_and(|e| e.contains("service \"sandbox-name\" is owned by Deployment"))
    );
    assert_eq!(world.ready().1, "ReconcilerError");
}

#[test]
fn an_unowned_adoptable_headless_service_is_adopted() {
    let svc = service(NAME, None, &[(labels::ADOPTABLE, "true")], "None");
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .any(|a| matches!(a, Action::ReplaceService(_)))
    );
    let svc = world.service_named(NAME).expect("adopted");
    assert!(
        svc.metadata
            .owner_references
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r.uid == UID))
    );
    assert_eq!(
        svc.spec.as_ref().and_then(|s| s.ports.clone()),
        None,
        "ports cleared when the sandbox has none"
    );
    assert_eq!(world.status().service, NAME);
}

#[test]
fn adopting_a_selectorless_service_lets_the_server_choose_ip_families_again() {
    let mut svc = service(NAME, None, &[(labels::ADOPTABLE, "true")], "None");
    let spec = svc.spec.as_mut().expect("spec");
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    world.pass();
    let spec = world
        .service_named(NAME)
        .and_then(|s| s.spec.clone())
        .expect("spec");
    assert_eq!((spec.ip_family_policy, spec.ip_families), (None, None));

    let mut svc = service(NAME, None, &[(labels::ADOPTABLE, "true")], "None");
    let spec = svc.spec.as_mut().expect("spec");
    spec.selector = Some([("app".to_owned(), "x".to_owned())].into());
    spec.ip_family_policy = Some("SingleStack".into());
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    world.pass();
    let spec = world
        .service_named(NAME)
        .and_then(|s| s.spec.clone())
        .expect("spec");
    assert_eq!(
        spec.ip_family_policy.as_deref(),
        Some("SingleStack"),
        "kept when it already selected pods"
    );
}

#[test]
fn an_adoptable_service_with_a_cluster_ip_is_refused() {
    let svc = service(NAME, None, &[(labels::ADOPTABLE, "true")], "10.96.0.10");
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    let pass = world.pass();
    assert_eq!(
        pass.outcome.error.as_deref(),
        Some("cannot adopt service \"sandbox-name\": ClusterIP is 10.96.0.10, not None")
    );
}

#[test]
fn the_legacy_tracking_label_suffices_for_service_adoption() {
    let svc = service(NAME, None, &[(labels::SANDBOX_NAME_HASH, &hash())], "");
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    let pass = world.pass();
    assert!(pass.outcome.error.is_none());
    assert!(
        world
            .service_named(NAME)
            .and_then(|s| s.metadata.owner_references.clone())
            .is_some()
    );
}

#[test]
fn an_unowned_service_without_adoption_labels_is_refused() {
    let svc = service(NAME, None, &[], "None");
    let mut world = World::new(wants_service(sandbox(), Some(true))).with_service(svc);
    let pass = world.pass();
    assert!(
        pass.outcome
            .error
            .is_some_and(|e| e.starts_with("cannot adopt unowned service"))
    );
}

#[test]
fn service_unset_keeps_an_owned_service_and_requires_it() {
    let s = with_ports(wants_service(sandbox(), None), &[(8080, None, None)]);
    let mut svc = service(NAME, Some(UID), &[], "None");
    svc.spec.as_mut().expect("spec").ports = Some(vec![ServicePort {
        name: Some("legacy".into()),
        port: 1,
        ..Default::default()
    }]);
    let mut world = World::new(s).with_service(svc).with_pod(ready_pod());
    world.pass();
    let kept = world.service_named(NAME).expect("kept");
    assert_eq!(
        labels_of(&kept.metadata).get(labels::SANDBOX_NAME_HASH),
        Some(&hash()),
        "label reconciled"
    );
    assert_eq!(
        ports_of(&world),
        [p("legacy", 1, "")],
        "ports untouched when not explicitly wanted"
    );
    assert_eq!(world.status().service, NAME);
    assert_eq!(world.ready().2, "Pod is Ready; Service Exists");
}

#[test]
fn service_unset_never_creates_and_ignores_an_unowned_one() {
    let mut world = World::new(sandbox()).with_service(service(NAME, None, &[], "None"));
    let pass = world.pass();
    assert!(
        pass.actions
            .iter()
            .all(|a| !matches!(a, Action::CreateService(_) | Action::ReplaceService(_)))
    );
    assert!(world.status().service.is_empty());
    assert_eq!(world.ready().2, "Pod exists with phase: ", "not required");
}

#[test]
fn service_false_deletes_an_owned_service_and_ignores_an_unowned_one() {
    let mut world = World::new(wants_service(sandbox(), Some(true)));
    world.pass();
    assert!(world.service_named(NAME).is_some());
    world.sandbox = Some(wants_service(world.sandbox().clone(), Some(false)));
    world.pass();
    assert!(world.service_named(NAME).is_none());
    assert!(world.status().service.is_empty() && world.status().service_fqdn.is_empty());

    let mut world = World::new(wants_service(sandbox(), Some(false))).with_service(service(
        NAME,
        None,
        &[],
        "None",
    ));
    world.pass();
    assert!(
        world.service_named(NAME).is_some(),
        "unowned service left alone"
    );
}
