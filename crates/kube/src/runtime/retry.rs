//! The one retry policy of every controller: it reads the failure (see [`Retry`]) and keeps the
//! consecutive failures of each object, whose count doubles the backoff; a success resets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::runtime::error::{Error, Retry};

/// First retry delay after a failed pass; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay (controller-runtime's default per-item limiter cap).
const BACKOFF_CAP: Duration = Duration::from_secs(1000);
/// How soon a pass that lost a race looks again: long enough for a watch event to land, short
/// enough not to be noticed by a claimant.
pub const RETRY_SOON: Duration = Duration::from_millis(10);

/// Delay before retry number `failures` (1-based): exponential from 5 ms, capped at 1000 s.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_CAP)
}

/// Consecutive failures per object, and what to do after the next one.
pub struct Failures<K: kube::Resource<DynamicType = ()>> {
    counts: Mutex<HashMap<ObjectRef<K>, u32>>,
}

impl<K: kube::Resource<DynamicType = ()>> Default for Failures<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::default(),
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> Failures<K> {
    /// When to look at `object` again after `error`.
    pub fn next(&self, object: &K, error: &Error) -> Action {
        match error.retry() {
            Retry::AwaitChange => Action::await_change(),
            Retry::Soon => Action::requeue(RETRY_SOON),
            Retry::Backoff => Action::requeue(self.failed(object)),
        }
    }

    /// Counts one more failure of `object` and returns how long to wait before retrying it.
    pub fn failed(&self, object: &K) -> Duration {
        let count = self
            .counts
            .lock()
            .map(|mut counts| {
                let count = counts.entry(ObjectRef::from(object)).or_insert(0);
                *count = count.saturating_add(1);
                *count
            })
            .unwrap_or(1);
        backoff(count)
    }

    /// Forgets the failures of `object` (it succeeded or is gone).
    pub fn reset(&self, object: &K) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.remove(&ObjectRef::from(object));
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn named(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn api_error(code: u16) -> Error {
        Error::api(
            "writing",
            kube::Error::Api(Box::new(
                kube::core::Status::failure("m", "R").with_code(code),
            )),
        )
    }

    #[test]
    fn failures_back_off_per_object_and_reset() {
        let failures = Failures::default();
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(5));
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(10));
        assert_eq!(failures.failed(&named("b")), Duration::from_millis(5));
        failures.reset(&named("a"));
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(5));
    }

    #[test]
    fn backoff_doubles_from_five_milliseconds_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(11), Duration::from_millis(5120));
        assert_eq!(backoff(30), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn conflicts_do_not_grow_the_backoff_and_invalid_objects_wait_for_a_change() {
        let failures = Failures::default();
        let object = named("a");
        assert_eq!(
            failures.next(&object, &api_error(503)),
            Action::requeue(Duration::from_millis(5))
        );
        assert_eq!(
            failures.next(&object, &api_error(409)),
            Action::requeue(RETRY_SOON)
        );
        assert_eq!(
            failures.next(&object, &api_error(503)),
            Action::requeue(Duration::from_millis(10))
        );
        assert_eq!(
            failures.next(&object, &api_error(422)),
            Action::await_change()
        );
    }
}
