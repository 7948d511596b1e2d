//! The bench's own watch: when each object of a kind was first seen with `Ready=True`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::Api;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Whether an object's `status.conditions` has `Ready=True`.
pub fn is_ready(obj: &DynamicObject) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Watches one kind in one namespace, recording the first moment each object was seen Ready.
pub struct ReadyTracker {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl ReadyTracker {
    /// Starts the watch (optionally filtered by a label selector) and returns once its first list is done.
    pub async fn start(api: Api<DynamicObject>, labels: Option<&str>) -> anyhow::Result<Self> {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (count_tx, count) = watch::channel(0);
        let (synced_tx, synced) = oneshot::channel();
        let mut config = watcher::Config::default();
        if let Some(labels) = labels {
            config = config.labels(labels);
        }
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut synced_tx = Some(synced_tx);
            let mut stream = watcher(api, config).default_backoff().boxed();
            while let Some(event) = stream.next().await {
                let obj = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = synced_tx.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("[bench] watch error (retrying): {e}");
                        continue;
                    }
                };
                if !is_ready(&obj) {
                    continue;
                }
                let Some(name) = obj.metadata.name else {
                    continue;
                };
                let now = Instant::now();
                let n = {
                    let Ok(mut map) = record.lock() else { return };
                    map.entry(name).or_insert(now);
                    map.len()
                };
                count_tx.send_replace(n);
            }
        });
        tokio::time::timeout(Duration::from_secs(60), synced)
            .await
            .context("the bench's watch did not complete its first list within 60s")?
            .context("the bench's watch stopped")?;
        Ok(Self { seen, count, task })
    }

    /// Objects seen Ready so far.
    pub fn ready(&self) -> usize {
        *self.count.borrow()
    }

    /// When `name` was first seen Ready.
    pub fn ready_at(&self, name: &str) -> Option<Instant> {
        self.seen.lock().ok()?.get(name).copied()
    }

    /// The first-Ready moments of every recorded object.
    pub fn ready_times(&self) -> Vec<Instant> {
        self.seen
            .lock()
            .map(|m| m.values().copied().collect())
            .unwrap_or_default()
    }

    /// The latest first-Ready moment of all recorded objects.
    pub fn last_ready(&self) -> Option<Instant> {
        self.seen.lock().ok()?.values().max().copied()
    }

    /// Waits until at least `n` objects have been seen Ready, or fails after `timeout` with `what` and
    /// the count reached.
    pub async fn wait_for(&self, n: usize, timeout: Duration, what: &str) -> anyhow::Result<()> {
        let mut rx = self.count.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("the bench's watch stopped while waiting for {what}"),
            Err(_) => bail!(
                "timed out after {:.0}s waiting for {what}: {} of {n} Ready",
                timeout.as_secs_f64(),
                self.ready()
            ),
        }
    }
}

impl Drop for ReadyTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_means_a_ready_true_condition() -> anyhow::Result<()> {
        let obj = |status: serde_json::Value| -> anyhow::Result<DynamicObject> {
            Ok(serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "status": status
            }))?)
        };
        assert!(is_ready(&obj(
            serde_json::json!({"conditions": [{"type": "Ready", "status": "True"}]})
        )?));
        assert!(!is_ready(&obj(
            serde_json::json!({"conditions": [{"type": "Ready", "status": "False"}]})
        )?));
        assert!(!is_ready(&obj(serde_json::json!({}))?));
        Ok(())
    }
}
