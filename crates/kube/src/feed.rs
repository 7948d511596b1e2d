//! One watch per kind, many readers: a watch applies each change to its cache and then hands the
//! changed object to every controller that subscribed, so the Sandbox controller and the extension
//! controllers share a single Sandbox watch (and a single copy of every Sandbox in memory).

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use kube::runtime::watcher;

/// A change applied to a cache, published after the cache shows it.
#[derive(Debug)]
pub enum Change<K> {
    /// The object was created or updated (or listed).
    Applied(Arc<K>),
    /// The object was deleted (its last known state).
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Applied(object) => Self::Applied(object.clone()),
            Self::Deleted(object) => Self::Deleted(object.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object the change is about.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Applied(object) | Self::Deleted(object) => object,
        }
    }
}

/// Fans the changes of one watch out to its subscribers.
pub struct Feed<K> {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>,
}

impl<K> Clone for Feed<K> {
    fn clone(&self) -> Self {
        Self {
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Default for Feed<K> {
    fn default() -> Self {
        Self {
            subscribers: Arc::default(),
        }
    }
}

impl<K> Feed<K> {
    /// A stream of every change published from now on. Subscribe before the watch starts to see the
    /// initial list.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (sender, receiver) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(sender);
        }
        receiver
    }

    /// Hands `change` to every live subscriber (dropped receivers are forgotten).
    pub fn send(&self, change: &Change<K>) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.retain(|subscriber| subscriber.unbounded_send(change.clone()).is_ok());
        }
    }

    /// Publishes the object of a watch event that a reflector has just applied (list markers carry
    /// no object and are not published).
    pub fn publish(&self, event: &watcher::Event<K>)
    where
        K: Clone,
    {
        let change = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                Change::Applied(Arc::new(object.clone()))
            }
            watcher::Event::Delete(object) => Change::Deleted(Arc::new(object.clone())),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        self.send(&change);
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn named(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn name(change: &Change<ConfigMap>) -> (bool, String) {
        (
            matches!(change, Change::Applied(_)),
            change.object().metadata.name.clone().unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_change_in_order_and_list_markers_are_skipped() {
        let feed = Feed::default();
        let first = feed.subscribe();
        let second = feed.subscribe();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(named("a")),
            watcher::Event::InitDone,
            watcher::Event::Apply(named("b")),
            watcher::Event::Delete(named("a")),
        ] {
            feed.publish(&event);
        }
        drop(feed);
        let want = vec![
            (true, "a".to_owned()),
            (true, "b".to_owned()),
            (false, "a".to_owned()),
        ];
        for receiver in [first, second] {
            let seen: Vec<_> = receiver.map(|change| name(&change)).collect().await;
            assert_eq!(seen, want);
        }
    }

    #[tokio::test]
    async fn a_dropped_subscriber_does_not_stop_the_others() {
        let feed = Feed::default();
        drop(feed.subscribe());
        let mut live = feed.subscribe();
        feed.publish(&watcher::Event::Apply(named("x")));
        assert_eq!(
            live.next().await.map(|change| name(&change)),
            Some((true, "x".to_owned()))
        );
        assert_eq!(feed.subscribers.lock().map(|s| s.len()).ok(), Some(1));
    }
}
