//! The one way to declare a watch: a [`Watch`] of one kind (which objects, how they are slimmed, an
//! optional hook that sees every event first) feeds a [`Watched`] cache — the store, the change feed
//! and whether the first list has completed — that every controller reading the kind shares.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::watch;

use crate::runtime::feed::Feed;
use crate::runtime::slim::strip_managed_fields;

/// The read side of a watch: clone freely.
pub struct Watched<K: Resource<DynamicType = ()> + 'static> {
    /// The objects, slimmed.
    pub store: Store<K>,
    /// Changes, published after the store applied them.
    pub feed: Feed<K>,
    synced: Arc<watch::Sender<bool>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Watched<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            feed: self.feed.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Watched<K> {
    /// Waits until the watch has completed its first list.
    ///
    /// Tracked here rather than with `Store::wait_until_ready`, whose future remembers only the last
    /// task that polled it: with several waiters (passes, the readiness probe) some would never wake.
    pub async fn wait_synced(&self) {
        let mut receiver = self.synced.subscribe();
        // The sender lives in `self`, so the wait ends only when the flag is set.
        let _ = receiver.wait_for(|synced| *synced).await;
    }

    /// True once the watch has completed its first list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Records that the first list has completed (the store has applied it).
    pub(crate) fn mark_synced(&self) {
        self.synced.send_replace(true);
    }
}

/// Sees every watch event of a kind before its store applies it (e.g. to keep an index).
pub type Hook<K> = Box<dyn FnMut(&watcher::Event<K>) + Send>;

/// A watch declared, not started: subscribe to its cache's feed first, then [`Watch::spawn`].
pub struct Watch<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: reflector::store::Writer<K>,
    cache: Watched<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    hook: Option<Hook<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Default for Watch<K> {
    fn default() -> Self {
        Self::new(watcher::Config::default().any_semantic())
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Watch<K> {
    /// Every object `config` selects, in all namespaces, with managedFields stripped.
    pub fn new(config: watcher::Config) -> Self {
        let writer = reflector::store::Writer::default();
        let cache = Watched {
            store: writer.as_reader(),
            feed: Feed::default(),
            synced: Arc::new(watch::channel(false).0),
        };
        Self {
            writer,
            cache,
            config,
            slim: strip_managed_fields::<K>,
            hook: None,
        }
    }

    /// Slims objects with `slim` instead (it must strip managedFields too).
    pub fn slimmed(mut self, slim: fn(&mut K)) -> Self {
        self.slim = slim;
        self
    }

    /// Calls `hook` with every event before the store applies it.
    pub fn with_hook(mut self, hook: impl FnMut(&watcher::Event<K>) + Send + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The read side.
    pub fn cache(&self) -> &Watched<K> {
        &self.cache
    }
}

impl<K> Watch<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Starts watching; the task ends when aborted.
    pub fn spawn(self, api: Api<K>) -> tokio::task::JoinHandle<()> {
        let Self {
            writer,
            cache,
            config,
            slim,
            mut hook,
        } = self;
        let kind = K::kind(&()).into_owned();
        let stream = watcher(api, config)
            .default_backoff()
            .modify(slim)
            .inspect(move |event| {
                if let (Ok(event), Some(hook)) = (event, hook.as_mut()) {
                    hook(event);
                }
            })
            .reflect(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            cache.mark_synced();
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_first_list_completes() {
        let declared = Watch::<ConfigMap>::default();
        let cache = declared.cache().clone();
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.wait_synced().await })
            })
            .collect();
        assert!(!cache.is_synced());
        cache.mark_synced();
        assert!(cache.is_synced());
        for waiter in waiters {
            assert!(waiter.await.is_ok());
        }
    }
}
