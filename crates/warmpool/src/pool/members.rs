//! Sorting a pool's members: which are going away, which are someone else's, which are stale or
//! need adopting or labelling; then which have been stuck past the readiness grace period.

use std::time::Duration;

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::extensions::SandboxWarmPoolUpdateStrategyType;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::conditions::sandbox_is_ready;
use agent_sandbox_core::ownership::{Ownership, controller_reference, ownership};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::config::Config;
use super::decision::{Action, delete, earliest, uid};
use super::observed::{Member, Observed, key};
use crate::expectations::Expectations;
use crate::staleness::is_stale;

/// Added to the readiness-grace deadline so the pass after it sees the member as overdue.
const GRACE_SLACK: Duration = Duration::from_secs(2);

/// The pool as every phase reads it.
pub(super) struct Subject<'a> {
    pub pool: &'a SandboxWarmPool,
    /// The key of its expectations.
    pub key: String,
    pub uid: String,
    pub template: Option<&'a SandboxTemplate>,
    /// The update strategy is Recreate: stale members are replaced.
    pub recreate: bool,
}

impl<'a> Subject<'a> {
    pub(super) fn of(observed: &Observed<'a>) -> Self {
        let pool = observed.pool;
        Self {
            pool,
            key: key(pool),
            uid: pool.metadata.uid.clone().unwrap_or_default(),
            template: observed.template.as_ref().ok().copied().flatten(),
            recreate: pool.spec.update_strategy.as_ref().and_then(|s| s.type_)
                == Some(SandboxWarmPoolUpdateStrategyType::Recreate),
        }
    }
}

/// The members that count, and the writes sorting them asked for.
pub(super) struct Sorted<'a> {
    /// Live members of the pool (owned or about to be adopted).
    pub active: Vec<Member<'a>>,
    /// Owned members on their way out.
    pub terminating: u32,
    /// Deletes of stale members and updates adopting or labelling members, in member order.
    pub actions: Vec<Action>,
}

/// Sorts the observed members. Deletes of owned members are expected before they are issued.
pub(super) fn sort<'a>(
    observed: &Observed<'a>,
    subject: &Subject,
    expectations: &mut Expectations,
    now: Timestamp,
) -> Sorted<'a> {
    let mut sorted = Sorted {
        active: Vec::new(),
        terminating: 0,
        actions: Vec::new(),
    };
    for member in &observed.members {
        let sandbox = member.sandbox;
        let owner = ownership(&sandbox.metadata, &subject.uid);
        let owned = owner == Ownership::Owned;
        if sandbox.metadata.deletion_timestamp.is_some()
            || (owned && expectations.is_pending_deletion(&subject.key, &uid(sandbox), now))
        {
            sorted.terminating += u32::from(owned);
            continue;
        }
        if matches!(owner, Ownership::Other(_)) {
            continue;
        }
        let orphan = owner == Ownership::Unowned;
        if let Some(template) = subject.template
            && (subject.recreate || orphan)
            && is_stale(
                sandbox,
                &subject.pool.spec.sandbox_template_ref.name,
                template,
                orphan,
            )
        {
            if owned {
                expectations.expect_deletion(&subject.key, &uid(sandbox), now);
                sorted.terminating += 1;
            }
            sorted.actions.push(delete(sandbox));
            continue;
        }
        sorted
            .actions
            .extend(claim_member(sandbox, subject.pool, orphan));
        sorted.active.push(*member);
    }
    sorted
}

/// The update making `sandbox` a warm member of `pool`: the launch-type label, and the controller
/// reference for an orphan; `None` when it is one already.
fn claim_member(sandbox: &Sandbox, pool: &SandboxWarmPool, orphan: bool) -> Option<Action> {
    let warm = sandbox
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::LAUNCH_TYPE))
        .map(String::as_str)
        == Some(labels::LAUNCH_TYPE_WARM);
    if !orphan && warm {
        return None;
    }
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
    Some(Action::Update(Box::new(updated)))
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

/// The active members after replacing the stuck ones.
pub(super) struct Health<'a> {
    /// Members that stay.
    pub healthy: Vec<Member<'a>>,
    /// Stuck members held because they are unschedulable (replacements would be just as stuck).
    pub unschedulable: u32,
    /// When the youngest not-Ready member's grace runs out.
    pub grace_deadline: Option<Duration>,
    /// Deletes of stuck members.
    pub actions: Vec<Action>,
}

/// Replaces members stuck past the readiness grace period, but holds unschedulable ones: their
/// replacements would be just as unschedulable. Deletes are expected before they are issued.
pub(super) fn replace_stuck<'a>(
    active: Vec<Member<'a>>,
    pool_key: &str,
    expectations: &mut Expectations,
    now: Timestamp,
    config: &Config,
) -> Health<'a> {
    let mut health = Health {
        healthy: Vec::new(),
        unschedulable: 0,
        grace_deadline: None,
        actions: Vec::new(),
    };
    for member in active {
        let sandbox = member.sandbox;
        let created = sandbox.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age = created.map(|at| Duration::try_from(now.duration_since(at)).unwrap_or_default());
        match age {
            _ if sandbox_is_ready(sandbox) => health.healthy.push(member),
            None => health.healthy.push(member),
            Some(age) if age <= config.readiness_grace => {
                let left = config.readiness_grace - age + GRACE_SLACK;
                health.grace_deadline = earliest([health.grace_deadline, Some(left)]);
                health.healthy.push(member);
            }
            Some(_) if unschedulable(member.pod) => {
                health.unschedulable += 1;
                health.healthy.push(member);
            }
            Some(_) => {
                expectations.expect_deletion(pool_key, &uid(sandbox), now);
                health.actions.push(delete(sandbox));
            }
        }
    }
    health
}
