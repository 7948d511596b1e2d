//! A cache of one kind fed by one watch, shared by every controller that reads the kind: the store,
//! the change feed, and whether the first list has completed.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::watch;

use crate::cache::strip_managed_fields;
use crate::feed::Feed;

/// The read side of a shared watch: clone freely.
pub struct SharedCache<K: Resource<DynamicType = ()> + 'static> {
    /// The objects (managedFields stripped).
    pub store: Store<K>,
    /// Changes, published after the store applied them.
    pub feed: Feed<K>,
    synced: Arc<watch::Sender<bool>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for SharedCache<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            feed: self.feed.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> SharedCache<K> {
    /// Waits until the watch has completed its first list.
    pub async fn wait_synced(&self) {
        let mut receiver = self.synced.subscribe();
        // The sender lives in `self`, so the wait ends only when the flag is set.
        let _ = receiver.wait_for(|synced| *synced).await;
    }

    /// True once the watch has completed its first list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }
}

/// A watch not started yet: subscribe to its cache's feed first, then [`SharedWatch::spawn`].
pub struct SharedWatch<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: reflector::store::Writer<K>,
    cache: SharedCache<K>,
}

impl<K> Default for SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn default() -> Self {
        let writer = reflector::store::Writer::default();
        let cache = SharedCache {
            store: writer.as_reader(),
            feed: Feed::default(),
            synced: Arc::new(watch::channel(false).0),
        };
        Self { writer, cache }
    }
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// The read side.
    pub fn cache(&self) -> &SharedCache<K> {
        &self.cache
    }

    /// Starts watching every object of the kind in all namespaces; the task ends when aborted.
    pub fn spawn(self, api: Api<K>) -> tokio::task::JoinHandle<()> {
        let Self { writer, cache } = self;
        let kind = K::kind(&()).into_owned();
        let stream = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(strip_managed_fields::<K>)
            .reflect(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            cache.synced.send_replace(true);
                        }
                        cache.feed.publish(&cache.store, &event);
                    }
                    Err(error) => {
                        tracing::warn!(kind, %error, "watch failed; retrying with backoff");
                    }
                }
            }
        })
    }
}
