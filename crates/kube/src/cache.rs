//! Reflector caches: which objects are watched, how they are slimmed before they are stored, and when
//! the caches count as synced.

use std::sync::Arc;

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodSpec, Service};
use kube::Resource;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::watch;

use crate::index::NameHashIndex;

/// Drops `metadata.managedFields`: the controller never reads them and they dominate object size.
pub fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Slims a Pod for the cache: no managedFields, no finalizers, and of the spec only `nodeName`.
///
/// Safe because Pod writes are metadata-only merge patches and Pods are created from the Sandbox's
/// template, never from the cache.
pub fn slim_pod(pod: &mut Pod) {
    let meta = pod.meta_mut();
    meta.managed_fields = None;
    meta.finalizers = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        ..PodSpec::default()
    });
}

/// Watch configuration for Pods and Services: with `scoped`, only objects carrying the name-hash
/// tracking label (any value) are listed and watched.
pub fn child_watcher_config(scoped: bool) -> watcher::Config {
    let config = watcher::Config::default().any_semantic();
    if scoped {
        config.labels(labels::SANDBOX_NAME_HASH)
    } else {
        config
    }
}

/// One bit per cache in [`Caches`]' sync mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// The Sandbox cache.
    Sandbox = 1,
    /// The Pod cache.
    Pod = 2,
    /// The Service cache.
    Service = 4,
    /// The PersistentVolumeClaim cache.
    Pvc = 8,
}

const ALL_SYNCED: u8 = 1 | 2 | 4 | 8;

/// The read side of every cache the Sandbox controller decides from.
///
/// Sync is tracked here, from the watch streams' first `InitDone`, rather than with
/// `Store::wait_until_ready`: that future remembers only the last task that polled it, so with
/// several waiters (passes, the readiness probe, kube-runtime's own runner) some are never woken.
#[derive(Clone)]
pub struct Caches {
    /// Sandboxes (managedFields stripped).
    pub sandboxes: Store<Sandbox>,
    /// Pods, slimmed by [`slim_pod`].
    pub pods: Store<Pod>,
    /// Services (managedFields stripped).
    pub services: Store<Service>,
    /// PersistentVolumeClaims of every namespace (managedFields stripped).
    pub pvcs: Store<PersistentVolumeClaim>,
    /// Pod names by namespace and name-hash label.
    pub pod_index: NameHashIndex,
    synced: Arc<watch::Sender<u8>>,
}

impl Caches {
    /// Wraps the stores; not synced until each is marked with [`Caches::mark_synced`].
    pub fn new(
        sandboxes: Store<Sandbox>,
        pods: Store<Pod>,
        services: Store<Service>,
        pvcs: Store<PersistentVolumeClaim>,
        pod_index: NameHashIndex,
    ) -> Self {
        Self {
            sandboxes,
            pods,
            services,
            pvcs,
            pod_index,
            synced: Arc::new(watch::channel(0).0),
        }
    }

    /// Records that the cache `kind` completed a list (its store has applied it).
    pub fn mark_synced(&self, kind: CacheKind) {
        let bit = kind as u8;
        let newly = self.synced.send_if_modified(|mask| {
            let before = *mask;
            *mask |= bit;
            before != *mask
        });
        if newly {
            tracing::debug!(?kind, "cache synced");
        }
    }

    /// Waits until every cache has completed its first list.
    pub async fn wait_synced(&self) {
        let mut receiver = self.synced.subscribe();
        // The sender lives in `self`, so the wait ends only when the mask is complete.
        let _ = receiver.wait_for(|mask| *mask == ALL_SYNCED).await;
    }

    /// True once every cache has completed its first list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow() == ALL_SYNCED
    }
}

/// Marks `kind` synced in `caches` when a watch event ends a (re)list.
pub fn note_sync<K>(caches: &Caches, kind: CacheKind, event: &watcher::Event<K>) {
    if matches!(event, watcher::Event::InitDone) {
        caches.mark_synced(kind);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    fn fat_pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                labels: Some([("a".to_owned(), "b".to_owned())].into()),
                annotations: Some([("c".to_owned(), "d".to_owned())].into()),
                finalizers: Some(vec!["example.com/f".into()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                hostname: Some("p".into()),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("img".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn slim_pod_keeps_metadata_status_and_node_name_only() {
        let mut pod = fat_pod();
        slim_pod(&mut pod);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.metadata.finalizers, None);
        assert_eq!(pod.metadata.labels, fat_pod().metadata.labels);
        assert_eq!(pod.metadata.annotations, fat_pod().metadata.annotations);
        assert_eq!(
            pod.spec,
            Some(PodSpec {
                node_name: Some("node-1".into()),
                ..PodSpec::default()
            })
        );
        assert_eq!(pod.status, fat_pod().status);
    }

    #[test]
    fn slim_pod_without_spec_stays_without_spec() {
        let mut pod = fat_pod();
        pod.spec = None;
        slim_pod(&mut pod);
        assert_eq!(pod.spec, None);
    }

    #[test]
    fn strip_managed_fields_leaves_everything_else() {
        let mut service = Service {
            metadata: ObjectMeta {
                name: Some("s".into()),
                finalizers: Some(vec!["keep".into()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        strip_managed_fields(&mut service);
        assert_eq!(service.metadata.managed_fields, None);
        assert_eq!(service.metadata.finalizers, Some(vec!["keep".into()]));
    }

    #[tokio::test]
    async fn caches_are_synced_once_every_kind_completed_a_list() {
        let caches = Caches::new(
            kube::runtime::reflector::store::Writer::default().as_reader(),
            kube::runtime::reflector::store::Writer::default().as_reader(),
            kube::runtime::reflector::store::Writer::default().as_reader(),
            kube::runtime::reflector::store::Writer::default().as_reader(),
            NameHashIndex::default(),
        );
        // Several concurrent waiters must all be woken.
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let caches = caches.clone();
                tokio::spawn(async move { caches.wait_synced().await })
            })
            .collect();
        note_sync::<Pod>(&caches, CacheKind::Pod, &watcher::Event::Init);
        for kind in [CacheKind::Sandbox, CacheKind::Pod, CacheKind::Service] {
            note_sync::<Pod>(&caches, kind, &watcher::Event::InitDone);
        }
        assert!(!caches.is_synced());
        note_sync::<Pod>(&caches, CacheKind::Pvc, &watcher::Event::InitDone);
        assert!(caches.is_synced());
        for waiter in waiters {
            assert!(waiter.await.is_ok());
        }
    }

    #[test]
    fn scoped_child_watch_selects_the_tracking_label_key() {
        assert_eq!(
            child_watcher_config(true).label_selector.as_deref(),
            Some("agents.x-k8s.io/sandbox-name-hash")
        );
        assert_eq!(child_watcher_config(false).label_selector, None);
    }
}
