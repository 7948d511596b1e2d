//! One pass of the Sandbox controller: [`plan`] decides the child writes; [`Plan::finish`] turns their
//! results into the status to write, events and the next look.

use std::time::Duration;

use agent_sandbox_api::conditions::{sandbox as reason, types};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxOperatingMode, SandboxStatus, ShutdownPolicy};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::conditions::{Inputs, compute};
use super::expiry::{Expiry, check};
use super::owner::with_controller;
use super::plan::{Action, Config, Failure, Observed, Outcome, Target};
use super::status::{expired_condition, expired_status, patch_if_changed};
use super::{pod, pvc, service};
use crate::conditions as condition_list;
use crate::events::{Event, EventType};
use agent_sandbox_api::validate::{self, ValidationContext};

use crate::ownership::{Ownership, describe, may_adopt, ownership};

/// What a pass decided: the child writes to perform, in order, and what [`Plan::finish`] needs.
#[derive(Clone, Debug)]
pub struct Plan {
    actions: Vec<Action>,
    pass: Pass,
}

#[derive(Clone, Debug)]
enum Pass {
    /// Gone or being deleted: nothing to do.
    Idle,
    /// First pass past `shutdownTime`: persist the expired condition, act next pass.
    MarkExpired { status: Option<Value> },
    /// Second pass past `shutdownTime`: remove the Pod and Service, then the Sandbox or its status.
    Teardown(Teardown),
    /// Normal reconciliation.
    Active(Box<Active>),
}

#[derive(Clone, Debug)]
struct Teardown {
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
    errors: Vec<String>,
    deletes_sandbox: bool,
}

/// How the Service side of a pass ended (before action results are known).
#[derive(Clone, Debug, PartialEq, Eq)]
enum ServiceState {
    /// Not reconciled (multiple Pods) or failed: status fields keep their old values.
    Unchanged,
    /// No Service in use.
    Absent,
    /// The Service in use.
    Present(String),
}

#[derive(Clone, Debug)]
struct Active {
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
    cluster_domain: String,
    namespace: String,
    name_hash: String,
    suspended: bool,
    pod: Option<Pod>,
    pod_owned: bool,
    pod_error: Option<String>,
    multiple_pods: Option<String>,
    other_errors: Vec<String>,
    service: ServiceState,
    service_required_explicitly: bool,
    requeue: Option<Duration>,
    /// The spec fails the semantic checks: reported, not retried (only a spec change can fix it).
    invalid: Option<String>,
}

impl Plan {
    /// The child writes to perform, in order. Keep going after a failure and report every failure.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The end of the pass, given which actions failed.
    pub fn finish(self, failures: &[Failure]) -> Outcome {
        let described: Vec<(Target, &Action, String)> = failures
            .iter()
            .filter_map(|f| {
                self.actions
                    .get(f.index)
                    .map(|a| (a.target(), a, describe_failure(a, &f.message)))
            })
            .collect();
        match self.pass {
            Pass::Idle => Outcome::default(),
            Pass::MarkExpired { status } => Outcome {
                status_patch: status,
                requeue_after: Some(Duration::from_millis(1)),
                ..Outcome::default()
            },
            Pass::Teardown(teardown) => {
                finish_teardown(teardown, &self.actions, described, failures)
            }
            Pass::Active(active) => finish_active(*active, described),
        }
    }
}

fn describe_failure(action: &Action, message: &str) -> String {
    let what = match action {
        Action::CreatePvc(pvc) => format!(
            "failed to create PVC {:?}",
            pvc.metadata.name.as_deref().unwrap_or_default()
        ),
        Action::PatchPvc { name, .. } => format!("failed to adopt PVC {name:?}"),
        Action::CreatePod(_) => "failed to create pod".to_owned(),
        Action::PatchPod { .. } => "failed to update pod".to_owned(),
        Action::DeletePod { .. } => "failed to delete pod".to_owned(),
        Action::CreateService(_) => "failed to create service".to_owned(),
        Action::ReplaceService(_) => "failed to adopt service".to_owned(),
        Action::PatchService { .. } => "failed to update service".to_owned(),
        Action::DeleteService { .. } => "failed to delete service".to_owned(),
        Action::PatchSandbox { .. } => "failed to update sandbox annotations".to_owned(),
        Action::DeleteSandbox { .. } => "failed to delete sandbox".to_owned(),
    };
    format!("{what}: {message}")
}

