//! One pass of the Sandbox controller: [`plan`] decides the child writes; [`Plan::finish`] turns their
//! results into the status to write, events and the next look.

use std::time::Duration;

use agent_sandbox_api::conditions::{sandbox as reason, types};
use agent_sandbox_api::v1beta1::SandboxStatus;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::active::{self, Active};
use super::expiry::{Expiry, check};
use super::plan::{Action, Config, Failed, Failure, Observed, Outcome};
use super::status::{expired_condition, patch_if_changed};
use super::teardown::{self, Teardown};
use crate::conditions as condition_list;

/// What a pass decided: the child writes to perform, in order, and what [`Plan::finish`] needs.
#[derive(Clone, Debug)]
pub struct Plan {
    actions: Vec<Action>,
    pass: Pass,
}

#[derive(Clone, Debug)]
enum Pass {
    /// Gone or being deleted: nothing to do.
    Idle,
    /// First pass past `shutdownTime`: persist the expired condition, act next pass.
    MarkExpired { status: Option<Value> },
    /// Second pass past `shutdownTime`: remove the Pod and Service, then the Sandbox or its status.
    Teardown(Teardown),
    /// Normal reconciliation.
    Active(Box<Active>),
}

impl Plan {
    /// The child writes to perform, in order. Keep going after a failure and report every failure.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The end of the pass, given which actions failed.
    pub fn finish(self, failures: &[Failure]) -> Outcome {
        let described: Vec<Failed> = failures
            .iter()
            .filter_map(|f| {
                self.actions.get(f.index).map(|action| Failed {
                    target: action.target(),
                    action,
                    message: action.describe_failure(&f.message),
                    invalid: f.invalid,
                })
            })
            .collect();
        match self.pass {
            Pass::Idle => Outcome::default(),
            Pass::MarkExpired { status } => Outcome {
                status_patch: status,
                requeue_after: Some(Duration::from_millis(1)),
                ..Outcome::default()
            },
            Pass::Teardown(teardown) => {
                teardown::finish(teardown, &self.actions, described, failures)
            }
            Pass::Active(active) => active::finish(*active, described),
        }
    }
}

/// Decides one pass for `observed.sandbox` at `now`.
pub fn plan(observed: &Observed, now: Timestamp, config: &Config) -> Plan {
    let sandbox = observed.sandbox;
    if sandbox.metadata.deletion_timestamp.is_some() || sandbox.metadata.uid.is_none() {
        return Plan {
            actions: Vec::new(),
            pass: Pass::Idle,
        };
    }
    let old = sandbox.status.clone().unwrap_or_default();
    let generation = sandbox.metadata.generation;
    let (actions, pass) = match check(sandbox.spec.lifecycle.shutdown_time.as_ref(), now) {
        Expiry::Expired if !marked_expired(&old) => {
            let status = expired_patch(&old, generation, now);
            (Vec::new(), Pass::MarkExpired { status })
        }
        Expiry::Expired => {
            let (actions, teardown) = teardown::decide(observed, old, generation, now);
            (actions, Pass::Teardown(teardown))
        }
        Expiry::Pending(requeue) => {
            let (actions, active) = active::decide(observed, old, generation, now, config, requeue);
            (actions, Pass::Active(Box::new(active)))
        }
    };
    Plan { actions, pass }
}

/// The expiry is already persisted (Ready=False/SandboxExpired).
fn marked_expired(old: &SandboxStatus) -> bool {
    condition_list::find(&old.conditions, types::READY)
        .is_some_and(|c| c.reason == reason::SANDBOX_EXPIRED)
}

/// The patch persisting the expiry: PodScheduled gone, Ready=False/SandboxExpired.
fn expired_patch(old: &SandboxStatus, generation: Option<i64>, now: Timestamp) -> Option<Value> {
    let mut status = old.clone();
    condition_list::remove(&mut status.conditions, types::POD_SCHEDULED);
    condition_list::set(&mut status.conditions, expired_condition(), generation, now);
    patch_if_changed(old, &status)
}
