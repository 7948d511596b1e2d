//! When a Sandbox's `shutdownTime` is reached, and when to look again before that.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The shortest wait before re-checking a future `shutdownTime`.
const MIN_REQUEUE: Duration = Duration::from_secs(2);

/// Expiry state of a Sandbox at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `now >= shutdownTime`.
    Expired,
    /// Not expired; look again after this long (`None`: no `shutdownTime`, never).
    Pending(Option<Duration>),
}

/// Expired when `now >= shutdown_time`; otherwise requeue after `max(shutdown_time - now, 2s)`.
pub fn check(shutdown_time: Option<&Time>, now: Timestamp) -> Expiry {
    let Some(Time(at)) = shutdown_time else {
        return Expiry::Pending(None);
    };
    if now >= *at {
        return Expiry::Expired;
    }
    let left = at.duration_since(now);
    let left = Duration::try_from(left).unwrap_or(MIN_REQUEUE);
    Expiry::Pending(Some(left.max(MIN_REQUEUE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("valid")
    }

    #[test]
    fn sandbox_expiry() {
        let now = at(1_000_000);
        assert_eq!(
            check(None, now),
            Expiry::Pending(None),
            "nil time never expires"
        );
        let in_2h = Time(at(1_000_000 + 7_200_000));
        assert_eq!(
            check(Some(&in_2h), now),
            Expiry::Pending(Some(Duration::from_secs(7200)))
        );
        assert_eq!(
            check(Some(&Time(now)), now),
            Expiry::Expired,
            "now is expired"
        );
        let soon = Time(at(1_000_500));
        assert_eq!(
            check(Some(&soon), now),
            Expiry::Pending(Some(MIN_REQUEUE)),
            "2s minimum"
        );
        assert_eq!(
            check(Some(&Time(at(1))), now),
            Expiry::Expired,
            "past is expired"
        );
    }
}
