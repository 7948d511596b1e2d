//! Creation and deletion expectations per pool: a pool with writes the cache has not shown yet neither
//! creates nor deletes again (the over-creation guard).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// How long unobserved expectations are trusted before they are dropped (a lost watch event).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Record {
    creations: u32,
    deletions: BTreeSet<String>,
    raised_at: Option<Timestamp>,
}

impl Record {
    fn pending(&self) -> bool {
        self.creations > 0 || !self.deletions.is_empty()
    }

    fn expired(&self, now: Timestamp) -> bool {
        self.raised_at
            .is_some_and(|at| now.duration_since(at) > TIMEOUT.try_into().unwrap_or_default())
    }
}

/// Outstanding creates and deletes, keyed by pool (`namespace/name`).
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    records: BTreeMap<String, Record>,
}

impl Expectations {
    /// True when the pool has nothing outstanding (or its expectations timed out, which clears them).
    pub fn satisfied(&mut self, pool: &str, now: Timestamp) -> bool {
        let Some(record) = self.records.get(pool) else {
            return true;
        };
        if !record.pending() || record.expired(now) {
            self.records.remove(pool);
            return true;
        }
        false
    }

    /// Records `count` creates about to be issued, only if nothing is outstanding; false refuses them.
    pub fn try_expect_creations(&mut self, pool: &str, count: u32, now: Timestamp) -> bool {
        if count == 0 || !self.satisfied(pool, now) {
            return false;
        }
        self.records.insert(
            pool.to_owned(),
            Record {
                creations: count,
                deletions: BTreeSet::new(),
                raised_at: Some(now),
            },
        );
        true
    }

    /// `count` expected creates will not be seen (they failed) or have been seen.
    pub fn lower_creations(&mut self, pool: &str, count: u32) {
        if let Some(record) = self.records.get_mut(pool) {
            record.creations = record.creations.saturating_sub(count);
            if !record.pending() {
                self.records.remove(pool);
            }
        }
    }

    /// The watch showed one of the pool's creates.
    pub fn creation_observed(&mut self, pool: &str) {
        self.lower_creations(pool, 1);
    }

    /// Records a delete of `uid` about to be issued (call before the DELETE: its event can come first).
    pub fn expect_deletion(&mut self, pool: &str, uid: &str, now: Timestamp) {
        if uid.is_empty() {
            return;
        }
        let record = self.records.entry(pool.to_owned()).or_default();
        record.deletions.insert(uid.to_owned());
        record.raised_at = Some(now);
    }

    /// The watch showed the delete of `uid` (also called after a failed or NotFound delete).
    pub fn deletion_observed(&mut self, pool: &str, uid: &str) {
        if let Some(record) = self.records.get_mut(pool) {
            record.deletions.remove(uid);
            if !record.pending() {
                self.records.remove(pool);
            }
        }
    }

    /// True while a delete of `uid` is outstanding (the cache may still list it as a member).
    pub fn is_pending_deletion(&self, pool: &str, uid: &str, now: Timestamp) -> bool {
        !uid.is_empty()
            && self
                .records
                .get(pool)
                .is_some_and(|r| !r.expired(now) && r.deletions.contains(uid))
    }

    /// Drops everything about a deleted pool.
    pub fn forget(&mut self, pool: &str) {
        self.records.remove(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_000 + seconds).expect("valid")
    }

    #[test]
    fn creations_gate_until_observed() {
        let mut e = Expectations::default();
        assert!(e.satisfied("ns/p", t(0)));
        assert!(e.try_expect_creations("ns/p", 2, t(0)));
        assert!(
            !e.try_expect_creations("ns/p", 1, t(0)),
            "second caller refused while pending"
        );
        e.creation_observed("ns/p");
        assert!(!e.satisfied("ns/p", t(0)));
        e.creation_observed("ns/p");
        assert!(e.satisfied("ns/p", t(0)));
        e.creation_observed("ns/p");
        assert!(e.satisfied("ns/p", t(0)), "extra observations are harmless");
    }

    #[test]
    fn zero_creations_are_refused_without_state() {
        let mut e = Expectations::default();
        assert!(!e.try_expect_creations("ns/p", 0, t(0)));
        assert!(e.satisfied("ns/p", t(0)));
    }

    #[test]
    fn failed_creates_are_lowered_at_once() {
        let mut e = Expectations::default();
        assert!(e.try_expect_creations("ns/p", 5, t(0)));
        e.lower_creations("ns/p", 5);
        assert!(e.satisfied("ns/p", t(0)));
    }

    #[test]
    fn deletions_gate_and_are_tracked_by_uid() {
        let mut e = Expectations::default();
        e.expect_deletion("ns/p", "u1", t(0));
        e.expect_deletion("ns/p", "", t(0));
        assert!(e.is_pending_deletion("ns/p", "u1", t(0)));
        assert!(!e.is_pending_deletion("ns/p", "", t(0)));
        assert!(
            !e.try_expect_creations("ns/p", 1, t(0)),
            "creates wait for deletes too"
        );
        e.deletion_observed("ns/p", "u1");
        assert!(e.satisfied("ns/p", t(0)));
        assert!(!e.is_pending_deletion("ns/p", "u1", t(0)));
    }

    #[test]
    fn expectations_time_out_after_five_minutes_from_the_last_raise() {
        let mut e = Expectations::default();
        assert!(e.try_expect_creations("ns/p", 1, t(0)));
        e.expect_deletion("ns/p", "u1", t(100));
        assert!(
            !e.satisfied("ns/p", t(350)),
            "timeout counts from the last raise"
        );
        assert!(!e.is_pending_deletion("ns/p", "u1", t(401)));
        assert!(e.satisfied("ns/p", t(401)));
    }

    #[test]
    fn pools_are_independent_and_forgettable() {
        let mut e = Expectations::default();
        assert!(e.try_expect_creations("ns/a", 1, t(0)));
        assert!(e.try_expect_creations("ns/b", 1, t(0)));
        e.forget("ns/a");
        assert!(e.satisfied("ns/a", t(0)));
        assert!(!e.satisfied("ns/b", t(0)));
    }

    #[test]
    fn lowering_below_zero_clamps_and_unknown_deletions_are_ignored() {
        let mut e = Expectations::default();
        e.lower_creations("ns/p", 3);
        e.deletion_observed("ns/p", "u1");
        assert!(e.satisfied("ns/p", t(0)), "no record: nothing to lower");
        assert!(e.try_expect_creations("ns/p", 2, t(0)));
        e.expect_deletion("ns/p", "u1", t(0));
        e.lower_creations("ns/p", 5);
        e.deletion_observed("ns/p", "someone-else");
        assert!(!e.satisfied("ns/p", t(0)), "u1 is still pending");
        assert!(e.is_pending_deletion("ns/p", "u1", t(0)));
        e.deletion_observed("ns/p", "u1");
        assert!(e.try_expect_creations("ns/p", 1, t(0)), "clamped at zero");
    }
}
