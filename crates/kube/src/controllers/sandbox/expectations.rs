//! Writes the caches have not shown yet.
//!
//! The caches lag the API server. A pass that runs before the watch delivers a Pod it just created would
//! see no Pod and create it again; so every create and delete is remembered until the cache shows its
//! effect (or a timeout passes, in case the event was lost or someone else undid the write), and a
//! Sandbox with a pending expectation is not decided on. The same holds for writes to the Sandbox itself
//! (status, annotations): deciding on a stale Sandbox would repeat them with new transition times.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The kinds of child objects whose creates and deletes are tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// A Pod.
    Pod,
    /// A Service.
    Service,
    /// A PersistentVolumeClaim.
    Pvc,
    /// The Sandbox itself.
    Sandbox,
}

/// A child object by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildKey {
    /// Kind of the child.
    pub kind: ChildKind,
    /// Namespace of the child.
    pub namespace: String,
    /// Name of the child.
    pub name: String,
}

/// What the cache must show before the expectation is met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// An object with this UID (just created).
    Exists {
        /// UID returned by the create.
        uid: String,
    },
    /// No object with this UID, or one that is being deleted (just deleted).
    Gone {
        /// UID of the deleted object.
        uid: String,
    },
    /// A resourceVersion other than this one, or no object (just written).
    Changed {
        /// The resourceVersion the write was based on.
        from: String,
    },
}

/// What the cache holds for a child, as far as expectations care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// UID of the cached object.
    pub uid: String,
    /// The cached object has a deletion timestamp.
    pub deleting: bool,
    /// resourceVersion of the cached object.
    pub resource_version: String,
}

#[derive(Clone, Debug)]
struct Pending {
    child: ChildKey,
    expected: Expected,
    since: Instant,
}

impl Pending {
    fn met(&self, seen: Option<&Seen>) -> bool {
        match (&self.expected, seen) {
            (Expected::Exists { uid }, Some(seen)) => &seen.uid == uid,
            (Expected::Exists { .. }, None) => false,
            (Expected::Gone { uid }, Some(seen)) => &seen.uid != uid || seen.deleting,
            (Expected::Gone { .. }, None) => true,
            (Expected::Changed { from }, Some(seen)) => &seen.resource_version != from,
            (Expected::Changed { .. }, None) => true,
        }
    }
}

/// Pending expectations per owner (the Sandbox UID).
#[derive(Debug)]
pub struct Expectations {
    timeout: Duration,
    pending: HashMap<String, Vec<Pending>>,
}

