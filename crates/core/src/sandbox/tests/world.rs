//! An in-memory namespace that applies a plan's actions the way the API server would, so tests can run
//! several passes and look at the objects and the status that result.

use std::collections::BTreeMap;

use agent_sandbox_api::common::{PersistentVolumeClaimTemplate, PodTemplate};
use agent_sandbox_api::conditions::types;
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxSpec, SandboxStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaim, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    Service, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::sandbox::{Action, Config, Failure, Observed, Outcome, plan};

pub const NS: &str = "ns";
pub const NAME: &str = "sandbox-name";
pub const UID: &str = "sandbox-uid";

pub fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid")
}

pub fn hash() -> String {
    name_hash(NAME)
}

/// A Sandbox with one container, generation 1.
pub fn sandbox() -> Sandbox {
    let mut sandbox = Sandbox::new(
        NAME,
        SandboxSpec {
            blueprint: agent_sandbox_api::v1beta1::SandboxBlueprint {
                pod_template: PodTemplate {
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "main".into(),
                            image: Some("img".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        },
    );
    sandbox.metadata.namespace = Some(NS.into());
    sandbox.metadata.uid = Some(UID.into());
    sandbox.metadata.generation = Some(1);
    sandbox
}

pub fn with_ports(mut sandbox: Sandbox, ports: &[(i32, Option<&str>, Option<&str>)]) -> Sandbox {
    sandbox.spec.blueprint.pod_template.spec.containers[0].ports = Some(
        ports
            .iter()
            .map(|(port, name, protocol)| ContainerPort {
                container_port: *port,
                name: name.map(String::from),
                protocol: protocol.map(String::from),
                ..Default::default()
            })
            .collect(),
    );
    sandbox
}

pub fn vct(name: &str) -> PersistentVolumeClaimTemplate {
    PersistentVolumeClaimTemplate::named(name)
}

pub fn owner(uid: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: format!("{kind}-owner").to_lowercase(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn meta(name: &str, owner_uid: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        uid: Some(format!("{name}-uid")),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        owner_references: owner_uid.map(|uid| {
            vec![owner(
                uid,
                if uid == UID { "Sandbox" } else { "Deployment" },
            )]
        }),
        ..Default::default()
    }
}

/// A Pod named `name` owned by the Sandbox, with the tracking label.
pub fn owned_pod(name: &str) -> Pod {
    Pod {
        metadata: meta(
            name,
            Some(UID),
            &[(agent_sandbox_api::keys::labels::SANDBOX_NAME_HASH, &hash())],
        ),
        ..Default::default()
    }
}

pub fn with_phase(mut pod: Pod, phase: &str) -> Pod {
    pod.status.get_or_insert_with(PodStatus::default).phase = Some(phase.into());
    pod
}

pub fn with_pod_condition(
    mut pod: Pod,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Pod {
    let status_obj = pod.status.get_or_insert_with(PodStatus::default);
    status_obj
        .conditions
        .get_or_insert_with(Vec::new)
        .push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(String::from),
            message: message.map(String::from),
            ..Default::default()
        });
    pod
}

pub fn with_ip(mut pod: Pod, ip: &str) -> Pod {
    pod.status
        .get_or_insert_with(PodStatus::default)
        .pod_ips
        .get_or_insert_with(Vec::new)
        .push(PodIP { ip: ip.into() });
    pod
}

pub fn on_node(mut pod: Pod, node: &str) -> Pod {
    pod.spec.get_or_insert_with(PodSpec::default).node_name = Some(node.into());
    pod
}

/// A Running, Ready Pod with an IP, owned by the Sandbox.
pub fn ready_pod() -> Pod {
    with_ip(
        with_pod_condition(
            with_phase(owned_pod(NAME), "Running"),
            "Ready",
            "True",
            None,
            None,
        ),
        "10.0.0.7",
    )
}

pub fn service(
    name: &str,
    owner_uid: Option<&str>,
    labels: &[(&str, &str)],
    cluster_ip: &str,
) -> Service {
    Service {
        metadata: meta(name, owner_uid, labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// One namespace: the Sandbox and its children, plus injected lookup failures.
#[derive(Clone, Debug)]
pub struct World {
    pub sandbox: Option<Sandbox>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub pod_lookup_error: Option<String>,
    pub config: Config,
    pub now: Timestamp,
    pub writes: usize,
}

/// What one pass did.
#[derive(Clone, Debug)]
pub struct Pass {
    pub actions: Vec<Action>,
    pub outcome: Outcome,
}

impl World {
    pub fn new(sandbox: Sandbox) -> Self {
        Self {
            sandbox: Some(sandbox),
            pods: Vec::new(),
            services: Vec::new(),
            pvcs: Vec::new(),
            pod_lookup_error: None,
            config: Config::default(),
            now: now(),
            writes: 0,
        }
    }

    pub fn with_pod(mut self, pod: Pod) -> Self {
        self.pods.push(pod);
        self
    }

    pub fn with_service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    pub fn with_pvc(mut self, pvc: PersistentVolumeClaim) -> Self {
        self.pvcs.push(pvc);
        self
    }

    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("the Sandbox exists")
    }

    pub fn status(&self) -> SandboxStatus {
        self.sandbox().status.clone().unwrap_or_default()
    }

    pub fn condition(&self, type_: &str) -> Option<Condition> {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
    }

    /// (status, reason, message) of a condition.
    pub fn cond(&self, type_: &str) -> Option<(String, String, String)> {
        self.condition(type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    pub fn ready(&self) -> (String, String, String) {
        self.cond(types::READY).expect("Ready is always present")
    }

    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }

    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    fn observed_pods(&self) -> Result<Vec<Pod>, String> {
        if let Some(error) = &self.pod_lookup_error {
            return Err(error.clone());
        }
        let label = agent_sandbox_api::keys::labels::SANDBOX_NAME_HASH;
        Ok(self
            .pods
            .iter()
            .filter(|p| {
                p.metadata.name.as_deref() == Some(NAME)
                    || p.metadata.labels.as_ref().and_then(|l| l.get(label)) == Some(&hash())
            })
            .cloned()
            .collect())
    }

    /// Runs one pass; `fail` decides which actions fail (by action) and with what message.
    pub fn pass_with(&mut self, fail: impl Fn(&Action) -> Option<String>) -> Pass {
        self.pass_failing(|action| fail(action).map(|message| (message, false)))
    }

    /// Runs one pass; `fail` decides which actions fail, with what message, and whether the API server
    /// rejected the object as invalid.
    pub fn pass_failing(&mut self, fail: impl Fn(&Action) -> Option<(String, bool)>) -> Pass {
        let sandbox = self.sandbox().clone();
        let pvc_names: Vec<String> = sandbox
            .spec
            .blueprint
            .volume_claim_templates
            .iter()
            .map(|t| crate::sandbox::pvc_name(&t.metadata.name, NAME))
            .collect();
        let observed = Observed {
            sandbox: &sandbox,
            pods: self.observed_pods(),
            service: Ok(self.service_named(NAME).cloned()),
            pvcs: Ok(self
                .pvcs
                .iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_ref()
                        .is_some_and(|n| pvc_names.contains(n))
                })
                .cloned()
                .collect()),
        };
        let plan = plan(&observed, self.now, &self.config);
        let actions = plan.actions().to_vec();
        let mut failures = Vec::new();
        for (index, action) in actions.iter().enumerate() {
            match fail(action) {
                Some((message, invalid)) => failures.push(Failure {
                    index,
                    message,
                    invalid,
                }),
                None => self.apply(action),
            }
        }
        let outcome = plan.finish(&failures);
        if let Some(patch) = &outcome.status_patch
            && let Some(sandbox) = self.sandbox.as_mut()
        {
            let mut value = serde_json::to_value(&*sandbox).expect("serialisable");
            merge(&mut value, patch);
            *sandbox = serde_json::from_value(value).expect("patched sandbox parses");
            self.writes += 1;
        }
        Pass { actions, outcome }
    }

    pub fn pass(&mut self) -> Pass {
        self.pass_with(|_| None)
    }

    fn apply(&mut self, action: &Action) {
        fn patch_object<T: serde::Serialize + serde::de::DeserializeOwned>(
            object: &mut T,
            patch: &Value,
        ) {
            let mut value = serde_json::to_value(&*object).expect("serialisable");
            merge(&mut value, patch);
            *object = serde_json::from_value(value).expect("patched object parses");
        }
        let named = |m: &ObjectMeta, name: &str| m.name.as_deref() == Some(name);
        match action {
            Action::CreatePvc(pvc) => self.pvcs.push(with_uid(pvc.clone(), |p| &mut p.metadata)),
            Action::PatchPvc { name, patch, .. } => {
                if let Some(p) = self.pvcs.iter_mut().find(|p| named(&p.metadata, name)) {
                    patch_object(p, patch);
                }
            }
            Action::CreatePod(pod) => self.pods.push(with_uid(pod.clone(), |p| &mut p.metadata)),
            Action::PatchPod { name, patch, .. } => {
                if let Some(p) = self.pods.iter_mut().find(|p| named(&p.metadata, name)) {
                    patch_object(p, patch);
                }
            }
            Action::DeletePod { name, .. } => self.pods.retain(|p| !named(&p.metadata, name)),
            Action::CreateService(svc) => self
                .services
                .push(with_uid(svc.clone(), |s| &mut s.metadata)),
            Action::ReplaceService(svc) => {
                let name = svc.metadata.name.clone().unwrap_or_default();
                self.services.retain(|s| !named(&s.metadata, &name));
                self.services.push(svc.clone());
            }
            Action::PatchService { name, patch, .. } => {
                if let Some(s) = self.services.iter_mut().find(|s| named(&s.metadata, name)) {
                    patch_object(s, patch);
                }
            }
            Action::DeleteService { name, .. } => {
                self.services.retain(|s| !named(&s.metadata, name))
            }
            Action::DeleteSandbox { .. } => self.sandbox = None,
        }
    }
}

fn with_uid<T>(mut object: T, meta: impl Fn(&mut T) -> &mut ObjectMeta) -> T {
    let m = meta(&mut object);
    m.uid = Some(format!("{}-uid", m.name.clone().unwrap_or_default()));
    object
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Labels of an object as a sorted list.
pub fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

pub fn annotations_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

pub fn time(second: i64) -> Time {
    Time(Timestamp::from_second(second).expect("valid"))
}
