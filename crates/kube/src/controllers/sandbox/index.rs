//! An index of cached objects by (namespace, name-hash label), kept in step with a watch stream, so a
//! pass finds a Sandbox's Pods without scanning every cached Pod.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use agent_sandbox_api::keys::labels;
use kube::Resource;
use kube::runtime::watcher::Event;

type Key = (String, String);

#[derive(Debug, Default)]
struct Inner {
    by_hash: HashMap<Key, BTreeSet<String>>,
    /// (namespace, name) → hash, to move an object whose label changed.
    hash_of: HashMap<Key, String>,
    /// Objects of a relist in progress; swapped in at its end.
    relist: Option<Vec<(Key, String)>>,
}

impl Inner {
    fn remove(&mut self, object: &Key) {
        if let Some(hash) = self.hash_of.remove(object) {
            let key = (object.0.clone(), hash);
            if let Some(names) = self.by_hash.get_mut(&key) {
                names.remove(&object.1);
                if names.is_empty() {
                    self.by_hash.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, object: Key, hash: String) {
        self.remove(&object);
        self.by_hash
            .entry((object.0.clone(), hash.clone()))
            .or_default()
            .insert(object.1.clone());
        self.hash_of.insert(object, hash);
    }
}

/// Names of objects per (namespace, `agents.x-k8s.io/sandbox-name-hash` value).
#[derive(Clone, Debug, Default)]
pub struct NameHashIndex(Arc<RwLock<Inner>>);

fn identity<K: Resource>(object: &K) -> Option<(Key, Option<String>)> {
    let meta = object.meta();
    let key = (meta.namespace.clone()?, meta.name.clone()?);
    let hash = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SANDBOX_NAME_HASH))
        .cloned();
    Some((key, hash))
}

impl NameHashIndex {
    /// Applies one watch event.
    pub fn apply<K: Resource>(&self, event: &Event<K>) {
        let Ok(mut inner) = self.0.write() else {
            return;
        };
        match event {
            Event::Apply(object) => {
                if let Some((key, hash)) = identity(object) {
                    match hash {
                        Some(hash) => inner.insert(key, hash),
                        None => inner.remove(&key),
                    }
                }
            }
            Event::Delete(object) => {
                if let Some((key, _)) = identity(object) {
                    inner.remove(&key);
                }
            }
            Event::Init => inner.relist = Some(Vec::new()),
            Event::InitApply(object) => {
                if let Some((key, Some(hash))) = identity(object) {
                    inner.relist.get_or_insert_with(Vec::new).push((key, hash));
                }
            }
            Event::InitDone => {
                let listed = inner.relist.take().unwrap_or_default();
                inner.by_hash.clear();
                inner.hash_of.clear();
                for (key, hash) in listed {
                    inner.insert(key, hash);
                }
            }
        }
    }

    /// Names of the objects in `namespace` labelled with `hash`, sorted.
    pub fn names(&self, namespace: &str, hash: &str) -> Vec<String> {
        self.0
            .read()
            .ok()
            .and_then(|inner| {
                inner
                    .by_hash
                    .get(&(namespace.to_owned(), hash.to_owned()))
                    .map(|names| names.iter().cloned().collect())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(namespace: &str, name: &str, hash: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                labels: hash.map(|h| [(labels::SANDBOX_NAME_HASH.to_owned(), h.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn applied_objects_are_found_by_namespace_and_hash() {
        let index = NameHashIndex::default();
        index.apply(&Event::Apply(pod("ns", "b", Some("h1"))));
        index.apply(&Event::Apply(pod("ns", "a", Some("h1"))));
        index.apply(&Event::Apply(pod("other", "c", Some("h1"))));
        index.apply(&Event::Apply(pod("ns", "d", None)));
        assert_eq!(index.names("ns", "h1"), vec!["a", "b"]);
        assert_eq!(index.names("other", "h1"), vec!["c"]);
        assert!(index.names("ns", "h2").is_empty());
    }

    #[test]
    fn relabelled_unlabelled_and_deleted_objects_move_or_leave() {
        let index = NameHashIndex::default();
        index.apply(&Event::Apply(pod("ns", "a", Some("h1"))));
        index.apply(&Event::Apply(pod("ns", "a", Some("h2"))));
        assert!(index.names("ns", "h1").is_empty());
        assert_eq!(index.names("ns", "h2"), vec!["a"]);
        index.apply(&Event::Apply(pod("ns", "a", None)));
        assert!(index.names("ns", "h2").is_empty());
        index.apply(&Event::Apply(pod("ns", "b", Some("h1"))));
        index.apply(&Event::Delete(pod("ns", "b", Some("h1"))));
        assert!(index.names("ns", "h1").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_completes() {
        let index = NameHashIndex::default();
        index.apply(&Event::Apply(pod("ns", "gone", Some("h1"))));
        index.apply(&Event::<Pod>::Init);
        index.apply(&Event::InitApply(pod("ns", "new", Some("h1"))));
        // Until the relist is done the old view is served.
        assert_eq!(index.names("ns", "h1"), vec!["gone"]);
        index.apply(&Event::<Pod>::InitDone);
        assert_eq!(index.names("ns", "h1"), vec!["new"]);
    }
}
