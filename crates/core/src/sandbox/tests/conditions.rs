//! TestComputeConditions: the pure condition computation (controllers.md §2.6), cases 1–16.

use k8s_openapi::api::core::v1::Pod;

use super::super::conditions::{Inputs, compute};
use super::world::*;

/// A computed condition as (type, status, reason, message).
type Row = (String, String, String, String);

/// The computed conditions, and the removed optional types.
fn run(inputs: Inputs) -> (Vec<Row>, Vec<&'static str>) {
    let (produced, absent) = compute(&inputs);
    let produced = produced
        .into_iter()
        .map(|d| (d.type_.to_owned(), d.status.to_owned(), d.reason, d.message))
        .collect();
    (produced, absent)
}

fn c(t: &str, s: &str, r: &str, m: &str) -> Row {
    (t.into(), s.into(), r.into(), m.into())
}

fn running(pod: Option<&Pod>) -> Inputs<'_> {
    Inputs {
        pod,
        pod_owned: pod.is_some(),
        service_required: true,
        service_exists: true,
        ..Default::default()
    }
}

#[test]
fn case_01_running_service_required_no_pod_no_service() {
    let inputs = Inputs {
        service_required: true,
        ..Default::default()
    };
    let (produced, absent) = run(inputs);
    assert_eq!(
        produced,
        vec![
            c(
                "Suspended",
                "False",
                "NotSuspended",
                "Sandbox is not suspended"
            ),
            c(
                "Ready",
                "False",
                "DependenciesNotReady",
                "Pod does not exist; Service does not exist"
            ),
        ]
    );
    assert_eq!(absent, vec!["Finished", "PodScheduled"]);
}

#[test]
fn case_02_service_exists_unset_no_pod() {
    let (produced, _) = run(running(None));
    assert_eq!(
        produced[1],
        c(
            "Ready",
            "False",
            "DependenciesNotReady",
            "Pod does not exist; Service Exists"
        )
    );
}

#[test]
fn case_03_owned_pod_pending() {
    let pod = with_phase(owned_pod(NAME), "Pending");
    let (produced, _) = run(running(Some(&pod)));
    assert_eq!(
        produced[1..],
        [
            c(
                "PodScheduled",
                "Unknown",
                "PodSchedulingUnknown",
                "Pod has not reported a PodScheduled condition yet"
            ),
            c(
                "Ready",
                "False",
                "DependenciesNotReady",
                "Pod exists with phase: Pending; Service Exists"
            ),
        ]
    );
}

#[test]
fn case_04_running_not_ready_with_ip_scheduled() {
    let pod = with_pod_condition(
        with_phase(owned_pod(NAME), "Running"),
        "Ready",
        "False",
        None,
        None,
    );
    let pod = with_ip(
        with_pod_condition(pod, "PodScheduled", "True", None, None),
        "10.0.0.1",
    );
    let (produced, _) = run(running(Some(&pod)));
    assert_eq!(
        produced[1..],
        [
            c("PodScheduled", "True", "PodScheduled", ""),
            c(
                "Ready",
                "False",
                "DependenciesNotReady",
                "Pod is Running but not Ready; Service Exists"
            ),
        ]
    );
}

#[test]
fn case_05_ready_without_ips() {
    let pod = with_pod_condition(
        with_phase(owned_pod(NAME), "Running"),
        "Ready",
        "True",
        None,
        None,
    );
    let (produced, _) = run(running(Some(&pod)));
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "DependenciesNotReady",
            "Pod is Ready but has no podIPs yet; Service Exists"
        ))
    );
}

#[test]
fn case_06_suspended_owned_pod_present() {
    let pod = owned_pod(NAME);
    let inputs = Inputs {
        suspended: true,
        ..running(Some(&pod))
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced[0],
        c(
            "Suspended",
            "False",
            "PodTerminating",
            "Pod is terminating. Sandbox is suspending"
        )
    );
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "SandboxSuspended",
            "Sandbox is suspending"
        ))
    );
}

#[test]
fn case_06b_suspended_unowned_pod() {
    let pod = Pod {
        metadata: meta(NAME, None, &[]),
        ..Default::default()
    };
    let inputs = Inputs {
        suspended: true,
        pod: Some(&pod),
        pod_owned: false,
        ..Default::default()
    };
    let (produced, absent) = run(inputs);
    assert_eq!(
        produced[0],
        c(
            "Suspended",
            "False",
            "PodNotOwned",
            "Refused to delete pod because it is not owned by this sandbox"
        )
    );
    assert!(absent.contains(&"PodScheduled"));
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "SandboxSuspended",
            "Sandbox is suspending"
        ))
    );
}

#[test]
fn case_06c_suspended_owned_pod_delete_error() {
    let pod = owned_pod(NAME);
    let inputs = Inputs {
        suspended: true,
        pod_error: Some("failed to delete pod: boom".into()),
        ..running(Some(&pod))
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced[0].2, "PodTerminating",
        "a present pod is terminating, not unknown"
    );
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "ReconcilerError",
            "Error seen: failed to delete pod: boom"
        ))
    );
}

#[test]
fn case_07_suspended_no_pod() {
    let inputs = Inputs {
        suspended: true,
        ..Default::default()
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced[0],
        c(
            "Suspended",
            "True",
            "PodTerminated",
            "Pod has been terminated. Sandbox is suspended"
        )
    );
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "SandboxSuspended",
            "Sandbox is suspended"
        ))
    );
}

