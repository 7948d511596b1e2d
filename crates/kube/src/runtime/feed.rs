//! One watch per kind, many readers: a watch applies each change to its cache and then hands the
//! changed object to every controller that subscribed, so the Sandbox controller and the extension
//! controllers share a single Sandbox watch (and a single copy of every Sandbox in memory).

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use kube::runtime::reflector::{ObjectRef, Store};
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

    /// Publishes the object of a watch event that a reflector has just applied to `store` (list
    /// markers carry no object and are not published). An applied object is handed out as the
    /// store's own `Arc` when the store holds exactly that version, so a change costs no copy of the
    /// object; otherwise (a deletion, or a re-list the store swaps in only at its end) it is copied.
    pub fn publish(&self, store: &Store<K>, event: &watcher::Event<K>)
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let change = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let stored = store.get(&ObjectRef::from(object)).filter(|stored| {
                    stored.meta().resource_version == object.meta().resource_version
                        && stored.meta().uid == object.meta().uid
                });
                Change::Applied(stored.unwrap_or_else(|| Arc::new(object.clone())))
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
        let store = kube::runtime::reflector::store::Writer::<ConfigMap>::default().as_reader();
        let first = feed.subscribe();
        let second = feed.subscribe();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(named("a")),
            watcher::Event::InitDone,
            watcher::Event::Apply(named("b")),
            watcher::Event::Delete(named("a")),
        ] {
            feed.publish(&store, &event);
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
    async fn an_applied_object_is_the_stores_own_copy_when_the_versions_match() {
        let mut writer = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let mut current = named("x");
        current.metadata.namespace = Some("ns".into());
        current.metadata.resource_version = Some("2".into());
        writer.apply_watcher_event(&watcher::Event::Apply(current.clone()));
        let feed = Feed::default();
        let mut changes = feed.subscribe();
        feed.publish(&store, &watcher::Event::Apply(current.clone()));
        let mut older = current.clone();
        older.metadata.resource_version = Some("1".into());
        feed.publish(&store, &watcher::Event::InitApply(older));
        let stored = store.get(&ObjectRef::from(&current));
        let shared = changes.next().await;
        assert!(
            matches!((&shared, &stored), (Some(change), Some(stored)) if Arc::ptr_eq(change.object(), stored))
        );
        let copied = changes.next().await;
        assert!(copied.as_ref().is_some_and(|change| {
            change.object().metadata.resource_version.as_deref() == Some("1")
        }));
    }

    #[tokio::test]
    async fn a_dropped_subscriber_does_not_stop_the_others() {
        let feed = Feed::default();
        let store = kube::runtime::reflector::store::Writer::<ConfigMap>::default().as_reader();
        drop(feed.subscribe());
        let mut live = feed.subscribe();
        feed.publish(&store, &watcher::Event::Apply(named("x")));
        assert_eq!(
            live.next().await.map(|change| name(&change)),
            Some((true, "x".to_owned()))
        );
        assert_eq!(feed.subscribers.lock().map(|s| s.len()).ok(), Some(1));
    }
}