fn finish_teardown(
    teardown: Teardown,
    actions: &[Action],
    described: Vec<(Target, &Action, String)>,
    failures: &[Failure],
) -> Outcome {
    let mut errors = teardown.errors;
    errors.extend(
        described
            .iter()
            .filter(|(t, _, _)| *t != Target::Sandbox)
            .map(|(_, _, m)| m.clone()),
    );
    if teardown.deletes_sandbox {
        let index = actions
            .iter()
            .position(|a| matches!(a, Action::DeleteSandbox { .. }));
        match index.and_then(|i| failures.iter().find(|f| f.index == i)) {
            // Deleted: nothing left to write, whatever happened to the children.
            None => return Outcome::default(),
            Some(failure) => {
                errors.push(describe_failure(&actions[failure.index], &failure.message))
            }
        }
    } else if errors.is_empty() {
        let status = expired_status(&teardown.old, teardown.generation, teardown.now);
        return Outcome {
            status_patch: patch_if_changed(&teardown.old, &status),
            ..Outcome::default()
        };
    }
    Outcome {
        error: Some(errors.join("; ")),
        ..Outcome::default()
    }
}

fn finish_active(mut active: Active, described: Vec<(Target, &Action, String)>) -> Outcome {
    let mut service = active.service.clone();
    for (target, action, message) in described {
        match target {
            Target::Pod => {
                if matches!(action, Action::CreatePod(_)) {
                    active.pod = None;
                }
                active.pod_error = Some(match active.pod_error.take() {
                    Some(earlier) => format!("{earlier}; {message}"),
                    None => message,
                });
            }
            Target::Service => {
                service = ServiceState::Unchanged;
                active.other_errors.push(message);
            }
            Target::Pvc | Target::Sandbox => active.other_errors.push(message),
        }
    }

    let mut status = active.old.clone();
    match &active.pod {
        None => {
            status.pod_ips = Vec::new();
            status.node_name = String::new();
        }
        Some(pod) => {
            status.selector = format!("{}={}", labels::SANDBOX_NAME_HASH, active.name_hash);
            if active.pod_owned {
                status.pod_ips = pod
                    .status
                    .iter()
                    .flat_map(|s| s.pod_ips.iter().flatten())
                    .map(|ip| ip.ip.clone())
                    .collect();
                status.node_name = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
            } else {
                status.pod_ips = Vec::new();
                status.node_name = String::new();
            }
        }
    }
    match &service {
        ServiceState::Unchanged => {}
        ServiceState::Absent => {
            status.service = String::new();
            status.service_fqdn = String::new();
        }
        ServiceState::Present(name) => {
            status.service = name.clone();
            status.service_fqdn =
                format!("{name}.{}.svc.{}", active.namespace, active.cluster_domain);
        }
    }
    let service_exists = matches!(service, ServiceState::Present(_))
        || (service == ServiceState::Unchanged && !active.old.service.is_empty());
    let inputs = Inputs {
        suspended: active.suspended,
        pod: active.pod.as_ref(),
        pod_owned: active.pod_owned,
        pod_error: active.pod_error.clone(),
        multiple_pods: active.multiple_pods.clone(),
        other_errors: active
            .invalid
            .iter()
            .chain(&active.other_errors)
            .cloned()
            .collect(),
        service_required: active.service_required_explicitly || service_exists,
        service_exists,
    };
    let (produced, absent) = compute(&inputs);
    for type_ in absent {
        condition_list::remove(&mut status.conditions, type_);
    }
    for desired in produced {
        condition_list::set(
            &mut status.conditions,
            desired,
            active.generation,
            active.now,
        );
    }

    let mut events = Vec::new();
    if let Some(multiple) = &active.multiple_pods {
        let was =
            condition_list::find(&active.old.conditions, types::READY).map(|c| c.reason.as_str());
        if was != Some(reason::MULTIPLE_PODS) {
            events.push(Event {
                type_: EventType::Warning,
                reason: agent_sandbox_api::conditions::events::MULTIPLE_PODS,
                action: "Reconciling",
                note: multiple.clone(),
            });
        }
    }
    if let Some(invalid) = &active.invalid {
        let old_message =
            condition_list::find(&active.old.conditions, types::READY).map(|c| c.message.as_str());
        if !old_message.is_some_and(|m| m.contains(invalid.as_str())) {
            events.push(Event {
                type_: EventType::Warning,
                reason: agent_sandbox_api::conditions::events::INVALID_SPEC,
                action: "Validating",
                note: invalid.clone(),
            });
        }
    }
    // The multiple-Pods state is steady and watch-driven: it is reported, not retried.
    let pod_error = active
        .pod_error
        .filter(|e| Some(e) != active.multiple_pods.as_ref());
    let errors: Vec<String> = pod_error
        .iter()
        .chain(&active.other_errors)
        .cloned()
        .collect();
    Outcome {
        status_patch: patch_if_changed(&active.old, &status),
        events,
        requeue_after: active.requeue,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// Decides one pass for `observed.sandbox` at `now`.
pub fn plan(observed: &Observed, now: Timestamp, config: &Config) -> Plan {
    let sandbox = observed.sandbox;
    let idle = Plan {
        actions: Vec::new(),
        pass: Pass::Idle,
    };
    if sandbox.metadata.deletion_timestamp.is_some() || sandbox.metadata.uid.is_none() {
        return idle;
    }
    let old = sandbox.status.clone().unwrap_or_default();
    let generation = sandbox.metadata.generation;
    match check(sandbox.spec.lifecycle.shutdown_time.as_ref(), now) {
        Expiry::Expired => {
            let ready = condition_list::find(&old.conditions, types::READY);
            if ready.is_none_or(|c| c.reason != reason::SANDBOX_EXPIRED) {
                let mut status = old.clone();
                condition_list::remove(&mut status.conditions, types::POD_SCHEDULED);
                condition_list::set(&mut status.conditions, expired_condition(), generation, now);
                let status = patch_if_changed(&old, &status);
                return Plan {
                    actions: Vec::new(),
                    pass: Pass::MarkExpired { status },
                };
            }
            teardown(observed, old, generation, now)
        }
        Expiry::Pending(requeue) => active(observed, old, generation, now, config, requeue),
    }
}

/// The Pod name a Sandbox tracks: its `agents.x-k8s.io/pod-name` annotation if non-empty, else its name.
pub fn tracked_pod_name(sandbox: &Sandbox) -> String {
    sandbox
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::POD_NAME))
        .filter(|n| !n.is_empty())
        .or(sandbox.metadata.name.as_ref())
        .cloned()
        .unwrap_or_default()
}

