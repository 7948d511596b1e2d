//! Kubernetes Events as every controller's decision returns them; the adapter publishes them.

/// Severity of a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Needs attention.
    Warning,
}

/// A Kubernetes Event to publish about the reconciled object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// Machine-readable reason.
    pub reason: &'static str,
    /// What the controller was doing.
    pub action: &'static str,
    /// Human-readable note.
    pub note: String,
}
