//! The decision of one pool pass: its writes, status, events and next look.

use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPoolStatus};
use agent_sandbox_core::events::Event;

/// One write of the pool controller, in the pool's namespace.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create `count` copies of this Sandbox (slow-start batches; lower the expectations by the failures).
    Create {
        /// The member to create (`generateName`).
        sandbox: Box<Sandbox>,
        /// How many.
        count: u32,
    },
    /// Delete member `name` if it is still the object that was decided on (on failure, a conflict or
    /// NotFound, observe the deletion).
    Delete {
        /// Sandbox name.
        name: String,
        /// UID precondition.
        uid: String,
        /// resourceVersion precondition: a claim that adopted the member since the cache showed it
        /// changed it, and the delete must then fail instead of removing the claimed Sandbox.
        resource_version: Option<String>,
    },
    /// Replace a member (adoption of an orphan or a missing launch-type label); guarded by resourceVersion.
    Update(Box<Sandbox>),
}

/// The decision of one pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// The status to write (computed before this pass's writes).
    pub status: SandboxWarmPoolStatus,
    /// Events to publish.
    pub events: Vec<Event>,
    /// Look again after this long.
    pub requeue_after: Option<Duration>,
    /// The pass failed (the template could not be read): retry with backoff, do not write status.
    pub error: Option<String>,
}

/// The earliest of the waits, ignoring zero ones (a zero wait asks for nothing).
pub(super) fn earliest(waits: impl IntoIterator<Item = Option<Duration>>) -> Option<Duration> {
    waits.into_iter().flatten().filter(|d| !d.is_zero()).min()
}

/// Deletes `sandbox` if it is still the object that was decided on.
pub(super) fn delete(sandbox: &Sandbox) -> Action {
    Action::Delete {
        name: sandbox.metadata.name.clone().unwrap_or_default(),
        uid: uid(sandbox),
        resource_version: sandbox.metadata.resource_version.clone(),
    }
}

/// The member's UID (empty when unset).
pub(super) fn uid(sandbox: &Sandbox) -> String {
    sandbox.metadata.uid.clone().unwrap_or_default()
}
