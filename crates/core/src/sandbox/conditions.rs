//! The Sandbox's conditions: Suspended, Finished, PodScheduled and Ready, computed from one pass.

use agent_sandbox_api::conditions::{sandbox as reason, types};
use k8s_openapi::api::core::v1::Pod;

use crate::conditions::Desired;

/// What the condition computation needs to know about a pass.
#[derive(Clone, Debug, Default)]
pub struct Inputs<'a> {
    /// `operatingMode` is `Suspended`.
    pub suspended: bool,
    /// The Pod the pass ended with (owned, or a foreign one left alone while suspended).
    pub pod: Option<&'a Pod>,
    /// The Pod is controlled by this Sandbox.
    pub pod_owned: bool,
    /// The pass could not establish the Pod (lookup failed, refused adoption, more than one owned Pod...).
    pub pod_error: Option<String>,
    /// More than one Pod is controlled by the Sandbox (the text of that error).
    pub multiple_pods: Option<String>,
    /// Permanent configuration errors (see the `configuration` module).
    pub invalid: Vec<String>,
    /// Errors from PVCs, the Service or the Sandbox's own metadata.
    pub other_errors: Vec<String>,
    /// The Service counts towards readiness.
    pub service_required: bool,
    /// The Service exists.
    pub service_exists: bool,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn pod_condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn has_ips(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ips.as_ref())
        .is_some_and(|ips| !ips.is_empty())
}

fn suspended(inputs: &Inputs) -> Desired {
    let d = |status, r: &str, m: &str| Desired::new(types::SUSPENDED, status, r, m);
    match (inputs.suspended, inputs.pod) {
        (false, _) => d("False", reason::NOT_SUSPENDED, "Sandbox is not suspended"),
        (true, None) if inputs.pod_error.is_some() => d(
            "Unknown",
            reason::POD_STATE_UNKNOWN,
            "Pod state is unknown. Sandbox suspension cannot be confirmed",
        ),
        (true, None) => d(
            "True",
            reason::POD_TERMINATED,
            "Pod has been terminated. Sandbox is suspended",
        ),
        (true, Some(_)) if !inputs.pod_owned => d(
            "False",
            reason::POD_NOT_OWNED,
            "Refused to delete pod because it is not owned by this sandbox",
        ),
        (true, Some(_)) => d(
            "False",
            reason::POD_TERMINATING,
            "Pod is terminating. Sandbox is suspending",
        ),
    }
}

fn terminal(pod: &Pod) -> Option<(&'static str, &'static str)> {
    match phase(pod) {
        "Succeeded" => Some((reason::POD_SUCCEEDED, "Pod completed successfully")),
        "Failed" => Some((reason::POD_FAILED, "Pod failed")),
        _ => None,
    }
}

fn finished(inputs: &Inputs) -> Option<Desired> {
    let pod = inputs.pod.filter(|_| inputs.pod_owned)?;
    terminal(pod).map(|(r, m)| Desired::new(types::FINISHED, "True", r, m))
}

fn pod_scheduled(inputs: &Inputs) -> Option<Desired> {
    let unknown = |message: &str| {
        Some(Desired::new(
            types::POD_SCHEDULED,
            "Unknown",
            reason::POD_SCHEDULING_UNKNOWN,
            message,
        ))
    };
    match inputs.pod {
        None if inputs.pod_error.is_some() => {
            unknown("Pod state is unknown. Pod scheduling cannot be determined")
        }
        None => None,
        Some(_) if !inputs.pod_owned => None,
        Some(pod) => match pod_condition(pod, types::POD_SCHEDULED) {
            None => unknown("Pod has not reported a PodScheduled condition yet"),
            Some(c) => {
                let status = match c.status.as_str() {
                    "True" => "True",
                    "False" => "False",
                    _ => "Unknown",
                };
                let fallback = if status == "True" {
                    reason::POD_SCHEDULED
                } else {
                    reason::POD_SCHEDULING_UNKNOWN
                };
                let r = c
                    .reason
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .unwrap_or(fallback);
                Some(Desired::new(
                    types::POD_SCHEDULED,
                    status,
                    r,
                    c.message.clone().unwrap_or_default(),
                ))
            }
        },
    }
}

fn ready(inputs: &Inputs) -> Desired {
    let not_ready = |r: &str, m: String| Desired::new(types::READY, "False", r, m);
    if let Some(multiple) = &inputs.multiple_pods {
        return not_ready(reason::MULTIPLE_PODS, multiple.clone());
    }
    if !inputs.invalid.is_empty() {
        return not_ready(reason::INVALID_CONFIGURATION, inputs.invalid.join("; "));
    }
    let errors: Vec<&str> = inputs
        .pod_error
        .iter()
        .chain(&inputs.other_errors)
        .map(String::as_str)
        .collect();
    if !errors.is_empty() {
        return not_ready(
            reason::RECONCILER_ERROR,
            format!("Error seen: {}", errors.join("; ")),
        );
    }
    if inputs.suspended {
        let message = if inputs.pod.is_some() {
            "Sandbox is suspending"
        } else {
            "Sandbox is suspended"
        };
        return not_ready(reason::SANDBOX_SUSPENDED, message.into());
    }
    if let Some((r, m)) = inputs.pod.and_then(terminal) {
        return not_ready(r, m.into());
    }
    let (pod_ready, mut message) = match inputs.pod {
        None => (false, "Pod does not exist".to_owned()),
        Some(pod) if phase(pod) != "Running" => {
            (false, format!("Pod exists with phase: {}", phase(pod)))
        }
        Some(pod) if pod_condition(pod, types::READY).is_none_or(|c| c.status != "True") => {
            (false, "Pod is Running but not Ready".to_owned())
        }
        Some(pod) if !has_ips(pod) => (false, "Pod is Ready but has no podIPs yet".to_owned()),
        Some(_) => (true, "Pod is Ready".to_owned()),
    };
    if inputs.service_required {
        message.push_str(if inputs.service_exists {
            "; Service Exists"
        } else {
            "; Service does not exist"
        });
    }
    if pod_ready && (!inputs.service_required || inputs.service_exists) {
        Desired::new(types::READY, "True", reason::DEPENDENCIES_READY, message)
    } else {
        not_ready(reason::DEPENDENCIES_NOT_READY, message)
    }
}

/// The conditions of a pass in upstream's order (Suspended, Finished, PodScheduled, Ready), and the
/// optional types this pass did not produce (to be removed).
pub fn compute(inputs: &Inputs) -> (Vec<Desired>, Vec<&'static str>) {
    let mut produced = vec![suspended(inputs)];
    let mut absent = Vec::new();
    match finished(inputs) {
        Some(c) => produced.push(c),
        None => absent.push(types::FINISHED),
    }
    match pod_scheduled(inputs) {
        Some(c) => produced.push(c),
        None => absent.push(types::POD_SCHEDULED),
    }
    produced.push(ready(inputs));
    (produced, absent)
}
