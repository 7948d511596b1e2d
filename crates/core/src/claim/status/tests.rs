//! The claim status table: Ready reasons, mirrored conditions, and the binding a transient error keeps.

use agent_sandbox_api::v1beta1::SandboxStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("valid")
}

fn condition(type_: &str, status: &str, reason: &str, when: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{reason} message"),
        observed_generation: Some(9),
        last_transition_time: Time(at(when)),
    }
}

fn sandbox(conditions: Vec<Condition>) -> Sandbox {
    let mut s = Sandbox::new("claim-sb", Default::default());
    s.status = Some(SandboxStatus {
        conditions,
        pod_ips: vec!["10.0.0.9".into()],
        ..Default::default()
    });
    s
}

fn run(
    old: &SandboxClaimStatus,
    error: Option<ClaimError>,
    expired: bool,
    sandbox: Option<&Sandbox>,
) -> SandboxClaimStatus {
    compute(
        old,
        &Inputs {
            error,
            expired,
            sandbox,
        },
        Some(2),
        at(100),
    )
}

fn ready_of(status: &SandboxClaimStatus) -> (String, String, String) {
    let c = condition_list::find(&status.conditions, "Ready").expect("Ready");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn the_sandbox_ready_condition_is_mirrored_verbatim_with_the_claim_generation() {
    let sb = sandbox(vec![condition("Ready", "True", "DependenciesReady", 50)]);
    let status = run(&Default::default(), None, false, Some(&sb));
    let ready = condition_list::find(&status.conditions, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "DependenciesReady")
    );
    assert_eq!(
        ready.last_transition_time,
        Time(at(50)),
        "transition time copied"
    );
    assert_eq!(ready.observed_generation, Some(2));
    assert_eq!(
        status.sandbox,
        SandboxedObjectStatus {
            name: "claim-sb".into(),
            pod_ips: vec!["10.0.0.9".into()],
            service_fqdn: String::new(),
        }
    );
}

#[test]
fn ready_reasons_follow_the_table() {
    type Case = (
        Option<ClaimError>,
        bool,
        Option<Sandbox>,
        (&'static str, &'static str),
    );
    let cases: Vec<Case> = vec![
        (
            Some(ClaimError::TemplateNotFound("t".into())),
            false,
            None,
            ("TemplateNotFound", "SandboxTemplate \"t\" not found"),
        ),
        (
            Some(ClaimError::WarmPoolNotFound("p".into())),
            false,
            None,
            ("WarmPoolNotFound", "SandboxWarmPool \"p\" not found"),
        ),
        (
            Some(ClaimError::AdoptionConflict("lost".into())),
            false,
            None,
            (
                "AdoptionConflict",
                "lost; the next pass retries from a converged view",
            ),
        ),
        (
            Some(ClaimError::CreatePending),
            false,
            None,
            (
                "SandboxCreatePending",
                "Sandbox already created; waiting for cache to converge",
            ),
        ),
        (
            Some(ClaimError::InvalidMetadata(
                "invalid additionalPodMetadata: bad".into(),
            )),
            false,
            None,
            ("InvalidMetadata", "invalid additionalPodMetadata: bad"),
        ),
        (
            Some(ClaimError::EnvRejected("rejected".into())),
            false,
            None,
            ("EnvVarsInjectionRejected", "rejected"),
        ),
        (
            Some(ClaimError::VolumeClaimTemplates("vct".into())),
            false,
            None,
            ("VolumeClaimTemplatesError", "vct"),
        ),
        (
            Some(ClaimError::Other("boom".into())),
            false,
            Some(sandbox(vec![condition("Ready", "True", "Ready", 1)])),
            ("ReconcilerError", "Error seen: boom"),
        ),
        (
            None,
            true,
            Some(sandbox(vec![condition("Ready", "True", "Ready", 1)])),
            ("ClaimExpired", "Claim expired. Sandbox cleanup initiated."),
        ),
        (
            Some(ClaimError::Other("boom".into())),
            false,
            None,
            ("ReconcilerError", "Error seen: boom"),
        ),
        (
            Some(ClaimError::NotOwnedOnExpiry("not ours".into())),
            true,
            None,
            ("ClaimExpired", "Claim expired. not ours; deletion skipped."),
        ),
        (
            None,
            true,
            None,
            ("ClaimExpired", "Claim expired. Sandbox cleanup initiated."),
        ),
        (
            None,
            false,
            None,
            ("SandboxMissing", "Sandbox does not exist"),
        ),
        (
            None,
            false,
            Some(sandbox(vec![])),
            ("SandboxNotReady", "Sandbox is not ready"),
        ),
        (
            None,
            false,
            Some(sandbox(vec![condition(
                "Ready",
                "False",
                "SandboxExpired",
                1,
            )])),
            (
                "SandboxExpired",
                "Underlying Sandbox resource has expired independently of the Claim.",
            ),
        ),
    ];
    for (error, expired, sb, (r, m)) in cases {
        let status = run(&Default::default(), error.clone(), expired, sb.as_ref());
        assert_eq!(
            ready_of(&status),
            ("False".into(), r.into(), m.into()),
            "{error:?}"
        );
    }
}