fn uid_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

fn teardown(
    observed: &Observed,
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Plan {
    let sandbox = observed.sandbox;
    let uid = uid_of(&sandbox.metadata);
    let mut actions = Vec::new();
    let mut errors = Vec::new();
    let pod_name = tracked_pod_name(sandbox);
    match &observed.pods {
        Err(e) => errors.push(format!("pod get failed: {e}")),
        Ok(pods) => {
            let tracked = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str()));
            if let Some(pod) = tracked.filter(|p| ownership(&p.metadata, &uid) == Ownership::Owned)
            {
                actions.push(Action::DeletePod {
                    name: pod_name.clone(),
                    uid: uid_of(&pod.metadata),
                });
            }
        }
    }
    match &observed.service {
        Err(e) => errors.push(format!("service get failed: {e}")),
        Ok(Some(svc)) if ownership(&svc.metadata, &uid) == Ownership::Owned => {
            actions.push(Action::DeleteService {
                name: svc.metadata.name.clone().unwrap_or_default(),
                uid: uid_of(&svc.metadata),
            });
        }
        Ok(_) => {}
    }
    let deletes_sandbox = sandbox.spec.lifecycle.shutdown_policy == Some(ShutdownPolicy::Delete);
    if deletes_sandbox {
        actions.push(Action::DeleteSandbox { uid });
    }
    Plan {
        actions,
        pass: Pass::Teardown(Teardown {
            old,
            generation,
            now,
            errors,
            deletes_sandbox,
        }),
    }
}

