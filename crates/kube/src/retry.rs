//! Per-object retry backoff for the extension controllers: consecutive failures of one object double
//! its retry delay (the Sandbox controller's schedule); a success resets it. And what every controller
//! does with its results stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller;
use kube::runtime::reflector::ObjectRef;

use crate::sandbox_controller::backoff;

/// Consecutive failures per object.
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

/// Runs a controller's results to the end, logging what no pass logged itself: a watch that cannot
/// list or watch (RBAC, a missing CRD, a conversion failure) keeps the caches from syncing, so it is
/// said loudly (it is retried with backoff). A pass logs its own failures, and an object gone before
/// its pass ran is not an error.
pub async fn drain<T, E1, E2>(
    results: impl Stream<Item = Result<T, controller::Error<E1, E2>>>,
    controller_name: &'static str,
) where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    results
        .for_each(|result| async move {
            match result {
                Ok(_)
                | Err(
                    controller::Error::ReconcilerFailed(..) | controller::Error::ObjectNotFound(_),
                ) => {}
                Err(error) => {
                    tracing::warn!(controller = controller_name, %error, "watch or queue error");
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    #[test]
    fn failures_back_off_per_object_and_reset() {
        let named = |name: &str| ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let failures = Failures::default();
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(5));
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(10));
        assert_eq!(failures.failed(&named("b")), Duration::from_millis(5));
        failures.reset(&named("a"));
        assert_eq!(failures.failed(&named("a")), Duration::from_millis(5));
    }
}
