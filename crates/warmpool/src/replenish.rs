//! Replenish delay: after members drop (claims took them), wait a while before refilling.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The replenish state of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replenish {
    last_members: Option<u32>,
    defer_until: Option<Timestamp>,
}

impl Replenish {
    /// Observes the member count once per pass and returns how long to hold creates (zero: create now).
    /// The first observation never defers, so an initial fill or a restart refills at once.
    pub fn observe(
        &mut self,
        current: u32,
        desired: u32,
        delay: Duration,
        now: Timestamp,
    ) -> Duration {
        if delay.is_zero() {
            return Duration::ZERO;
        }
        let Some(last) = self.last_members.replace(current) else {
            return Duration::ZERO;
        };
        if current >= desired {
            self.defer_until = None;
            return Duration::ZERO;
        }
        if current < last {
            self.defer_until = Some(now + delay);
        }
        match self.defer_until {
            Some(until) if until > now => {
                Duration::try_from(until.duration_since(now)).unwrap_or_default()
            }
            _ => Duration::ZERO,
        }
    }

    /// Counts `created` new members as present, so a cache that has not seen them yet reads as a drop
    /// (and defers) instead of prompting duplicate creates.
    pub fn note_creates(&mut self, created: u32) {
        if let Some(last) = self.last_members.as_mut() {
            *last += created;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_000 + s).expect("valid")
    }

    const DELAY: Duration = Duration::from_secs(10);

    #[test]
    fn disabled_without_a_delay() {
        let mut r = Replenish::default();
        assert_eq!(r.observe(5, 10, Duration::ZERO, at(0)), Duration::ZERO);
        assert_eq!(r, Replenish::default(), "no state kept");
    }

    #[test]
    fn first_observation_never_defers() {
        let mut r = Replenish::default();
        assert_eq!(r.observe(0, 10, DELAY, at(0)), Duration::ZERO);
    }

    #[test]
    fn a_drop_defers_and_re_arms() {
        let mut r = Replenish::default();
        r.observe(10, 10, DELAY, at(0));
        assert_eq!(r.observe(9, 10, DELAY, at(1)), DELAY);
        assert_eq!(r.observe(9, 10, DELAY, at(5)), Duration::from_secs(6));
        assert_eq!(
            r.observe(8, 10, DELAY, at(6)),
            DELAY,
            "another drop re-arms"
        );
        assert_eq!(r.observe(8, 10, DELAY, at(16)), Duration::ZERO, "elapsed");
    }

    #[test]
    fn a_full_pool_clears_the_hold() {
        let mut r = Replenish::default();
        r.observe(10, 10, DELAY, at(0));
        r.observe(9, 10, DELAY, at(1));
        assert_eq!(r.observe(10, 10, DELAY, at(2)), Duration::ZERO);
    }

    #[test]
    fn unseen_creates_read_as_a_drop() {
        let mut r = Replenish::default();
        r.observe(0, 3, DELAY, at(0));
        r.note_creates(3);
        assert_eq!(
            r.observe(0, 3, DELAY, at(1)),
            DELAY,
            "the cache has not caught up: hold, do not create again"
        );
    }

    #[test]
    fn noting_creates_before_any_observation_keeps_no_state() {
        let mut r = Replenish::default();
        r.note_creates(3);
        assert_eq!(r, Replenish::default());
        assert_eq!(
            r.observe(0, 3, DELAY, at(0)),
            Duration::ZERO,
            "still a first observation"
        );
    }

    #[test]
    fn a_new_drop_after_a_full_pool_arms_a_fresh_window() {
        let mut r = Replenish::default();
        r.observe(3, 3, DELAY, at(0));
        r.observe(2, 3, DELAY, at(1));
        r.observe(3, 3, DELAY, at(2));
        assert_eq!(r.observe(2, 3, DELAY, at(30)), DELAY);
        assert_eq!(
            r.observe(2, 3, DELAY, at(35)),
            Duration::from_secs(5),
            "no drop since: the window runs on"
        );
    }
}