#[test]
fn case_07b_suspended_no_pod_lookup_error() {
    let inputs = Inputs {
        suspended: true,
        pod_error: Some("pod get failed: timeout".into()),
        ..Default::default()
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced,
        vec![
            c(
                "Suspended",
                "Unknown",
                "PodStateUnknown",
                "Pod state is unknown. Sandbox suspension cannot be confirmed"
            ),
            c(
                "PodScheduled",
                "Unknown",
                "PodSchedulingUnknown",
                "Pod state is unknown. Pod scheduling cannot be determined"
            ),
            c(
                "Ready",
                "False",
                "ReconcilerError",
                "Error seen: pod get failed: timeout"
            ),
        ]
    );
}

#[test]
fn case_07c_running_no_pod_lookup_error() {
    let inputs = Inputs {
        pod_error: Some("pod get failed: timeout".into()),
        ..Default::default()
    };
    let (produced, _) = run(inputs);
    assert_eq!(produced[0].2, "NotSuspended");
    assert_eq!(produced[1].1, "Unknown");
    assert_eq!(produced[2].2, "ReconcilerError");
}

#[test]
fn case_08_resuming_no_pod() {
    // The old Suspended=True condition does not matter: conditions are recomputed from this pass.
    let (produced, _) = run(Inputs::default());
    assert_eq!(
        produced[0],
        c(
            "Suspended",
            "False",
            "NotSuspended",
            "Sandbox is not suspended"
        )
    );
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "DependenciesNotReady",
            "Pod does not exist"
        ))
    );
}

#[test]
fn case_09_pod_phase_unknown() {
    let pod = with_phase(owned_pod(NAME), "Unknown");
    let (produced, _) = run(running(Some(&pod)));
    assert_eq!(
        produced.last().map(|c| c.3.as_str()),
        Some("Pod exists with phase: Unknown; Service Exists")
    );
}

#[test]
fn case_10_owned_pod_failed() {
    let pod = with_phase(owned_pod(NAME), "Failed");
    let (produced, _) = run(running(Some(&pod)));
    assert!(produced.contains(&c("Finished", "True", "PodFailed", "Pod failed")));
    assert_eq!(
        produced.last(),
        Some(&c("Ready", "False", "PodFailed", "Pod failed"))
    );
}

#[test]
fn case_11_owned_pod_succeeded() {
    let pod = with_phase(owned_pod(NAME), "Succeeded");
    let (produced, _) = run(running(Some(&pod)));
    assert!(produced.contains(&c(
        "Finished",
        "True",
        "PodSucceeded",
        "Pod completed successfully"
    )));
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "PodSucceeded",
            "Pod completed successfully"
        ))
    );
}

#[test]
fn case_11b_foreign_succeeded_pod_while_suspended() {
    let pod = with_phase(
        Pod {
            metadata: meta(NAME, Some("other"), &[]),
            ..Default::default()
        },
        "Succeeded",
    );
    let inputs = Inputs {
        suspended: true,
        pod: Some(&pod),
        pod_owned: false,
        ..Default::default()
    };
    let (produced, absent) = run(inputs);
    assert!(absent.contains(&"Finished"));
    assert_eq!(produced[0].2, "PodNotOwned");
}

#[test]
fn case_12_generic_reconcile_error() {
    let inputs = Inputs {
        other_errors: vec!["something went wrong".into()],
        ..Default::default()
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced.last(),
        Some(&c(
            "Ready",
            "False",
            "ReconcilerError",
            "Error seen: something went wrong"
        ))
    );
}

fn scheduled(
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> (String, String, String, String) {
    let pod = with_pod_condition(
        with_phase(owned_pod(NAME), "Pending"),
        "PodScheduled",
        status,
        reason,
        message,
    );
    let (produced, _) = run(running(Some(&pod)));
    produced
        .into_iter()
        .find(|c| c.0 == "PodScheduled")
        .expect("PodScheduled produced")
}

#[test]
fn case_13_unschedulable_is_mirrored() {
    assert_eq!(
        scheduled(
            "False",
            Some("Unschedulable"),
            Some("0/3 nodes are available")
        ),
        c(
            "PodScheduled",
            "False",
            "Unschedulable",
            "0/3 nodes are available"
        )
    );
}

#[test]
fn case_14_scheduling_gated_is_mirrored() {
    assert_eq!(
        scheduled("False", Some("SchedulingGated"), Some("gated")),
        c("PodScheduled", "False", "SchedulingGated", "gated")
    );
}

#[test]
fn case_15_empty_reason_becomes_scheduling_unknown() {
    assert_eq!(
        scheduled("False", None, None),
        c("PodScheduled", "False", "PodSchedulingUnknown", "")
    );
}

#[test]
fn case_16_multiple_pods_wins_over_other_errors() {
    let multiple =
        "multiple Pods (2) are controlled by this Sandbox; refusing to choose or create a Pod";
    let inputs = Inputs {
        pod_error: Some(multiple.into()),
        multiple_pods: Some(multiple.into()),
        other_errors: vec!["service get failed: x".into()],
        ..Default::default()
    };
    let (produced, _) = run(inputs);
    assert_eq!(
        produced.last(),
        Some(&c("Ready", "False", "MultiplePods", multiple))
    );
}