/// The pod-name annotation as the pass leaves it.
struct PodNameAnnotation {
    current: Option<String>,
    wanted: Option<String>,
}

impl PodNameAnnotation {
    fn clear(&mut self) {
        self.wanted = None;
    }

    /// Records `name` unless the annotation already names a different Pod.
    fn ensure(&mut self, name: &str) {
        match self.wanted.as_deref() {
            Some(existing) if !existing.is_empty() => {}
            _ => self.wanted = Some(name.to_owned()),
        }
    }

    fn action(&self) -> Option<Action> {
        (self.current != self.wanted).then(|| Action::PatchSandbox {
            patch: json!({"metadata": {"annotations": {annotations::POD_NAME: self.wanted}}}),
        })
    }
}

fn active(
    observed: &Observed,
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
    config: &Config,
    requeue: Option<Duration>,
) -> Plan {
    let sandbox = observed.sandbox;
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    let uid = uid_of(&sandbox.metadata);
    let hash = name_hash(&name);
    let mut actions = Vec::new();
    let mut other_errors = Vec::new();
    let invalid = validate::check(&sandbox.spec, &ValidationContext::default())
        .err()
        .map(|problems| format!("invalid spec: {problems}"));

    if invalid.is_none() {
        reconcile_pvcs(observed, &hash, &uid, &mut actions, &mut other_errors);
    }

    let suspended = sandbox.spec.operating_mode() == SandboxOperatingMode::Suspended;
    let current_annotation = sandbox
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::POD_NAME))
        .cloned();
    let mut annotation = PodNameAnnotation {
        current: current_annotation.clone(),
        wanted: current_annotation,
    };
    let mut pod_state = PodState::default();
    match &observed.pods {
        Err(e) => pod_state.error = Some(format!("pod get failed: {e}")),
        Ok(pods) => reconcile_pod(
            sandbox,
            pods,
            &hash,
            &uid,
            PodIntent {
                suspended,
                may_create: invalid.is_none(),
            },
            &mut annotation,
            &mut actions,
            &mut pod_state,
        ),
    }
    if let Some(action) = annotation.action() {
        actions.push(action);
    }

    let (service_state, service_errors) = if pod_state.multiple.is_some() {
        (ServiceState::Unchanged, Vec::new())
    } else {
        reconcile_service(observed, &hash, &uid, &mut actions)
    };
    other_errors.extend(service_errors);

    Plan {
        actions,
        pass: Pass::Active(Box::new(Active {
            old,
            generation,
            now,
            cluster_domain: config.cluster_domain.clone(),
            namespace: sandbox.metadata.namespace.clone().unwrap_or_default(),
            name_hash: hash,
            suspended,
            pod: pod_state.pod,
            pod_owned: pod_state.owned,
            pod_error: pod_state.error,
            multiple_pods: pod_state.multiple,
            other_errors,
            service: service_state,
            service_required_explicitly: sandbox.spec.blueprint.service == Some(true),
            requeue,
            invalid,
        })),
    }
}

