//! Which status to write, and the merge patch that writes it.

use agent_sandbox_api::conditions::{sandbox as reason, types};
use agent_sandbox_api::v1beta1::SandboxStatus;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::conditions::{self as condition_list, Desired};

/// Ready=False/SandboxExpired.
pub(super) fn expired_condition() -> Desired {
    Desired::new(
        types::READY,
        "False",
        reason::SANDBOX_EXPIRED,
        "Sandbox has expired",
    )
}

/// The status of an expired, retained Sandbox: its conditions only, with Ready=False/SandboxExpired.
pub fn expired_status(
    old: &SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> SandboxStatus {
    let mut status = SandboxStatus {
        conditions: old.conditions.clone(),
        ..SandboxStatus::default()
    };
    condition_list::set(&mut status.conditions, expired_condition(), generation, now);
    status
}

/// The `{"status": ...}` merge patch from `old` to `new`, or `None` when there is nothing worth writing.
/// A change of `nodeName` alone waits for the next real change unless the Sandbox is Ready.
pub fn patch_if_changed(old: &SandboxStatus, new: &SandboxStatus) -> Option<Value> {
    if old == new {
        return None;
    }
    let only_node = SandboxStatus {
        node_name: old.node_name.clone(),
        ..new.clone()
    } == *old;
    if only_node && !condition_list::is_ready(&new.conditions) {
        return None;
    }
    let before = serde_json::to_value(old).ok()?;
    let after = serde_json::to_value(new).ok()?;
    let (Value::Object(before), Value::Object(mut after)) = (before, after) else {
        return None;
    };
    let mut patch = Map::new();
    for (key, value) in &before {
        match after.remove(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(now) if now != *value => {
                patch.insert(key.clone(), now);
            }
            Some(_) => {}
        }
    }
    patch.extend(after);
    Some(json!({ "status": patch }))
}
