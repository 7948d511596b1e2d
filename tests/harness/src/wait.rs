//! Waiting on objects with watches and a timeout; a timeout reports the object as last seen.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default timeout for things the control plane does on its own in well under a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Watches `name` until `cond` holds and returns the object (None if the condition holds for absence).
/// `what` says in words what is awaited, for the timeout message.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> anyhow::Result<Option<K>>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(result) => result.with_context(|| format!("watching {name} for {what}")),
        Err(_) => {
            let seen = match api.get_opt(name).await {
                Ok(Some(obj)) => serde_yaml::to_string(&obj).unwrap_or_default(),
                Ok(None) => "<absent>".to_string(),
                Err(e) => format!("<could not read it: {e}>"),
            };
            bail!(
                "timed out after {}s waiting for {what} ({name}); last seen:\n{seen}",
                timeout.as_secs()
            )
        }
    }
}

/// Like [`wait_for`] but the object must exist when the condition holds.
pub async fn wait_for_object<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> anyhow::Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    wait_for(api, name, what, timeout, cond)
        .await?
        .with_context(|| format!("{name} is gone while waiting for {what}"))
}

/// Waits until the object `obj` (by name and uid) no longer exists.
pub async fn wait_deleted<K>(api: &Api<K>, obj: &K, timeout: Duration) -> anyhow::Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    let uid = obj.uid().context("object has no uid")?;
    let name = obj.name_any();
    wait_for(
        api,
        &name,
        "it to be deleted",
        timeout,
        conditions::is_deleted(&uid),
    )
    .await
    .map(|_| ())
}

/// Watches every object `config` selects through `api` until `cond` holds for the whole set (sorted
/// by name) and returns it. On timeout the error lists the set as last seen, one `describe` line an
/// object. `what` says in words what is awaited.
pub async fn wait_for_set<K>(
    api: &Api<K>,
    config: kube::runtime::watcher::Config,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&[K]) -> bool,
    describe: impl Fn(&K) -> String,
) -> anyhow::Result<Vec<K>>
where
    K: Clone + Debug + Send + Sync + DeserializeOwned + Resource + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};

    let (reader, writer) = reflector::store();
    let stream = watcher(api.clone(), config)
        .default_backoff()
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let current = || {
        let mut all: Vec<K> = reader.state().iter().map(|o| o.as_ref().clone()).collect();
        all.sort_by_key(ResourceExt::name_any);
        all
    };
    let watched = tokio::time::timeout(timeout, async {
        let mut listed = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(_) => {}
                Err(error) => eprintln!("watch error (retrying): {error}"),
            }
            if listed && cond(&current()) {
                return true;
            }
        }
        false
    })
    .await;
    let all = current();
    if watched != Ok(true) {
        let seen: Vec<String> = all.iter().map(describe).collect();
        bail!(
            "timed out after {}s waiting for {what}; last seen: {seen:#?}",
            timeout.as_secs()
        );
    }
    Ok(all)
}