fn reconcile_pvcs(
    observed: &Observed,
    hash: &str,
    uid: &str,
    actions: &mut Vec<Action>,
    errors: &mut Vec<String>,
) {
    let sandbox = observed.sandbox;
    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let templates = &sandbox.spec.blueprint.volume_claim_templates;
    if templates.is_empty() {
        return;
    }
    let existing = match &observed.pvcs {
        Ok(existing) => existing,
        Err(e) => {
            errors.push(format!("failed to get PVC: {e}"));
            return;
        }
    };
    for template in templates {
        let name = pvc::pvc_name(&template.metadata.name, sandbox_name);
        let Some(found) = existing
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            actions.push(Action::CreatePvc(pvc::build(sandbox, template, hash)));
            continue;
        };
        match ownership(&found.metadata, uid) {
            Ownership::Owned => {}
            Ownership::Other(owner) => {
                errors.push(format!(
                    "PVC {name:?} is owned by {}, not by sandbox {sandbox_name:?}",
                    describe(owner)
                ));
                return;
            }
            Ownership::Unowned if may_adopt(&found.metadata, hash) => {
                actions.push(Action::PatchPvc {
                    name: name.clone(),
                    uid: uid_of(&found.metadata),
                    patch: json!({"metadata": {"ownerReferences": json!(with_controller(&found.metadata, sandbox))}}),
                });
            }
            Ownership::Unowned => {
                errors.push(refuse_adoption("PVC", &name, hash));
                return;
            }
        }
    }
}

fn refuse_adoption(kind: &str, name: &str, hash: &str) -> String {
    format!(
        "cannot adopt unowned {kind} {name:?}: it has neither label {}=true nor {}={hash}",
        labels::ADOPTABLE,
        labels::SANDBOX_NAME_HASH
    )
}

#[derive(Default)]
struct PodState {
    pod: Option<Pod>,
    owned: bool,
    error: Option<String>,
    multiple: Option<String>,
}

/// What the pass wants of the Pod.
#[derive(Clone, Copy)]
struct PodIntent {
    /// `operatingMode` is `Suspended`.
    suspended: bool,
    /// A missing Pod may be created (not when the spec is invalid).
    may_create: bool,
}

#[allow(clippy::too_many_arguments)]
fn reconcile_pod(
    sandbox: &Sandbox,
    pods: &[Pod],
    hash: &str,
    uid: &str,
    intent: PodIntent,
    annotation: &mut PodNameAnnotation,
    actions: &mut Vec<Action>,
    state: &mut PodState,
) {
    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| ownership(&p.metadata, uid) == Ownership::Owned)
    {
        if !owned.iter().any(|o| o.metadata.uid == pod.metadata.uid) {
            owned.push(pod);
        }
    }
    let tracked_name = tracked_pod_name(sandbox);
    let mut pod = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(tracked_name.as_str()));
    if pod.is_none() {
        annotation.clear();
    }
    if owned.len() > 1 {
        state.multiple = Some(format!(
            "multiple Pods ({}) are controlled by this Sandbox; refusing to choose or create a Pod",
            owned.len()
        ));
        state.error = state.multiple.clone();
        return;
    }
    if let [survivor] = owned.as_slice()
        && pod.is_none_or(|p| p.metadata.name != survivor.metadata.name)
    {
        // The owner UID beats the annotation: use the Pod this Sandbox controls.
        annotation.clear();
        pod = Some(survivor);
    }

    if intent.suspended {
        match pod {
            Some(p) if ownership(&p.metadata, uid) == Ownership::Owned => {
                if p.metadata.deletion_timestamp.is_none() {
                    actions.push(Action::DeletePod {
                        name: p.metadata.name.clone().unwrap_or_default(),
                        uid: uid_of(&p.metadata),
                    });
                }
                state.pod = Some(p.clone());
                state.owned = true;
            }
            Some(p) => {
                annotation.clear();
                state.pod = Some(p.clone());
            }
            None => annotation.clear(),
        }
        return;
    }

    let Some(existing) = pod else {
        if !intent.may_create {
            return;
        }
        let new_pod = pod::build(sandbox, hash);
        annotation.ensure(sandbox_name);
        state.pod = Some(new_pod.clone());
        state.owned = true;
        actions.push(Action::CreatePod(new_pod));
        return;
    };
    let pod_name = existing.metadata.name.clone().unwrap_or_default();
    let mut patch = serde_json::Map::new();
    match ownership(&existing.metadata, uid) {
        Ownership::Other(owner) => {
            annotation.clear();
            state.error = Some(format!(
                "pod {pod_name:?} is owned by {}, not by sandbox {sandbox_name:?}",
                describe(owner)
            ));
            return;
        }
        Ownership::Unowned if !may_adopt(&existing.metadata, hash) => {
            state.error = Some(refuse_adoption("pod", &pod_name, hash));
            return;
        }
        Ownership::Unowned => {
            patch.insert(
                "ownerReferences".into(),
                json!(with_controller(&existing.metadata, sandbox)),
            );
        }
        Ownership::Owned => {}
    }
    let mut view = existing.clone();
    if let Some(drift) = pod::metadata_drift(sandbox, existing, hash) {
        pod::apply_metadata(&mut view, &drift);
        patch.extend(drift);
    }
    if !patch.is_empty() {
        actions.push(Action::PatchPod {
            name: pod_name.clone(),
            uid: uid_of(&existing.metadata),
            patch: json!({ "metadata": patch }),
        });
    }
    annotation.ensure(&pod_name);
    state.pod = Some(view);
    state.owned = true;
}

