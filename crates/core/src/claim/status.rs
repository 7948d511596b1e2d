//! The claim's status: Ready (from the pass's outcome or mirrored from its Sandbox), Finished mirrored,
//! and the bound Sandbox's name and IPs, which a transient error never clears.

use agent_sandbox_api::conditions::{claim as reason, sandbox as sandbox_reason, types};
use agent_sandbox_api::extensions::{SandboxClaimStatus, SandboxedObjectStatus};
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self as condition_list, Desired};

/// How a claim pass went wrong, classified the way the Ready condition reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// The pool's SandboxTemplate does not exist (its name).
    TemplateNotFound(String),
    /// The referenced SandboxWarmPool does not exist (its name).
    WarmPoolNotFound(String),
    /// Lost a race adopting a warm Sandbox (detail).
    AdoptionConflict(String),
    /// A cold create found the Sandbox already there (the cache lags).
    CreatePending,
    /// `additionalPodMetadata` failed validation.
    InvalidMetadata(String),
    /// `spec.env` rejected by the template policy.
    EnvRejected(String),
    /// Expired, but the Sandbox to delete is not controlled by the claim.
    NotOwnedOnExpiry(String),
    /// Volume claim templates disallowed or invalid.
    VolumeClaimTemplates(String),
    /// Anything else.
    Other(String),
}

/// What the status computation needs from a pass.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The pass's error, if any.
    pub error: Option<ClaimError>,
    /// The claim's lifecycle has ended.
    pub expired: bool,
    /// The bound Sandbox, if the pass found or made one.
    pub sandbox: Option<&'a Sandbox>,
}

fn not_ready(r: &str, message: impl Into<String>) -> Desired {
    Desired::new(types::READY, "False", r, message)
}

/// The claim's Ready condition: computed from the pass, or the bound Sandbox's own, mirrored.
enum Ready<'a> {
    Computed(Desired),
    Mirrored(&'a Condition),
}

fn ready<'a>(inputs: &Inputs, sandbox_ready: Option<&'a Condition>) -> Ready<'a> {
    if let Some(error) = &inputs.error {
        return Ready::Computed(match error {
            ClaimError::TemplateNotFound(name) => not_ready(
                reason::TEMPLATE_NOT_FOUND,
                format!("SandboxTemplate {name:?} not found"),
            ),
            ClaimError::WarmPoolNotFound(name) => not_ready(
                reason::WARM_POOL_NOT_FOUND,
                format!("SandboxWarmPool {name:?} not found"),
            ),
            ClaimError::AdoptionConflict(detail) => not_ready(
                reason::ADOPTION_CONFLICT,
                format!("{detail}; the next pass retries from a converged view"),
            ),
            ClaimError::CreatePending => not_ready(
                reason::SANDBOX_CREATE_PENDING,
                "Sandbox already created; waiting for cache to converge",
            ),
            ClaimError::InvalidMetadata(m) => not_ready(reason::INVALID_METADATA, m.clone()),
            ClaimError::EnvRejected(m) => not_ready(reason::ENV_VARS_INJECTION_REJECTED, m.clone()),
            ClaimError::NotOwnedOnExpiry(m) => not_ready(
                reason::CLAIM_EXPIRED,
                format!("Claim expired. {m}; deletion skipped."),
            ),
            ClaimError::VolumeClaimTemplates(m) => {
                not_ready(reason::VOLUME_CLAIM_TEMPLATES_ERROR, m.clone())
            }
            ClaimError::Other(m) => not_ready(reason::RECONCILER_ERROR, format!("Error seen: {m}")),
        });
    }
    if inputs.expired {
        return Ready::Computed(not_ready(
            reason::CLAIM_EXPIRED,
            "Claim expired. Sandbox cleanup initiated.",
        ));
    }
    let Some(_) = inputs.sandbox else {
        return Ready::Computed(not_ready(reason::SANDBOX_MISSING, "Sandbox does not exist"));
    };
    match sandbox_ready {
        Some(c) if c.reason == sandbox_reason::SANDBOX_EXPIRED => Ready::Computed(not_ready(
            reason::SANDBOX_EXPIRED,
            "Underlying Sandbox resource has expired independently of the Claim.",
        )),
        Some(c) => Ready::Mirrored(c),
        None => Ready::Computed(not_ready(reason::SANDBOX_NOT_READY, "Sandbox is not ready")),
    }
}

fn find<'a>(sandbox: &'a Sandbox, type_: &str) -> Option<&'a Condition> {
    sandbox
        .status
        .as_ref()
        .and_then(|s| condition_list::find(&s.conditions, type_))
}

fn put(conditions: &mut Vec<Condition>, condition: Condition) {
    condition_list::remove(conditions, &condition.type_);
    conditions.push(condition);
}

/// The claim status after a pass, from the old one. Conditions are kept sorted by type.
pub fn compute(
    old: &SandboxClaimStatus,
    inputs: &Inputs,
    generation: Option<i64>,
    now: Timestamp,
) -> SandboxClaimStatus {
    if inputs.sandbox.is_none()
        && inputs.error == Some(ClaimError::CreatePending)
        && !old.sandbox.name.is_empty()
    {
        return old.clone();
    }
    let mut status = old.clone();
    match ready(inputs, inputs.sandbox.and_then(|s| find(s, types::READY))) {
        Ready::Computed(desired) => {
            condition_list::set(&mut status.conditions, desired, generation, now)
        }
        Ready::Mirrored(mirrored) => put(
            &mut status.conditions,
            Condition {
                observed_generation: generation,
                ..mirrored.clone()
            },
        ),
    }
    match inputs.sandbox {
        Some(sandbox) => match find(sandbox, types::FINISHED) {
            Some(finished) => put(&mut status.conditions, finished.clone()),
            None => condition_list::remove(&mut status.conditions, types::FINISHED),
        },
        None if !inputs.expired => condition_list::remove(&mut status.conditions, types::FINISHED),
        None => {}
    }
    match inputs.sandbox {
        Some(sandbox) => {
            status.sandbox = SandboxedObjectStatus {
                name: sandbox.metadata.name.clone().unwrap_or_default(),
                pod_ips: sandbox
                    .status
                    .as_ref()
                    .map(|s| s.pod_ips.clone())
                    .unwrap_or_default(),
            };
        }
        None if matches!(inputs.error, None | Some(ClaimError::NotOwnedOnExpiry(_))) => {
            status.sandbox = SandboxedObjectStatus::default();
        }
        // A transient error never clears the binding: that would force a second (cold) Sandbox.
        None => {}
    }
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status
}

#[cfg(test)]
mod tests {
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
                pod_ips: vec!["10.0.0.9".into()]
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
            },
            ..Default::default()
        };
        let status = run(&old, None, false, Some(&sandbox(vec![])));
        assert_eq!(status.sandbox.pod_ips, ["10.0.0.9"]);
    }
}
