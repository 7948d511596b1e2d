//! The two watches that keep the [`Catalog`] current: Sandbox metadata, and pods that carry the
//! Sandbox name-hash label. Each watch's complete list (the first one, and every re-list after
//! the watch expired) replaces that half of the catalog at once, so lookups never see a half-listed
//! state; between lists, each change is applied as it arrives.

use std::sync::Arc;

use agent_sandbox_api::keys::labels::SANDBOX_NAME_HASH;
use agent_sandbox_api::v1beta1::Sandbox;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::catalog::{self, Catalog, ObjectKey, PodRecord, SandboxRecord};

/// One half of the catalog and how its objects become records.
trait Half {
    type Object;
    type Record;
    const WHAT: &'static str;
    fn key(object: &Self::Object) -> Option<ObjectKey>;
    fn record(object: &Self::Object) -> Option<(ObjectKey, Self::Record)>;
    fn upsert(catalog: &Catalog, key: ObjectKey, record: Self::Record);
    fn remove(catalog: &Catalog, key: &ObjectKey);
    fn replace(catalog: &Catalog, all: Vec<(ObjectKey, Self::Record)>);
}

struct Sandboxes;

impl Half for Sandboxes {
    type Object = PartialObjectMeta<Sandbox>;
    type Record = SandboxRecord;
    const WHAT: &'static str = "Sandboxes";
    fn key(object: &Self::Object) -> Option<ObjectKey> {
        meta_key(&object.metadata)
    }
    fn record(object: &Self::Object) -> Option<(ObjectKey, SandboxRecord)> {
        catalog::sandbox_record(&object.metadata)
    }
    fn upsert(catalog: &Catalog, key: ObjectKey, record: SandboxRecord) {
        catalog.upsert_sandbox(key, record);
    }
    fn remove(catalog: &Catalog, key: &ObjectKey) {
        catalog.remove_sandbox(key);
    }
    fn replace(catalog: &Catalog, all: Vec<(ObjectKey, SandboxRecord)>) {
        catalog.replace_sandboxes(all);
    }
}

struct Pods;

impl Half for Pods {
    type Object = Pod;
    type Record = PodRecord;
    const WHAT: &'static str = "Sandbox pods";
    fn key(object: &Pod) -> Option<ObjectKey> {
        meta_key(&object.metadata)
    }
    fn record(object: &Pod) -> Option<(ObjectKey, PodRecord)> {
        catalog::pod_record(object)
    }
    fn upsert(catalog: &Catalog, key: ObjectKey, record: PodRecord) {
        catalog.upsert_pod(key, record);
    }
    fn remove(catalog: &Catalog, key: &ObjectKey) {
        catalog.remove_pod(key);
    }
    fn replace(catalog: &Catalog, all: Vec<(ObjectKey, PodRecord)>) {
        catalog.replace_pods(all);
    }
}

fn meta_key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectKey> {
    Some(ObjectKey::new(
        meta.namespace.as_deref()?,
        meta.name.as_deref()?,
    ))
}

/// Watches Sandbox metadata and Sandbox pods, in `namespace` or all namespaces, feeding `catalog` until the process ends.
pub async fn run(client: Client, namespace: Option<String>, catalog: Arc<Catalog>) {
    // `Api<PartialObjectMeta<_>>` asks for metadata only: the router needs names and UIDs, not
    // pod templates.
    let (sandboxes, pods): (Api<PartialObjectMeta<Sandbox>>, Api<Pod>) = match namespace.as_deref()
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    // Served from the API server's watch cache; the router needs no quorum read.
    let sandbox_events =
        watcher(sandboxes, watcher::Config::default().any_semantic()).default_backoff();
    // Only pods with the name-hash label: the controller puts it on every Sandbox pod, so the
    // router never holds the cluster's other pods.
    let pod_events = watcher(
        pods,
        watcher::Config::default()
            .labels(SANDBOX_NAME_HASH)
            .any_semantic(),
    )
    .default_backoff();
    tokio::join!(
        follow::<Sandboxes>(sandbox_events, &catalog),
        follow::<Pods>(pod_events, &catalog),
    );
}

async fn follow<H: Half>(
    events: impl Stream<Item = Result<watcher::Event<H::Object>, watcher::Error>>,
    catalog: &Catalog,
) {
    let mut events = std::pin::pin!(events);
    // Objects of a list in progress; replaces the catalog's half when the list is complete.
    let mut listing: Vec<(ObjectKey, H::Record)> = Vec::new();
    let mut listed_once = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(object)) => listing.extend(H::record(&object)),
            Ok(watcher::Event::InitDone) => {
                let count = listing.len();
                H::replace(catalog, std::mem::take(&mut listing));
                if !listed_once {
                    tracing::info!(count, "listed {}", H::WHAT);
                    listed_once = true;
                }
            }
            Ok(watcher::Event::Apply(object)) => match H::record(&object) {
                Some((key, record)) => H::upsert(catalog, key, record),
                // No longer one of ours (e.g. a pod whose owner reference was removed).
                None => {
                    if let Some(key) = H::key(&object) {
                        H::remove(catalog, &key);
                    }
                }
            },
            Ok(watcher::Event::Delete(object)) => {
                if let Some(key) = H::key(&object) {
                    H::remove(catalog, &key);
                }
            }
            Err(error) => tracing::warn!("watching {} failed (retrying): {error}", H::WHAT),
        }
    }
}
