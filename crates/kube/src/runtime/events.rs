//! Publishes the decision core's events as Kubernetes Events (events.k8s.io/v1) about an object.

use agent_sandbox_core::events::{Event, EventType};
use kube::Client;
use kube::Resource;
use kube::runtime::events::{self, Recorder, Reporter};

/// Reporting controller name on every Event.
pub const REPORTER: &str = "sandbox-controller";

/// Publishes Events as `sandbox-controller`, instance `instance` (the Pod name or identity).
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

/// The kube-runtime form of a core event (Events API limits: note ≤ 1 kB).
pub fn to_kube_event(event: &Event) -> events::Event {
    let mut note = event.note.clone();
    if note.len() > 1024 {
        let mut cut = 1021;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    events::Event {
        type_: match event.type_ {
            EventType::Normal => events::EventType::Normal,
            EventType::Warning => events::EventType::Warning,
        },
        reason: event.reason.to_owned(),
        note: Some(note),
        action: event.action.to_owned(),
        secondary: None,
    }
}

impl EventPublisher {
    /// A publisher using `client`.
    pub fn new(client: Client, instance: String) -> Self {
        let reporter = Reporter {
            controller: REPORTER.to_owned(),
            instance: Some(instance),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes `events` about `object`; a failure is logged, never fatal.
    pub async fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let reference = object.object_ref(&());
        for event in events {
            if let Err(error) = self
                .recorder
                .publish(&to_kube_event(event), &reference)
                .await
            {
                tracing::warn!(reason = event.reason, %error, "failed to publish event");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_events_map_type_reason_action_and_note() {
        let event = to_kube_event(&Event {
            type_: EventType::Warning,
            reason: "MultiplePods",
            action: "Reconciling",
            note: "two pods".into(),
        });
        assert_eq!(event.type_, events::EventType::Warning);
        assert_eq!(event.reason, "MultiplePods");
        assert_eq!(event.action, "Reconciling");
        assert_eq!(event.note.as_deref(), Some("two pods"));
    }

    #[test]
    fn long_notes_are_cut_to_the_events_api_limit() {
        let event = to_kube_event(&Event {
            type_: EventType::Normal,
            reason: "R",
            action: "A",
            note: "é".repeat(1000),
        });
        let note = event.note.unwrap_or_default();
        assert!(note.len() <= 1024, "{}", note.len());
        assert!(note.ends_with("..."));
    }
}
