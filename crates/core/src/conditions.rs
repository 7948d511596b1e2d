//! `metav1.Condition` list updates with apimachinery's `SetStatusCondition` semantics, and the one
//! reading of them every controller shares: whether a Sandbox is Ready.

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition without its transition time: what a decision wants the condition to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Desired {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Inserts or updates a condition: `lastTransitionTime` changes only when the status changes (or on
/// insert); reason, message and observedGeneration are always overwritten; list order is kept.
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: Desired,
    generation: Option<i64>,
    now: Timestamp,
) {
    match conditions.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(existing) => {
            if existing.status != desired.status {
                existing.status = desired.status.to_owned();
                existing.last_transition_time = Time(now);
            }
            existing.reason = desired.reason;
            existing.message = desired.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: desired.type_.to_owned(),
            status: desired.status.to_owned(),
            reason: desired.reason,
            message: desired.message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Removes the condition of `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when `conditions` hold `Ready=True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, types::READY).is_some_and(|c| c.status == "True")
}

/// True when the Sandbox's status says `Ready=True`.
pub fn sandbox_is_ready(sandbox: &Sandbox) -> bool {
    sandbox
        .status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    /// A desired condition whose message is its reason in lower case.
    fn desired(type_: &'static str, status: &'static str, reason: &str) -> Desired {
        Desired::new(type_, status, reason, reason.to_lowercase())
    }

    /// [`set`] at second `second`.
    fn set_at(list: &mut Vec<Condition>, desired: Desired, generation: Option<i64>, second: i64) {
        set(list, desired, generation, at(second));
    }

    #[test]
    fn insert_appends_with_now() {
        let mut list = Vec::new();
        set_at(&mut list, desired("Ready", "False", "A"), Some(1), 10);
        set_at(&mut list, desired("Other", "True", "B"), Some(1), 11);
        assert_eq!(
            list.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Other"]
        );
        assert_eq!(list[0].last_transition_time, Time(at(10)));
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut list = Vec::new();
        set_at(&mut list, desired("Ready", "False", "A"), Some(1), 10);
        set_at(&mut list, desired("Ready", "False", "B"), Some(2), 20);
        assert_eq!(list[0].last_transition_time, Time(at(10)));
        assert_eq!(
            (list[0].reason.as_str(), list[0].message.as_str()),
            ("B", "b")
        );
        assert_eq!(list[0].observed_generation, Some(2));
        set_at(&mut list, desired("Ready", "True", "B"), Some(2), 30);
        assert_eq!(list[0].last_transition_time, Time(at(30)));
    }

    #[test]
    fn remove_and_find() {
        let mut list = Vec::new();
        set_at(&mut list, desired("Ready", "False", "A"), None, 1);
        assert!(find(&list, "Ready").is_some());
        remove(&mut list, "Ready");
        assert!(find(&list, "Ready").is_none());
    }
}
