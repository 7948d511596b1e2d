//! One pass of the SandboxWarmPool controller: classify members, replace stuck or stale ones, size the
//! pool (create or trim) without over-creating, and compute the status.

use std::time::Duration;

use agent_sandbox_api::conditions::{events as reasons, types};
use agent_sandbox_api::extensions::SandboxWarmPoolUpdateStrategyType;
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{
    Sandbox, SandboxTemplate, SandboxWarmPool, SandboxWarmPoolStatus,
};
use agent_sandbox_core::conditions::sandbox_is_ready;
use agent_sandbox_core::events::{Event, EventType};
use agent_sandbox_core::ownership::{Ownership, controller_reference, ownership};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::expectations::Expectations;
use crate::member::{MemberConfig, build};
use crate::refill::Bucket;
use crate::replenish::Replenish;
use crate::staleness::is_stale;

/// How long to wait before looking again when earlier writes are not visible yet.
const EXPECTATIONS_RETRY: Duration = Duration::from_secs(30);
/// Added to the readiness-grace deadline so the pass after it sees the member as overdue.
const GRACE_SLACK: Duration = Duration::from_secs(2);

/// Settings of the warm-pool controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// A member not Ready after this long is replaced (unless it is unschedulable).
    pub readiness_grace: Duration,
    /// How often to look again while holding unschedulable members.
    pub unschedulable_recheck: Duration,
    /// Most creates or deletes in one pass.
    pub max_batch: u32,
    /// Wait this long after members drop before refilling (zero: refill at once).
    pub replenish_delay: Duration,
    /// Creates per second per pool (zero or less: unlimited).
    pub max_refill_rate: f64,
    /// How members are built.
    pub member: MemberConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            readiness_grace: Duration::from_secs(300),
            unschedulable_recheck: Duration::from_secs(60),
            max_batch: 300,
            replenish_delay: Duration::ZERO,
            max_refill_rate: 0.0,
            member: MemberConfig::default(),
        }
    }
}

/// What a pool remembers between passes (in memory; a restart starts afresh by design).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Replenish-delay state.
    pub replenish: Replenish,
    /// Refill token bucket, when a rate is set.
    pub bucket: Option<Bucket>,
    /// Whether the last pass reported the pool as not progressing.
    pub not_progressing: bool,
}

/// One pool member and its backing Pod, if the cache has it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The member Sandbox.
    pub sandbox: &'a Sandbox,
    /// Its Pod (named by the pod-name annotation, else the Sandbox name).
    pub pod: Option<&'a Pod>,
}

/// What the pool controller observed.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The pool.
    pub pool: &'a SandboxWarmPool,
    /// Sandboxes in its namespace labelled with its name hash.
    pub members: Vec<Member<'a>>,
    /// The referenced template: `Ok(None)` when it does not exist, `Err` when it could not be read.
    pub template: Result<Option<&'a SandboxTemplate>, String>,
}

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

/// The pool's key in [`Expectations`] (`<namespace>/<name>`): the watch handler lowers expectations
/// under the same key.
pub fn key(pool: &SandboxWarmPool) -> String {
    format!(
        "{}/{}",
        pool.metadata.namespace.as_deref().unwrap_or_default(),
        pool.metadata.name.as_deref().unwrap_or_default()
    )
}

fn unschedulable(pod: Option<&Pod>) -> bool {
    let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none()) else {
        return false;
    };
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == types::POD_SCHEDULED))
        .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

fn uid(sandbox: &Sandbox) -> String {
    sandbox.metadata.uid.clone().unwrap_or_default()
}

fn delete(sandbox: &Sandbox) -> Action {
    Action::Delete {
        name: sandbox.metadata.name.clone().unwrap_or_default(),
        uid: uid(sandbox),
        resource_version: sandbox.metadata.resource_version.clone(),
    }
}

