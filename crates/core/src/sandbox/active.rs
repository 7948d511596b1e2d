//! A pass over a live Sandbox: PVCs, then the Pod, then the Service; and,
//! given which of those writes failed, the status, events and error the pass ends with.

use std::time::Duration;

use agent_sandbox_api::conditions::{events as reasons, sandbox as reason, types};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{SandboxOperatingMode, SandboxStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{Inputs, compute};
use super::owner::uid_of;
use super::plan::{Action, Config, Failed, Observed, Outcome, Target};
use super::service::{ServiceState, ServiceStep};
use super::status::patch_if_changed;
use super::tracked_pod::PodIntent;
use super::{configuration, pvc, service, tracked_pod};
use crate::conditions as condition_list;
use crate::events::{Event, EventType};

/// What finishing an active pass needs to know.
#[derive(Clone, Debug)]
pub(super) struct Active {
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
    /// Permanent configuration errors: reported once and not retried (only a change of the Sandbox
    /// can fix them); nothing is created while there are any.
    invalid: Vec<String>,
}

/// The writes of an active pass, in order: PVCs, the Pod, the Service.
pub(super) fn decide(
    observed: &Observed,
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
    config: &Config,
    requeue: Option<Duration>,
) -> (Vec<Action>, Active) {
    let sandbox = observed.sandbox;
    let uid = uid_of(&sandbox.metadata);
    let hash = name_hash(sandbox.metadata.name.as_deref().unwrap_or_default());
    let mut invalid = configuration::problems(sandbox);
    if invalid.is_empty() {
        invalid.extend(configuration::rejected_earlier(&old, generation));
    }
    let may_create = invalid.is_empty();
    let (mut actions, pvc_error) = if may_create {
        pvc::reconcile(observed, &hash, &uid)
    } else {
        (Vec::new(), None)
    };

    let suspended = sandbox.spec.operating_mode() == SandboxOperatingMode::Suspended;
    let intent = PodIntent {
        suspended,
        may_create,
    };
    let mut pod = tracked_pod::reconcile(observed, &hash, &uid, intent);
    actions.extend(pod.action.take());

    let service = match pod.multiple {
        Some(_) => ServiceStep {
            state: ServiceState::Unchanged,
            action: None,
            error: None,
        },
        None => service::reconcile(observed, &hash, &uid, may_create),
    };
    actions.extend(service.action);

    let active = Active {
        old,
        generation,
        now,
        cluster_domain: config.cluster_domain.clone(),
        namespace: sandbox.metadata.namespace.clone().unwrap_or_default(),
        name_hash: hash,
        suspended,
        pod: pod.pod,
        pod_owned: pod.owned,
        pod_error: pod.error,
        multiple_pods: pod.multiple,
        other_errors: pvc_error.into_iter().chain(service.error).collect(),
        service: service.state,
        service_required_explicitly: sandbox.spec.blueprint.service == Some(true),
        requeue,
        invalid,
    };
    (actions, active)
}

/// The end of an active pass, given the failed writes.
pub(super) fn finish(active: Active, described: Vec<Failed>) -> Outcome {
    let active = with_failures(active, described);
    let status = status(&active);
    let events = events(&active);
    Outcome {
        status_patch: patch_if_changed(&active.old, &status),
        events,
        requeue_after: active.requeue,
        error: error(active),
    }
}

/// The pass as the failed writes left it: a Pod that failed to be created is not there, and a Service
/// write that failed leaves the Service fields unchanged. A create the API server rejected as invalid
/// is a configuration error.
fn with_failures(mut active: Active, described: Vec<Failed>) -> Active {
    for Failed {
        target,
        action,
        message,
        invalid,
    } in described
    {
        let create = matches!(
            action,
            Action::CreatePod(_) | Action::CreateService(_) | Action::CreatePvc(_)
        );
        if matches!(action, Action::CreatePod(_)) {
            active.pod = None;
        }
        if target == Target::Service {
            active.service = ServiceState::Unchanged;
        }
        if create && invalid {
            active.invalid.push(message);
            continue;
        }
        match target {
            Target::Pod => {
                active.pod_error = Some(match active.pod_error.take() {
                    Some(earlier) => format!("{earlier}; {message}"),
                    None => message,
                });
            }
            Target::Service | Target::Pvc | Target::Sandbox => active.other_errors.push(message),
        }
    }
    active
}

/// The status after the pass: the Pod's IPs and node, the Service's name, and the conditions.
fn status(active: &Active) -> SandboxStatus {
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
    match &active.service {
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
    let (produced, absent) = compute(&condition_inputs(active));
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
    status
}

fn condition_inputs(active: &Active) -> Inputs<'_> {
    let service_exists = matches!(active.service, ServiceState::Present(_))
        || (active.service == ServiceState::Unchanged && !active.old.service.is_empty());
    Inputs {
        suspended: active.suspended,
        pod: active.pod.as_ref(),
        pod_owned: active.pod_owned,
        pod_error: active.pod_error.clone(),
        multiple_pods: active.multiple_pods.clone(),
        invalid: active.invalid.clone(),
        other_errors: active.other_errors.clone(),
        service_required: active.service_required_explicitly || service_exists,
        service_exists,
    }
}

/// Warnings for a newly seen multiple-Pods state or configuration error (not repeated while it lasts).
fn events(active: &Active) -> Vec<Event> {
    let old_ready = condition_list::find(&active.old.conditions, types::READY);
    let mut events = Vec::new();
    if let Some(multiple) = &active.multiple_pods
        && old_ready.map(|c| c.reason.as_str()) != Some(reason::MULTIPLE_PODS)
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: reasons::MULTIPLE_PODS,
            action: "Reconciling",
            note: multiple.clone(),
        });
    }
    let invalid = active.invalid.join("; ");
    if !invalid.is_empty()
        && !old_ready
            .is_some_and(|c| c.reason == reason::INVALID_CONFIGURATION && c.message == invalid)
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: reasons::INVALID_CONFIGURATION,
            action: "Reconciling",
            note: invalid,
        });
    }
    events
}

/// The errors to retry on. The multiple-Pods state is steady and watch-driven: it is reported, not
/// retried.
fn error(active: Active) -> Option<String> {
    let pod_error = active
        .pod_error
        .filter(|e| Some(e) != active.multiple_pods.as_ref());
    let errors: Vec<String> = pod_error.into_iter().chain(active.other_errors).collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}
