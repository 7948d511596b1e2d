//! Pure decisions of the Agent Sandbox controllers.
//!
//! Each controller is a function of what it observed, the current time and its configuration, returning a
//! plan: child actions with preconditions, then (given which actions failed) the status to write, events and
//! when to look again. Nothing here talks to the API server or reads the clock.

pub mod claim;
pub mod conditions;
pub mod events;
pub mod ownership;
pub mod sandbox;
pub mod template;

pub use k8s_openapi::jiff::Timestamp;
