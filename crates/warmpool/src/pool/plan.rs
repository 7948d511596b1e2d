//! One pass of the SandboxWarmPool controller, phase by phase: sort the members, replace stuck ones,
//! compute the status, refill or trim, report progress.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::SandboxWarmPoolStatus;
use agent_sandbox_core::conditions::sandbox_is_ready;
use k8s_openapi::jiff::Timestamp;

use super::config::{Config, Memory};
use super::decision::{Plan, earliest};
use super::members::{self, Subject};
use super::observed::{Member, Observed};
use super::progress;
use super::sizing::{self, Sizes};
use crate::expectations::Expectations;

/// Decides one pass for a pool. `memory` and `expectations` are updated as the decision is made
/// (expectations are raised before the writes are issued, as they must be).
pub fn plan(
    observed: &Observed,
    memory: &mut Memory,
    expectations: &mut Expectations,
    now: Timestamp,
    config: &Config,
) -> Plan {
    let subject = Subject::of(observed);
    let sorted = members::sort(observed, &subject, expectations, now);
    let health = members::replace_stuck(sorted.active, &subject.key, expectations, now, config);
    let current = u32::try_from(health.healthy.len()).unwrap_or(u32::MAX);
    let replaced = u32::try_from(health.actions.len()).unwrap_or(u32::MAX);
    let sizes = Sizes {
        desired: u32::try_from(observed.pool.spec.replicas().max(0)).unwrap_or_default(),
        current,
        total: current + sorted.terminating + replaced,
    };
    let status = status(observed, &health.healthy, current);
    let (create, refill_wait) = sizing::refill(&subject, sizes, memory, expectations, now, config);
    let (trims, trim_wait) =
        sizing::trim(&subject, &health.healthy, sizes, expectations, now, config);
    let progress = progress::report(
        health.unschedulable,
        sizes.desired,
        memory.not_progressing,
        config,
    );
    memory.not_progressing = progress.not_progressing;
    let mut actions = sorted.actions;
    actions.extend(health.actions);
    actions.extend(create);
    actions.extend(trims);
    Plan {
        actions,
        status,
        events: progress.events,
        requeue_after: earliest([
            refill_wait,
            trim_wait,
            progress.recheck,
            health.grace_deadline,
        ]),
        error: observed.template.as_ref().err().map(|error| {
            let template = &observed.pool.spec.sandbox_template_ref.name;
            format!("reading SandboxTemplate {template:?}: {error}")
        }),
    }
}

/// The status from the active members (computed before this pass's writes).
fn status(observed: &Observed, active: &[Member], current: u32) -> SandboxWarmPoolStatus {
    let pool = observed.pool;
    let pool_hash = name_hash(pool.metadata.name.as_deref().unwrap_or_default());
    let ready = active
        .iter()
        .filter(|m| sandbox_is_ready(m.sandbox))
        .count();
    SandboxWarmPoolStatus {
        replicas: i32::try_from(current).unwrap_or(i32::MAX),
        ready_replicas: i32::try_from(ready).unwrap_or(i32::MAX),
        selector: format!("{}={pool_hash}", labels::WARM_POOL_SANDBOX),
        observed_generation: pool.metadata.generation.unwrap_or_default(),
    }
}
