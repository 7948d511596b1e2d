//! The Sandbox's headless Service: its ports, what a new one looks like, drift to repair, and the
//! pass's Service step (create, adopt, repair or delete).

use std::collections::{BTreeMap, BTreeSet};

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{ContainerPort, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use super::owner::{owner_reference, refuse_adoption, uid_of, with_controller};
use super::plan::{Action, Observed};
use crate::ownership::{Ownership, describe, may_adopt, ownership};

/// How the Service side of a pass ended (before action results are known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ServiceState {
    /// Not reconciled (multiple Pods) or failed: status fields keep their old values.
    Unchanged,
    /// No Service in use.
    Absent,
    /// The Service in use.
    Present(String),
}

/// The Service step of a pass: where the Service stands, its write and its error, if any.
pub(super) struct ServiceStep {
    /// Where the Service stands.
    pub state: ServiceState,
    /// The write to perform.
    pub action: Option<Action>,
    /// Why the Service could not be reconciled.
    pub error: Option<String>,
}

impl ServiceStep {
    fn done(state: ServiceState, action: Option<Action>) -> Self {
        Self {
            state,
            action,
            error: None,
        }
    }

    fn failed(error: String) -> Self {
        Self {
            state: ServiceState::Unchanged,
            action: None,
            error: Some(error),
        }
    }
}

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
            let name = name.unwrap_or_else(|| generated_name(port, &protocol, &mut taken));
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

/// `p-<port>-<protocol>`, with a `-<n>` suffix if an explicit name took it; recorded as taken.
fn generated_name(port: i32, protocol: &str, taken: &mut BTreeSet<String>) -> String {
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

/// Decides the Service: created when wanted and missing (and `may_create`), deleted when unwanted and
/// owned, adopted when wanted, unowned, adoptable and headless, repaired when owned and drifted.
pub(super) fn reconcile(
    observed: &Observed,
    hash: &str,
    uid: &str,
    may_create: bool,
) -> ServiceStep {
    let sandbox = observed.sandbox;
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    let desired = sandbox.spec.blueprint.service;
    let existing = match &observed.service {
        Err(e) => return ServiceStep::failed(format!("service get failed: {e}")),
        Ok(None) if desired == Some(true) && may_create => {
            let create = Action::CreateService(build(sandbox, hash));
            return ServiceStep::done(ServiceState::Present(name), Some(create));
        }
        Ok(None) => return ServiceStep::done(ServiceState::Absent, None),
        Ok(Some(existing)) => existing,
    };
    let owner = ownership(&existing.metadata, uid);
    if desired == Some(false) {
        let delete = (owner == Ownership::Owned).then(|| Action::DeleteService {
            name,
            uid: uid_of(&existing.metadata),
        });
        return ServiceStep::done(ServiceState::Absent, delete);
    }
    match owner {
        Ownership::Other(reference) => ServiceStep::failed(format!(
            "service {name:?} is owned by {}, not by sandbox {name:?}",
            describe(reference)
        )),
        Ownership::Unowned if desired.is_none() => ServiceStep::done(ServiceState::Absent, None),
        Ownership::Unowned if !may_adopt(&existing.metadata, hash) => {
            ServiceStep::failed(refuse_adoption("service", &name, hash))
        }
        Ownership::Unowned => adopt(sandbox, existing, hash, name),
        Ownership::Owned => {
            let repair = drift(sandbox, existing, hash).map(|patch| Action::PatchService {
                name: name.clone(),
                uid: uid_of(&existing.metadata),
                patch,
            });
            ServiceStep::done(ServiceState::Present(name), repair)
        }
    }
}

/// Adopts an unowned, adoptable Service, which must be headless.
fn adopt(sandbox: &Sandbox, existing: &Service, hash: &str, name: String) -> ServiceStep {
    let cluster_ip = existing
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default();
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        return ServiceStep::failed(format!(
            "cannot adopt service {name:?}: ClusterIP is {cluster_ip}, not None"
        ));
    }
    let replace = Action::ReplaceService(adopted(sandbox, existing, hash));
    ServiceStep::done(ServiceState::Present(name), Some(replace))
}
