//! When a claim's lifecycle ends: the earlier of `shutdownTime` and its Finished time plus the TTL.

use std::time::Duration;

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::extensions::ClaimLifecycle;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Expiry state of a claim at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimExpiry {
    /// No lifecycle, or nothing set that can end it yet.
    Never,
    /// Ends after this long (no minimum: the claim controller requeues exactly at the deadline).
    In(Duration),
    /// Ended.
    Expired,
}

/// The claim's expiry, using its own (mirrored) Finished condition for the TTL.
pub fn check(
    lifecycle: Option<&ClaimLifecycle>,
    conditions: &[Condition],
    now: Timestamp,
) -> ClaimExpiry {
    let Some(lifecycle) = lifecycle else {
        return ClaimExpiry::Never;
    };
    let finished_at = conditions
        .iter()
        .find(|c| c.type_ == types::FINISHED && c.status == "True")
        .map(|c| c.last_transition_time.0)
        .filter(|at| at.as_second() != 0);
    let ttl_deadline = match (lifecycle.ttl_seconds_after_finished, finished_at) {
        (Some(ttl), Some(at)) => at
            .checked_add(SignedDuration::from_secs(i64::from(ttl)))
            .ok(),
        _ => None,
    };
    let shutdown = lifecycle.shutdown_time.as_ref().map(|t| t.0);
    let deadline = match (shutdown, ttl_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match deadline {
        None => ClaimExpiry::Never,
        Some(at) if now >= at => ClaimExpiry::Expired,
        Some(at) => ClaimExpiry::In(Duration::try_from(at.duration_since(now)).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    fn finished(status: &str, when: i64) -> Condition {
        Condition {
            type_: "Finished".into(),
            status: status.into(),
            reason: "PodSucceeded".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(at(when)),
        }
    }

    fn lifecycle(shutdown: Option<i64>, ttl: Option<i32>) -> ClaimLifecycle {
        ClaimLifecycle {
            shutdown_time: shutdown.map(|s| Time(at(s))),
            ttl_seconds_after_finished: ttl,
            shutdown_policy: None,
        }
    }

    #[test]
    fn no_lifecycle_never_expires() {
        assert_eq!(
            check(None, &[finished("True", 0)], at(10_000)),
            ClaimExpiry::Never
        );
        assert_eq!(
            check(Some(&lifecycle(None, None)), &[], at(0)),
            ClaimExpiry::Never
        );
    }

    #[test]
    fn shutdown_time_is_exact_and_never_early() {
        let l = lifecycle(Some(100), None);
        assert_eq!(
            check(Some(&l), &[], at(40)),
            ClaimExpiry::In(Duration::from_secs(60))
        );
        assert_eq!(check(Some(&l), &[], at(100)), ClaimExpiry::Expired);
    }

    #[test]
    fn ttl_counts_from_the_mirrored_finished_condition() {
        let l = lifecycle(None, Some(30));
        assert_eq!(
            check(Some(&l), &[], at(1000)),
            ClaimExpiry::Never,
            "not finished yet"
        );
        assert_eq!(
            check(Some(&l), &[finished("False", 0)], at(1000)),
            ClaimExpiry::Never
        );
        assert_eq!(
            check(Some(&l), &[finished("True", 10)], at(20)),
            ClaimExpiry::In(Duration::from_secs(20))
        );
        assert_eq!(
            check(Some(&l), &[finished("True", 10)], at(40)),
            ClaimExpiry::Expired
        );
    }

    #[test]
    fn the_earlier_deadline_wins() {
        let l = lifecycle(Some(100), Some(30));
        assert_eq!(
            check(Some(&l), &[finished("True", 10)], at(0)),
            ClaimExpiry::In(Duration::from_secs(40))
        );
        assert_eq!(
            check(Some(&l), &[finished("True", 90)], at(0)),
            ClaimExpiry::In(Duration::from_secs(100))
        );
    }

    #[test]
    fn a_zero_ttl_expires_as_soon_as_the_claim_is_finished() {
        let l = lifecycle(None, Some(0));
        assert_eq!(
            check(Some(&l), &[finished("True", 10)], at(10)),
            ClaimExpiry::Expired
        );
        assert_eq!(
            check(Some(&l), &[finished("True", 10)], at(9)),
            ClaimExpiry::In(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_finished_condition_without_a_transition_time_does_not_start_the_ttl() {
        let l = lifecycle(None, Some(0));
        let mut unset = finished("True", 0);
        unset.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        assert_eq!(check(Some(&l), &[unset], at(0)), ClaimExpiry::Never);
    }

    #[test]
    fn a_past_shutdown_time_expires_even_when_the_ttl_is_later() {
        let l = lifecycle(Some(5), Some(3600));
        assert_eq!(
            check(Some(&l), &[finished("True", 0)], at(6)),
            ClaimExpiry::Expired
        );
    }
}
