//! Sizing the pool: create the missing members (after the replenish delay, at the refill rate, never
//! while earlier writes are unseen) or trim the excess (not-Ready first, then newest).

use std::time::Duration;

use agent_sandbox_core::conditions::sandbox_is_ready;
use k8s_openapi::jiff::Timestamp;

use super::config::{Config, Memory};
use super::decision::{Action, delete, uid};
use super::members::Subject;
use super::observed::Member;
use crate::expectations::Expectations;
use crate::member::build;
use crate::refill::Bucket;

/// How long to wait before looking again when earlier writes are not visible yet.
const EXPECTATIONS_RETRY: Duration = Duration::from_secs(30);

/// How many members the pool has and wants.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    /// `spec.replicas`.
    pub desired: u32,
    /// Active members.
    pub current: u32,
    /// Active members plus owned ones on their way out.
    pub total: u32,
}

/// The create that refills the pool, if one is due, and when to look again otherwise. Records the
/// replenish and refill-rate state in `memory`; expects the creates before they are issued.
pub(super) fn refill(
    subject: &Subject,
    sizes: Sizes,
    memory: &mut Memory,
    expectations: &mut Expectations,
    now: Timestamp,
    config: &Config,
) -> (Option<Action>, Option<Duration>) {
    let hold = memory
        .replenish
        .observe(sizes.current, sizes.desired, config.replenish_delay, now);
    let Some(template) = subject.template else {
        return (None, None);
    };
    if !hold.is_zero() && sizes.current < sizes.desired {
        return (None, Some(hold));
    }
    if sizes.total >= sizes.desired {
        return (None, None);
    }
    let deficit = (sizes.desired - sizes.total).min(config.max_batch);
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
        return (None, wait);
    }
    if !expectations.try_expect_creations(&subject.key, granted, now) {
        if let Some(bucket) = memory.bucket.as_mut() {
            bucket.refund(granted);
        }
        return (None, Some(EXPECTATIONS_RETRY));
    }
    let create = Action::Create {
        sandbox: Box::new(build(subject.pool, template, config.member)),
        count: granted,
    };
    (Some(create), None)
}

/// The deletes trimming the excess members, once earlier writes are seen (expected before they are
/// issued), and when to look again otherwise.
pub(super) fn trim(
    subject: &Subject,
    active: &[Member],
    sizes: Sizes,
    expectations: &mut Expectations,
    now: Timestamp,
    config: &Config,
) -> (Vec<Action>, Option<Duration>) {
    if sizes.current <= sizes.desired {
        return (Vec::new(), None);
    }
    if !expectations.satisfied(&subject.key, now) {
        return (Vec::new(), Some(EXPECTATIONS_RETRY));
    }
    let mut excess = active.to_vec();
    // Not-Ready first, then newest first.
    excess.sort_by(|a, b| {
        let key = |m: &Member| {
            (
                sandbox_is_ready(m.sandbox),
                std::cmp::Reverse(m.sandbox.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            )
        };
        key(a).cmp(&key(b))
    });
    let n =
        usize::try_from((sizes.current - sizes.desired).min(config.max_batch)).unwrap_or_default();
    let deletes = excess
        .into_iter()
        .take(n)
        .map(|member| {
            expectations.expect_deletion(&subject.key, &uid(member.sandbox), now);
            delete(member.sandbox)
        })
        .collect();
    (deletes, None)
}