#[test]
fn a_transient_error_never_clears_the_bound_sandbox() {
    let old = SandboxClaimStatus {
        sandbox: SandboxedObjectStatus {
            name: "bound".into(),
            pod_ips: vec![],
            ..Default::default()
        },
        ..Default::default()
    };
    let status = run(&old, Some(ClaimError::Other("timeout".into())), false, None);
    assert_eq!(status.sandbox.name, "bound");
    let status = run(&old, None, false, None);
    assert_eq!(
        status.sandbox.name, "",
        "cleared when the Sandbox is really gone"
    );
    let status = run(
        &old,
        Some(ClaimError::NotOwnedOnExpiry("x".into())),
        true,
        None,
    );
    assert_eq!(status.sandbox.name, "", "cleared when it is not ours");
}

#[test]
fn cache_lag_on_a_cold_create_changes_nothing() {
    let old = SandboxClaimStatus {
        sandbox: SandboxedObjectStatus {
            name: "c".into(),
            pod_ips: vec![],
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(run(&old, Some(ClaimError::CreatePending), false, None), old);
}

#[test]
fn finished_is_mirrored_removed_and_kept_after_expiry() {
    let sb = sandbox(vec![
        condition("Finished", "True", "PodSucceeded", 7),
        condition("Ready", "False", "PodSucceeded", 7),
    ]);
    let status = run(&Default::default(), None, false, Some(&sb));
    assert_eq!(
        condition_list::find(&status.conditions, "Finished")
            .map(|c| c.last_transition_time.clone()),
        Some(Time(at(7)))
    );
    assert_eq!(
        status
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect::<Vec<_>>(),
        ["Finished", "Ready"],
        "sorted by type"
    );
    let kept = run(&status, None, true, None);
    assert!(
        condition_list::find(&kept.conditions, "Finished").is_some(),
        "kept once expired and the Sandbox is gone"
    );
    let removed = run(&status, None, false, None);
    assert!(condition_list::find(&removed.conditions, "Finished").is_none());
    let gone = run(&status, None, false, Some(&sandbox(vec![])));
    assert!(
        condition_list::find(&gone.conditions, "Finished").is_none(),
        "the Sandbox has none any more"
    );
}

#[test]
fn no_transient_error_clears_the_bound_sandbox() {
    let old = SandboxClaimStatus {
        sandbox: SandboxedObjectStatus {
            name: "bound".into(),
            pod_ips: vec!["10.0.0.1".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    for error in [
        ClaimError::TemplateNotFound("t".into()),
        ClaimError::WarmPoolNotFound("p".into()),
        ClaimError::AdoptionConflict("lost".into()),
        ClaimError::InvalidMetadata("m".into()),
        ClaimError::EnvRejected("e".into()),
        ClaimError::VolumeClaimTemplates("v".into()),
        ClaimError::Other("timeout".into()),
    ] {
        let status = run(&old, Some(error.clone()), false, None);
        assert_eq!(status.sandbox, old.sandbox, "{error:?}");
    }
}

#[test]
fn a_computed_ready_condition_keeps_its_transition_time_while_its_status_holds() {
    let first = run(&Default::default(), None, false, None);
    let later = compute(
        &first,
        &Inputs {
            error: Some(ClaimError::Other("x".into())),
            expired: false,
            sandbox: None,
        },
        Some(3),
        at(500),
    );
    let ready = condition_list::find(&later.conditions, "Ready").expect("Ready");
    assert_eq!(
        (
            ready.reason.as_str(),
            ready.last_transition_time.clone(),
            ready.observed_generation
        ),
        ("ReconcilerError", Time(at(100)), Some(3)),
        "False stays False: only reason, message and generation change"
    );
}

#[test]
fn the_bound_sandbox_ips_follow_the_sandbox() {
    let old = SandboxClaimStatus {
        sandbox: SandboxedObjectStatus {
            name: "claim-sb".into(),
            pod_ips: vec!["10.0.0.1".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let status = run(&old, None, false, Some(&sandbox(vec![])));
    assert_eq!(status.sandbox.pod_ips, ["10.0.0.9"]);
}

#[test]
fn the_bound_sandbox_service_fqdn_is_mirrored_once_it_appears() {
    let mut sb = sandbox(vec![condition(
        "Ready",
        "False",
        "DependenciesNotReady",
        50,
    )]);
    let status = run(&Default::default(), None, false, Some(&sb));
    assert_eq!(status.sandbox.service_fqdn, "", "no Service yet");
    assert!(
        !serde_json::to_value(&status)
            .expect("serialisable")
            .to_string()
            .contains("serviceFQDN"),
        "omitted while empty"
    );
    if let Some(s) = sb.status.as_mut() {
        s.service_fqdn = "claim-sb.ns.svc.cluster.local".into();
    }
    let status = run(&status, None, false, Some(&sb));
    assert_eq!(status.sandbox.service_fqdn, "claim-sb.ns.svc.cluster.local");
    assert_eq!(
        serde_json::to_value(&status).expect("serialisable")["sandbox"]["serviceFQDN"],
        "claim-sb.ns.svc.cluster.local"
    );
}

#[test]
fn the_fail_fast_reasons_of_the_sandbox_reach_the_claim_verbatim() {
    for (reason, message) in [
        (
            "InvalidConfiguration",
            "failed to create pod: Pod \"x\" is invalid",
        ),
        ("PodFailed", "Pod failed"),
        ("PodSucceeded", "Pod completed successfully"),
    ] {
        let mut ready = condition("Ready", "False", reason, 50);
        ready.message = message.into();
        let status = run(
            &Default::default(),
            None,
            false,
            Some(&sandbox(vec![ready])),
        );
        assert_eq!(
            ready_of(&status),
            ("False".into(), reason.into(), message.into()),
            "{reason}"
        );
    }
}
