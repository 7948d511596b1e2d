//! Pure decisions of the Agent Sandbox controllers.
//!
//! Each controller is a function of what it observed, the current time and its configuration, returning a
//! plan: child actions with preconditions, then (given which actions failed) the status to write, events and
//! when to look again. Nothing here talks to the API server or reads the clock.
//!
//! ```
//! use agent_sandbox_api::v1beta1::Sandbox;
//! use agent_sandbox_core::Timestamp;
//! use agent_sandbox_core::sandbox::{Action, Config, Observed, plan};
//!
//! let sandbox: Sandbox = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "agents.x-k8s.io/v1beta1",
//!     "kind": "Sandbox",
//!     "metadata": {"name": "demo", "namespace": "default", "uid": "1"},
//!     "spec": {"podTemplate": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}},
//! }))?;
//! // A new Sandbox with nothing observed yet: the plan creates its Pod.
//! let observed = Observed { sandbox: &sandbox, pods: Ok(vec![]), service: Ok(None), pvcs: Ok(vec![]) };
//! let planned = plan(&observed, Timestamp::now(), &Config::default());
//! assert!(matches!(planned.actions(), [Action::CreatePod(_)]));
//! // Had the write succeeded, the pass would end with this status.
//! assert!(planned.finish(&[]).status_patch.is_some());
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod claim;
pub mod conditions;
pub mod events;
pub mod ownership;
pub mod sandbox;
pub mod template;

pub use k8s_openapi::jiff::Timestamp;