fn reconcile_service(
    observed: &Observed,
    hash: &str,
    uid: &str,
    actions: &mut Vec<Action>,
) -> (ServiceState, Vec<String>) {
    let sandbox = observed.sandbox;
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    let desired = sandbox.spec.blueprint.service;
    let found: Option<&Service> = match &observed.service {
        Err(e) => {
            return (
                ServiceState::Unchanged,
                vec![format!("service get failed: {e}")],
            );
        }
        Ok(found) => found.as_ref(),
    };
    let Some(existing) = found else {
        if desired == Some(true) {
            actions.push(Action::CreateService(service::build(sandbox, hash)));
            return (ServiceState::Present(name), Vec::new());
        }
        return (ServiceState::Absent, Vec::new());
    };
    let owner = ownership(&existing.metadata, uid);
    if desired == Some(false) {
        if owner == Ownership::Owned {
            actions.push(Action::DeleteService {
                name,
                uid: uid_of(&existing.metadata),
            });
        }
        return (ServiceState::Absent, Vec::new());
    }
    match owner {
        Ownership::Other(reference) => {
            let error = format!(
                "service {name:?} is owned by {}, not by sandbox {name:?}",
                describe(reference)
            );
            (ServiceState::Unchanged, vec![error])
        }
        Ownership::Unowned if desired.is_none() => (ServiceState::Absent, Vec::new()),
        Ownership::Unowned if !may_adopt(&existing.metadata, hash) => (
            ServiceState::Unchanged,
            vec![refuse_adoption("service", &name, hash)],
        ),
        Ownership::Unowned => {
            let cluster_ip = existing
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .unwrap_or_default();
            if !cluster_ip.is_empty() && cluster_ip != "None" {
                let error =
                    format!("cannot adopt service {name:?}: ClusterIP is {cluster_ip}, not None");
                return (ServiceState::Unchanged, vec![error]);
            }
            actions.push(Action::ReplaceService(service::adopted(
                sandbox, existing, hash,
            )));
            (ServiceState::Present(name), Vec::new())
        }
        Ownership::Owned => {
            if let Some(patch) = service::drift(sandbox, existing, hash) {
                actions.push(Action::PatchService {
                    name: name.clone(),
                    uid: uid_of(&existing.metadata),
                    patch,
                });
            }
            (ServiceState::Present(name), Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn with_annotations(annotations: Option<BTreeMap<String, String>>) -> Sandbox {
        let mut sandbox = Sandbox::new("sb", Default::default());
        sandbox.metadata.annotations = annotations;
        sandbox
    }

    #[test]
    fn resolve_pod_name() {
        assert_eq!(
            tracked_pod_name(&with_annotations(None)),
            "sb",
            "no annotations"
        );
        let other = BTreeMap::from([("x".to_owned(), "y".to_owned())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(other))),
            "sb",
            "annotation absent"
        );
        let empty = BTreeMap::from([(annotations::POD_NAME.to_owned(), String::new())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(empty))),
            "sb",
            "annotation empty"
        );
        let set = BTreeMap::from([(annotations::POD_NAME.to_owned(), "warm-pod".to_owned())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(set))),
            "warm-pod",
            "annotation set"
        );
    }
}
