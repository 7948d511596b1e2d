//! What the Sandbox controller watches — Sandboxes, and the Pods, Services and PVCs it owns — and the
//! read side its passes decide from. The extension controllers read the same Sandbox and Pod caches.

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::controllers::sandbox::index::NameHashIndex;
use crate::runtime::slim::slim_pod;
use crate::runtime::watch::{Watch, Watched};

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

/// The stores a pass reads.
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
}

impl Caches {
    /// Wraps the stores.
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
        }
    }
}

/// The Sandbox controller's watched caches: stores, feeds and sync state.
#[derive(Clone)]
pub struct SandboxCaches {
    /// Sandboxes.
    pub sandboxes: Watched<Sandbox>,
    /// Pods (slimmed).
    pub pods: Watched<Pod>,
    /// Services.
    pub services: Watched<Service>,
    /// PersistentVolumeClaims.
    pub pvcs: Watched<PersistentVolumeClaim>,
    /// Pod names by namespace and name-hash label, kept by the Pod watch.
    pub pod_index: NameHashIndex,
}

impl SandboxCaches {
    /// The stores a pass reads.
    pub fn stores(&self) -> Caches {
        Caches::new(
            self.sandboxes.store.clone(),
            self.pods.store.clone(),
            self.services.store.clone(),
            self.pvcs.store.clone(),
            self.pod_index.clone(),
        )
    }

    /// Waits until every cache has completed its first list.
    pub async fn wait_synced(&self) {
        self.sandboxes.wait_synced().await;
        self.pods.wait_synced().await;
        self.services.wait_synced().await;
        self.pvcs.wait_synced().await;
    }

    /// True once every cache has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.sandboxes.is_synced()
            && self.pods.is_synced()
            && self.services.is_synced()
            && self.pvcs.is_synced()
    }
}

/// The four watches, declared and not started.
pub struct SandboxWatches {
    sandboxes: Watch<Sandbox>,
    pods: Watch<Pod>,
    services: Watch<Service>,
    pvcs: Watch<PersistentVolumeClaim>,
    caches: SandboxCaches,
}

impl SandboxWatches {
    /// Declares the watches; with `scoped_children`, Pods and Services are label-scoped.
    pub fn new(scoped_children: bool) -> Self {
        let pod_index = NameHashIndex::default();
        let index = pod_index.clone();
        let sandboxes = Watch::default();
        let pods = Watch::new(child_watcher_config(scoped_children))
            .slimmed(slim_pod)
            .with_hook(move |event| index.apply(event));
        let services = Watch::new(child_watcher_config(scoped_children));
        // PVCs adopted from users may lack the tracking label, so the PVC watch is not label-scoped.
        let pvcs = Watch::default();
        let caches = SandboxCaches {
            sandboxes: sandboxes.cache().clone(),
            pods: pods.cache().clone(),
            services: services.cache().clone(),
            pvcs: pvcs.cache().clone(),
            pod_index,
        };
        Self {
            sandboxes,
            pods,
            services,
            pvcs,
            caches,
        }
    }

    /// The read side.
    pub fn caches(&self) -> &SandboxCaches {
        &self.caches
    }

    /// Starts the four watches; abort the handles to stop them.
    pub fn spawn(self, client: &Client) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            self.sandboxes.spawn(Api::all(client.clone())),
            self.pods.spawn(Api::all(client.clone())),
            self.services.spawn(Api::all(client.clone())),
            self.pvcs.spawn(Api::all(client.clone())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_are_synced_once_every_kind_completed_a_list() {
        let caches = SandboxWatches::new(false).caches().clone();
        // Several concurrent waiters must all be woken.
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let caches = caches.clone();
                tokio::spawn(async move { caches.wait_synced().await })
            })
            .collect();
        caches.sandboxes.mark_synced();
        caches.pods.mark_synced();
        caches.services.mark_synced();
        assert!(!caches.is_synced());
        caches.pvcs.mark_synced();
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
