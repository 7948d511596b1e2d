//! The Sandbox's headless Service: its ports, what a new one looks like, and drift to repair.

use std::collections::{BTreeMap, BTreeSet};

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{ContainerPort, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use super::owner::{owner_reference, with_controller};

/// The Service ports for a Sandbox: every container port plus native sidecar ports, de-duplicated by
/// (port, protocol), sorted, each named (first explicit name wins; others get `p-<port>-<protocol>`).
pub fn ports(sandbox: &Sandbox) -> Option<Vec<ServicePort>> {
    let spec = &sandbox.spec.blueprint.pod_template.spec;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let declared: Vec<&ContainerPort> = spec
        .containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.container_port != 0)
        .collect();

    // (port, protocol) → explicit name, first one wins; a name already taken is not reused.
    let mut names: BTreeMap<(i32, String), Option<String>> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for port in declared {
        let protocol = port
            .protocol
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "TCP".into());
        let entry = names.entry((port.container_port, protocol)).or_insert(None);
        if entry.is_none()
            && let Some(name) = port.name.clone().filter(|n| !n.is_empty())
            && taken.insert(name.clone())
        {
            *entry = Some(name);
        }
    }
    if names.is_empty() {
        return None;
    }
    let ports = names
        .into_iter()
        .map(|((port, protocol), name)| {
            let name = name.unwrap_or_else(|| {
                let base = format!("p-{port}-{}", protocol.to_ascii_lowercase());
                let name = (1..)
                    .map(|n| {
                        if n == 1 {
                            base.clone()
                        } else {
                            format!("{base}-{n}")
                        }
                    })
                    .find(|candidate| !taken.contains(candidate))
                    .unwrap_or(base);
                taken.insert(name.clone());
                name
            });
            ServicePort {
                name: Some(name),
                port,
                protocol: Some(protocol),
                target_port: Some(IntOrString::Int(port)),
                ..ServicePort::default()
            }
        })
        .collect();
    Some(ports)
}

fn tracking(name_hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::SANDBOX_NAME_HASH.to_owned(), name_hash.to_owned())])
}

/// The headless Service to create when `spec.service` is true.
pub fn build(sandbox: &Sandbox, name_hash: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: sandbox.metadata.name.clone(),
            namespace: sandbox.metadata.namespace.clone(),
            labels: Some(tracking(name_hash)),
            owner_references: Some(vec![owner_reference(sandbox)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(tracking(name_hash)),
            ports: ports(sandbox),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// An unowned Service prepared for adoption: tracking label, selector, desired ports, controller reference.
pub fn adopted(sandbox: &Sandbox, existing: &Service, name_hash: &str) -> Service {
    let mut service = existing.clone();
    service
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(tracking(name_hash));
    service.metadata.owner_references = Some(with_controller(&existing.metadata, sandbox));
    let spec = service.spec.get_or_insert_with(ServiceSpec::default);
    if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
        // The API server gives a headless Service without a selector both IP families; once it has a
        // selector that is invalid on a single-stack cluster, so let the server choose again.
        spec.ip_family_policy = None;
        spec.ip_families = None;
    }
    spec.selector = Some(tracking(name_hash));
    spec.ports = ports(sandbox);
    service
}

/// True when the controlled fields (name, protocol, port, targetPort) of the port lists differ.
fn ports_differ(current: Option<&Vec<ServicePort>>, desired: Option<&Vec<ServicePort>>) -> bool {
    let key = |p: &ServicePort| {
        (
            p.name.clone(),
            p.protocol.clone(),
            p.port,
            p.target_port.clone(),
        )
    };
    let current: Vec<_> = current.into_iter().flatten().map(key).collect();
    let desired: Vec<_> = desired.into_iter().flatten().map(key).collect();
    current != desired
}

/// The merge patch repairing label and selector drift of an owned Service (and ports, when the Service is
/// explicitly wanted), or `None`.
pub fn drift(sandbox: &Sandbox, service: &Service, name_hash: &str) -> Option<Value> {
    let mut patch = Map::new();
    let label = service
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SANDBOX_NAME_HASH));
    if label.map(String::as_str) != Some(name_hash) {
        patch.insert(
            "metadata".into(),
            json!({"labels": {labels::SANDBOX_NAME_HASH: name_hash}}),
        );
    }
    let spec = service.spec.clone().unwrap_or_default();
    let mut spec_patch = Map::new();
    if spec.selector != Some(tracking(name_hash)) {
        // A merge patch merges maps: remove stale selector keys explicitly.
        let mut selector: Map<String, Value> = spec
            .selector
            .iter()
            .flatten()
            .map(|(k, _)| (k.clone(), Value::Null))
            .collect();
        selector.insert(labels::SANDBOX_NAME_HASH.into(), json!(name_hash));
        spec_patch.insert("selector".into(), Value::Object(selector));
    }
    if sandbox.spec.blueprint.service == Some(true) {
        let desired = ports(sandbox);
        if ports_differ(spec.ports.as_ref(), desired.as_ref()) {
            spec_patch.insert("ports".into(), json!(desired));
        }
    }
    if !spec_patch.is_empty() {
        patch.insert("spec".into(), Value::Object(spec_patch));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}
