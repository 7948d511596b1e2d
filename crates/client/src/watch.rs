//! Waiting for one object to reach a state: a watch on it by name (it reconnects and re-lists on
//! its own, 410 Gone included), bounded by a timeout that reports the last state seen.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, chain, kube_message, status_message};

/// What a look at the object decides.
pub(crate) enum Step<T> {
    /// Done, with this value.
    Done(T),
    /// Not yet; the text describes the object now, for a timeout's message.
    Wait(String),
    /// It will not get there.
    Fail(Error),
}

/// Watches `api`'s object `name` until `decide` says done or failed; its deletion (or absence)
/// is `gone()`. `what` names the wait in a timeout's message.
pub(crate) async fn watch_until<K, T>(
    api: &Api<K>,
    name: &str,
    what: String,
    timeout: Duration,
    gone: impl Fn() -> Error,
    mut decide: impl FnMut(&K) -> Step<T>,
) -> Result<T>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut last = "nothing seen yet".to_owned();
    let watched = async {
        let mut events = std::pin::pin!(watcher(api.clone(), config).default_backoff());
        let mut seen = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => seen = false,
                Ok(watcher::Event::InitApply(object) | watcher::Event::Apply(object)) => {
                    seen = true;
                    match decide(&object) {
                        Step::Done(value) => return Ok(value),
                        Step::Fail(err) => return Err(err),
                        Step::Wait(now) => last = now,
                    }
                }
                Ok(watcher::Event::InitDone) if !seen => return Err(gone()),
                Ok(watcher::Event::InitDone) => {}
                Ok(watcher::Event::Delete(_)) => return Err(gone()),
                Err(err) => {
                    if let Some(denied) = refused(&err, &what) {
                        return Err(denied);
                    }
                    // Anything else is retried with backoff; it shows if the wait times out.
                    last = format!("the watch failed: {}", watch_message(&err));
                }
            }
        }
        Err(gone())
    };
    let result = tokio::time::timeout(timeout, watched).await;
    result.unwrap_or_else(|_| {
        Err(Error::WaitTimeout {
            what,
            timeout,
            last,
        })
    })
}

/// A watch error no retry will fix (no permission, no such resource type), as an error to stop on.
fn refused(err: &watcher::Error, what: &str) -> Option<Error> {
    match err {
        watcher::Error::InitialListFailed(inner) | watcher::Error::WatchStartFailed(inner) => {
            matches!(inner, kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404))
                .then(|| Error::kube(format!("watching for {what}"), inner))
        }
        _ => None,
    }
}

/// A watch error on one line (kube's own `Display` of an API error appends a debug dump).
fn watch_message(err: &watcher::Error) -> String {
    match err {
        watcher::Error::InitialListFailed(inner)
        | watcher::Error::WatchStartFailed(inner)
        | watcher::Error::WatchFailed(inner) => kube_message(inner),
        watcher::Error::WatchError(status) => status_message(status),
        other => chain(other),
    }
}
