//! Per-pool refill rate limit: a token bucket of creates per second.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// A token bucket; `rate` creates per second, capacity `max(1, rate)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Timestamp,
}

/// The answer to a request for tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Creates allowed now.
    pub granted: u32,
    /// When fewer were granted than asked: time until the next whole token.
    pub wait: Option<Duration>,
}

impl Bucket {
    /// A full bucket for `rate` creates per second (`rate > 0`).
    pub fn new(rate: f64, now: Timestamp) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            last: now,
        }
    }

    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    /// Takes up to `want` tokens.
    pub fn take(&mut self, want: u32, now: Timestamp) -> Grant {
        if now > self.last {
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + self.rate * elapsed).min(self.capacity());
            self.last = now;
        }
        let want_f = f64::from(want);
        let granted = if self.tokens >= want_f {
            want
        } else {
            self.tokens.floor().max(0.0) as u32
        };
        self.tokens -= f64::from(granted);
        let wait = (granted < want)
            .then(|| Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0)));
        Grant {
            granted,
            wait: wait.map(round_up_to_millis),
        }
    }

    /// Returns tokens for creates the expectations gate refused.
    pub fn refund(&mut self, count: u32) {
        self.tokens = (self.tokens + f64::from(count)).min(self.capacity());
    }
}

fn round_up_to_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_secs_f64().mul_add(1000.0, -1e-9).ceil().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_000_000 + ms).expect("valid")
    }

    #[test]
    fn upstream_examples() {
        let mut b = Bucket::new(4.0, at(0));
        assert_eq!(
            b.take(10, at(0)),
            Grant {
                granted: 4,
                wait: Some(Duration::from_millis(250))
            }
        );

        let mut b = Bucket::new(2.0, at(0));
        assert_eq!(b.take(2, at(0)).granted, 2);
        assert_eq!(
            b.take(1, at(0)),
            Grant {
                granted: 0,
                wait: Some(Duration::from_millis(500))
            }
        );
        assert_eq!(
            b.take(1, at(500)),
            Grant {
                granted: 1,
                wait: None
            }
        );

        let mut b = Bucket::new(0.5, at(0));
        assert_eq!(
            b.take(3, at(0)),
            Grant {
                granted: 1,
                wait: Some(Duration::from_secs(2))
            }
        );

        let mut b = Bucket::new(1e18, at(0));
        assert_eq!(
            b.take(u32::MAX, at(0)),
            Grant {
                granted: u32::MAX,
                wait: None
            }
        );
    }

    #[test]
    fn refunds_are_capped_at_capacity() {
        let mut b = Bucket::new(3.0, at(0));
        assert_eq!(b.take(3, at(0)).granted, 3);
        b.refund(10);
        assert_eq!(b.take(10, at(0)).granted, 3);
    }

    #[test]
    fn tokens_accrue_with_time_up_to_capacity() {
        let mut b = Bucket::new(10.0, at(0));
        assert_eq!(b.take(10, at(0)).granted, 10);
        assert_eq!(
            b.take(100, at(60_000)).granted,
            10,
            "an idle minute refills only to capacity"
        );
    }
}