impl Expectations {
    /// Expectations that are given up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            pending: HashMap::new(),
        }
    }

    /// Remembers that `owner` wrote `child` at `now` and the cache must show `expected`.
    pub fn expect(&mut self, owner: &str, child: ChildKey, expected: Expected, now: Instant) {
        let list = self.pending.entry(owner.to_owned()).or_default();
        list.retain(|p| p.child != child);
        list.push(Pending {
            child,
            expected,
            since: now,
        });
    }

    /// Drops the expectations of `owner` that the cache now meets or that timed out; returns how long
    /// to wait for the rest, or `None` when none is left and the owner may be decided on.
    pub fn unmet(
        &mut self,
        owner: &str,
        now: Instant,
        lookup: impl Fn(&ChildKey) -> Option<Seen>,
    ) -> Option<Duration> {
        let list = self.pending.get_mut(owner)?;
        let timeout = self.timeout;
        list.retain(|p| {
            let expired = now.saturating_duration_since(p.since) >= timeout;
            !expired && !p.met(lookup(&p.child).as_ref())
        });
        let wait = list
            .iter()
            .map(|p| timeout.saturating_sub(now.saturating_duration_since(p.since)))
            .max();
        if list.is_empty() {
            self.pending.remove(owner);
        }
        wait
    }

    /// Forgets every expectation of `owner` (it was deleted).
    pub fn forget(&mut self, owner: &str) {
        self.pending.remove(owner);
    }

    /// Number of owners with pending expectations.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn pod(name: &str) -> ChildKey {
        ChildKey {
            kind: ChildKind::Pod,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn seen(uid: &str, deleting: bool) -> Option<Seen> {
        Some(Seen {
            uid: uid.into(),
            deleting,
            resource_version: "1".into(),
        })
    }

    #[test]
    fn nothing_expected_means_nothing_to_wait_for() {
        let mut e = Expectations::new(TIMEOUT);
        assert_eq!(e.unmet("sb", Instant::now(), |_| None), None);
    }

    #[test]
    fn a_create_is_pending_until_the_cache_shows_its_uid() {
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("sb", pod("p"), Expected::Exists { uid: "u1".into() }, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(e.unmet("sb", t1, |_| None), Some(Duration::from_secs(9)));
        // An older object with the same name does not count.
        assert!(e.unmet("sb", t1, |_| seen("u0", false)).is_some());
        assert_eq!(e.unmet("sb", t1, |_| seen("u1", false)), None);
        assert!(e.is_empty(), "a met expectation is dropped");
    }

    #[test]
    fn a_delete_is_met_when_the_object_is_gone_replaced_or_terminating() {
        for cache in [None, seen("u2", false), seen("u1", true)] {
            let mut e = Expectations::new(TIMEOUT);
            let t0 = Instant::now();
            e.expect("sb", pod("p"), Expected::Gone { uid: "u1".into() }, t0);
            assert_eq!(e.unmet("sb", t0, |_| cache.clone()), None, "{cache:?}");
        }
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("sb", pod("p"), Expected::Gone { uid: "u1".into() }, t0);
        assert!(e.unmet("sb", t0, |_| seen("u1", false)).is_some());
    }

    #[test]
    fn a_write_to_the_sandbox_is_met_when_the_cache_has_another_resource_version() {
        let key = ChildKey {
            kind: ChildKind::Sandbox,
            namespace: "ns".into(),
            name: "sb".into(),
        };
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("sb", key, Expected::Changed { from: "7".into() }, t0);
        let at = |rv: &str| {
            Some(Seen {
                uid: "sb".into(),
                deleting: false,
                resource_version: rv.into(),
            })
        };
        assert!(e.unmet("sb", t0, |_| at("7")).is_some());
        assert_eq!(e.unmet("sb", t0, |_| at("8")), None);
    }

    #[test]
    fn expectations_time_out() {
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("sb", pod("p"), Expected::Exists { uid: "u".into() }, t0);
        assert!(
            e.unmet("sb", t0 + TIMEOUT - Duration::from_millis(1), |_| None)
                .is_some()
        );
        assert_eq!(e.unmet("sb", t0 + TIMEOUT, |_| None), None);
        assert!(e.is_empty());
    }

    #[test]
    fn the_longest_remaining_wait_is_reported_and_owners_are_separate() {
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("a", pod("p1"), Expected::Exists { uid: "1".into() }, t0);
        e.expect(
            "a",
            pod("p2"),
            Expected::Exists { uid: "2".into() },
            t0 + Duration::from_secs(2),
        );
        e.expect("b", pod("q"), Expected::Exists { uid: "3".into() }, t0);
        let lookup = |k: &ChildKey| {
            (k.name == "p1").then(|| Seen {
                uid: "1".into(),
                deleting: false,
                resource_version: "1".into(),
            })
        };
        assert_eq!(
            e.unmet("a", t0 + Duration::from_secs(3), lookup),
            Some(Duration::from_secs(9))
        );
        assert_eq!(e.len(), 2);
        e.forget("b");
        assert_eq!(e.unmet("b", t0, |_| None), None);
    }

    #[test]
    fn a_new_write_to_the_same_child_replaces_the_old_expectation() {
        let mut e = Expectations::new(TIMEOUT);
        let t0 = Instant::now();
        e.expect("sb", pod("p"), Expected::Exists { uid: "1".into() }, t0);
        e.expect("sb", pod("p"), Expected::Gone { uid: "1".into() }, t0);
        assert_eq!(e.unmet("sb", t0, |_| None), None);
    }
}