fn min_requeue(current: &mut Option<Duration>, candidate: Duration) {
    if !candidate.is_zero() {
        *current = Some(current.map_or(candidate, |c| c.min(candidate)));
    }
}

/// Go's rendering of a duration (`5m0s`, `90s` → `1m30s`), as in upstream's event message.
fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Decides one pass for a pool. `memory` and `expectations` are updated as the decision is made
/// (expectations are raised before the writes are issued, as they must be).
pub fn plan(
    observed: &Observed,
    memory: &mut Memory,
    expectations: &mut Expectations,
    now: Timestamp,
    config: &Config,
) -> Plan {
    let pool = observed.pool;
    let pool_key = key(pool);
    let pool_uid = pool.metadata.uid.clone().unwrap_or_default();
    let pool_hash = name_hash(pool.metadata.name.as_deref().unwrap_or_default());
    let template_name = pool.spec.sandbox_template_ref.name.as_str();
    let recreate = pool.spec.update_strategy.as_ref().and_then(|s| s.type_)
        == Some(SandboxWarmPoolUpdateStrategyType::Recreate);
    let template = observed.template.as_ref().ok().copied().flatten();
    let mut plan = Plan::default();
    let mut terminating = 0u32;
    let mut active: Vec<Member> = Vec::new();

    for member in &observed.members {
        let sandbox = member.sandbox;
        let owner = ownership(&sandbox.metadata, &pool_uid);
        let owned = owner == Ownership::Owned;
        if sandbox.metadata.deletion_timestamp.is_some()
            || (owned && expectations.is_pending_deletion(&pool_key, &uid(sandbox), now))
        {
            if owned {
                terminating += 1;
            }
            continue;
        }
        if matches!(owner, Ownership::Other(_)) {
            continue;
        }
        let orphan = owner == Ownership::Unowned;
        if let Some(template) = template
            && (recreate || orphan)
            && is_stale(sandbox, template_name, template, orphan)
        {
            if owned {
                expectations.expect_deletion(&pool_key, &uid(sandbox), now);
                terminating += 1;
            }
            plan.actions.push(delete(sandbox));
            continue;
        }
        let warm = sandbox
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::LAUNCH_TYPE))
            .map(String::as_str)
            == Some(labels::LAUNCH_TYPE_WARM);
        if orphan || !warm {
            let mut updated = sandbox.clone();
            updated
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(
                    labels::LAUNCH_TYPE.to_owned(),
                    labels::LAUNCH_TYPE_WARM.to_owned(),
                );
            if orphan {
                let mut references = updated.metadata.owner_references.take().unwrap_or_default();
                references.push(controller_reference(
                    "extensions.agents.x-k8s.io/v1beta1",
                    "SandboxWarmPool",
                    &pool.metadata,
                ));
                updated.metadata.owner_references = Some(references);
            }
            plan.actions.push(Action::Update(Box::new(updated)));
        }
        active.push(*member);
    }

    // Replace members stuck past the readiness grace period, but hold unschedulable ones: their
    // replacements would be just as unschedulable.
    let mut unschedulable_count = 0u32;
    let mut grace_deadline: Option<Duration> = None;
    let mut healthy = Vec::new();
    for member in active {
        let sandbox = member.sandbox;
        let created = sandbox.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age = created.map(|at| Duration::try_from(now.duration_since(at)).unwrap_or_default());
        match age {
            _ if sandbox_is_ready(sandbox) => healthy.push(member),
            None => healthy.push(member),
            Some(age) if age <= config.readiness_grace => {
                min_requeue(
                    &mut grace_deadline,
                    config.readiness_grace - age + GRACE_SLACK,
                );
                healthy.push(member);
            }
            Some(_) if unschedulable(member.pod) => {
                unschedulable_count += 1;
                healthy.push(member);
            }
            Some(_) => {
                expectations.expect_deletion(&pool_key, &uid(sandbox), now);
                plan.actions.push(delete(sandbox));
                terminating += 1;
            }
        }
    }
    let active = healthy;

    let desired = u32::try_from(pool.spec.replicas().max(0)).unwrap_or_default();
    let current = u32::try_from(active.len()).unwrap_or(u32::MAX);
    let total = current + terminating;
    plan.status = SandboxWarmPoolStatus {
        replicas: i32::try_from(current).unwrap_or(i32::MAX),
        ready_replicas: i32::try_from(
            active
                .iter()
                .filter(|m| sandbox_is_ready(m.sandbox))
                .count(),
        )
        .unwrap_or(i32::MAX),
        selector: format!("{}={pool_hash}", labels::WARM_POOL_SANDBOX),
        observed_generation: pool.metadata.generation.unwrap_or_default(),
    };

    let mut requeue = None;
    let hold = memory
        .replenish
        .observe(current, desired, config.replenish_delay, now);
    if let Some(template) = template {
        if !hold.is_zero() && current < desired {
            min_requeue(&mut requeue, hold);
        } else if total < desired {
            let deficit = (desired - total).min(config.max_batch);
            let (granted, wait) = if config.max_refill_rate > 0.0 {
                let bucket = memory
                    .bucket
                    .get_or_insert_with(|| Bucket::new(config.max_refill_rate, now));
                let grant = bucket.take(deficit, now);
                (grant.granted, grant.wait)
            } else {
                (deficit, None)
            };
            if granted == 0 {
                min_requeue(&mut requeue, wait.unwrap_or_default());
            } else if expectations.try_expect_creations(&pool_key, granted, now) {
                plan.actions.push(Action::Create {
                    sandbox: Box::new(build(pool, template, config.member)),
                    count: granted,
                });
            } else {
                if let Some(bucket) = memory.bucket.as_mut() {
                    bucket.refund(granted);
                }
                min_requeue(&mut requeue, EXPECTATIONS_RETRY);
            }
        }
    }

    if current > desired {
        if expectations.satisfied(&pool_key, now) {
            let mut excess = active.clone();
            // Not-Ready first, then newest first.
            excess.sort_by(|a, b| {
                let key = |m: &Member| {
                    (
                        sandbox_is_ready(m.sandbox),
                        std::cmp::Reverse(
                            m.sandbox.metadata.creation_timestamp.as_ref().map(|t| t.0),
                        ),
                    )
                };
                key(a).cmp(&key(b))
            });
            let n = usize::try_from((current - desired).min(config.max_batch)).unwrap_or_default();
            for member in excess.into_iter().take(n) {
                expectations.expect_deletion(&pool_key, &uid(member.sandbox), now);
                plan.actions.push(delete(member.sandbox));
            }
        } else {
            min_requeue(&mut requeue, EXPECTATIONS_RETRY);
        }
    }

    if unschedulable_count > 0 {
        if !memory.not_progressing {
            plan.events.push(Event {
                type_: EventType::Warning,
                reason: reasons::WARM_POOL_NOT_PROGRESSING,
                action: "Reconciling",
                note: format!(
                    "{unschedulable_count}/{desired} sandboxes are unschedulable past the {} readiness grace period; holding them instead of replacing (replacements would be equally unschedulable)",
                    go_duration(config.readiness_grace)
                ),
            });
        }
        memory.not_progressing = true;
        min_requeue(&mut requeue, config.unschedulable_recheck);
    } else if memory.not_progressing {
        memory.not_progressing = false;
        plan.events.push(Event {
            type_: EventType::Normal,
            reason: reasons::WARM_POOL_PROGRESSING,
            action: "Reconciling",
            note: "Warm pool is progressing again".to_owned(),
        });
    }
    if let Some(deadline) = grace_deadline {
        min_requeue(&mut requeue, deadline);
    }
    plan.requeue_after = requeue;
    if let Err(error) = &observed.template {
        plan.error = Some(format!(
            "reading SandboxTemplate {template_name:?}: {error}"
        ));
    }
    plan
}

#[cfg(test)]
mod tests;
