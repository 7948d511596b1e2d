//! The Sandbox controller's run loop: watches, one reconcile pass (observe → plan → execute → status,
//! events), and the retry policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_sandbox_api::keys::CORE_GROUP;
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::Timestamp;
use agent_sandbox_core::ownership::controller_of;
use agent_sandbox_core::sandbox::{Config, plan};
use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use crate::Error;
use crate::cache::{
    CacheKind, Caches, child_watcher_config, note_sync, slim_pod, strip_managed_fields,
};
use crate::events::EventPublisher;
use crate::executor::{execute, write_status};
use crate::expectations::Expectations;
use crate::feed::Feed;
use crate::index::NameHashIndex;
use crate::metrics::Metrics;
use crate::observe::{observe, seen_in_cache};

/// How long a create or delete is waited for in the caches before it is assumed lost.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a pass waits for the caches' first list before it gives the worker back and retries.
const SYNC_WAIT: Duration = Duration::from_secs(5);
/// First retry delay after a failed pass; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay (controller-runtime's default per-item limiter cap).
const BACKOFF_CAP: Duration = Duration::from_secs(1000);

/// Everything a reconcile pass needs.
pub struct Context {
    client: Client,
    config: Config,
    caches: Caches,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    expectations: Mutex<Expectations>,
    failures: Mutex<HashMap<ObjectRef<Sandbox>, u32>>,
}

/// Settings of the Sandbox controller.
#[derive(Clone, Debug)]
pub struct SandboxControllerSettings {
    /// Decision settings (cluster domain).
    pub config: Config,
    /// Maximum concurrent reconciles.
    pub concurrent_workers: u16,
    /// Watch only Pods and Services carrying the name-hash label.
    pub scoped_child_caches: bool,
    /// Events reporting instance.
    pub identity: String,
}

/// Delay before retry number `failures` (1-based): exponential from 5 ms, capped at 1000 s.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_CAP)
}

/// The watch streams feeding the caches, not yet polled.
pub struct Watches {
    caches: Caches,
    feed: Feed<Sandbox>,
    sandboxes: reflector::store::Writer<Sandbox>,
    pods: reflector::store::Writer<Pod>,
    services: reflector::store::Writer<Service>,
    pvcs: reflector::store::Writer<PersistentVolumeClaim>,
}

impl Watches {
    /// Empty caches; nothing is watched until [`run`] starts.
    pub fn new() -> Self {
        let sandboxes = reflector::store::Writer::default();
        let pods = reflector::store::Writer::default();
        let services = reflector::store::Writer::default();
        let pvcs = reflector::store::Writer::default();
        let caches = Caches::new(
            sandboxes.as_reader(),
            pods.as_reader(),
            services.as_reader(),
            pvcs.as_reader(),
            NameHashIndex::default(),
        );
        Self {
            caches,
            feed: Feed::default(),
            sandboxes,
            pods,
            services,
            pvcs,
        }
    }

    /// The read side of the caches.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// Sandbox changes after the Sandbox cache applied them (subscribe before [`run`]).
    pub fn sandbox_feed(&self) -> &Feed<Sandbox> {
        &self.feed
    }
}

impl Default for Watches {
    fn default() -> Self {
        Self::new()
    }
}

/// The Sandbox a child object reports to: its controller owner reference, if that names a Sandbox of
/// `agents.x-k8s.io` (any version: owner references written by older controllers say v1alpha1).
pub fn owning_sandbox<K: kube::Resource>(child: &K) -> Option<ObjectRef<Sandbox>> {
    let meta = child.meta();
    let owner = controller_of(meta, CORE_GROUP, "Sandbox")?;
    Some(ObjectRef::new(&owner.name).within(meta.namespace.as_deref().unwrap_or_default()))
}

/// Keeps one child cache: a watch feeding the store (and `on_event`), sending the owning Sandbox of
/// every changed child to `triggers`. It runs on its own task so the caches progress whatever the
/// controller's queue is doing.
fn spawn_child_cache<K>(
    client: &Client,
    config: watcher::Config,
    (caches, cache_kind): (Caches, CacheKind),
    writer: reflector::store::Writer<K>,
    slim: fn(&mut K),
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
    triggers: mpsc::UnboundedSender<ObjectRef<Sandbox>>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let kind = K::kind(&()).into_owned();
    let stream = watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .modify(slim)
        .inspect(move |event| {
            if let Ok(event) = event {
                on_event(event);
            }
        })
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                note_sync(&caches, cache_kind, event);
            }
        })
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(child) => {
                    if let Some(sandbox) = owning_sandbox(&child)
                        && triggers.unbounded_send(sandbox).is_err()
                    {
                        return;
                    }
                }
                Err(error) => tracing::warn!(kind, %error, "watch failed; retrying with backoff"),
            }
        }
    })
}

/// Runs the Sandbox controller until `shutdown` completes; the caches become synced on the way.
pub async fn run(
    client: Client,
    settings: SandboxControllerSettings,
    watches: Watches,
    metrics: Arc<Metrics>,
    on_synced: impl FnOnce() + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watches {
        caches,
        feed,
        sandboxes,
        pods,
        services,
        pvcs,
    } = watches;
    let context = Arc::new(Context {
        client: client.clone(),
        config: settings.config,
        caches: caches.clone(),
        events: EventPublisher::new(client.clone(), settings.identity),
        metrics: metrics.clone(),
        expectations: Mutex::new(Expectations::new(EXPECTATION_TIMEOUT)),
        failures: Mutex::default(),
    });

    let forget = context.clone();
    let sandbox_stream = watcher(
        Api::<Sandbox>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip_managed_fields::<Sandbox>)
    .reflect(sandboxes)
    .inspect(move |event| {
        match event {
            Ok(watcher::Event::Delete(sandbox)) => forget.forget(sandbox),
            Ok(event) => note_sync(&forget.caches, CacheKind::Sandbox, event),
            Err(_) => {}
        }
        if let Ok(event) = event {
            feed.publish(&forget.caches.sandboxes, event);
        }
    })
    .applied_objects();
    let children = child_watcher_config(settings.scoped_child_caches);
    let (triggers, child_events) = mpsc::unbounded();
    let index = caches.pod_index.clone();
    let child_caches = [
        spawn_child_cache(
            &client,
            children.clone(),
            (caches.clone(), CacheKind::Pod),
            pods,
            slim_pod,
            move |event| index.apply(event),
            triggers.clone(),
        ),
        spawn_child_cache(
            &client,
            children,
            (caches.clone(), CacheKind::Service),
            services,
            strip_managed_fields::<Service>,
            |_| {},
            triggers.clone(),
        ),
        // PVCs adopted from users may lack the tracking label, so the PVC watch is not label-scoped.
        spawn_child_cache(
            &client,
            watcher::Config::default().any_semantic(),
            (caches.clone(), CacheKind::Pvc),
            pvcs,
            strip_managed_fields::<PersistentVolumeClaim>,
            |_| {},
            triggers,
        ),
    ];

    let synced = caches.clone();
    tokio::spawn(async move {
        synced.wait_synced().await;
        tracing::info!("caches synced");
        on_synced();
    });

    crate::retry::drain(
        Controller::for_stream(sandbox_stream, caches.sandboxes.clone())
            .reconcile_on(child_events)
            .with_config(controller::Config::default().concurrency(settings.concurrent_workers))
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy, context),
        "sandbox",
    )
    .await;
    for cache in child_caches {
        cache.abort();
    }
    tracing::info!("sandbox controller stopped");
}

impl Context {
    fn forget(&self, sandbox: &Sandbox) {
        let uid = sandbox.metadata.uid.clone().unwrap_or_default();
        if let Ok(mut expectations) = self.expectations.lock() {
            expectations.forget(&uid);
        }
        self.metrics.forget(&uid);
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ObjectRef::from(sandbox));
        }
    }

    fn unmet_expectations(&self, uid: &str) -> Option<Duration> {
        let mut expectations = self.expectations.lock().ok()?;
        expectations.unmet(uid, Instant::now(), |child| {
            seen_in_cache(&self.caches, child)
        })
    }

    fn reset_failures(&self, sandbox: &Sandbox) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ObjectRef::from(sandbox));
        }
    }
}

async fn reconcile(sandbox: Arc<Sandbox>, context: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        sandbox.namespace = %sandbox.namespace().unwrap_or_default(),
        sandbox.name = %sandbox.name_any(),
    );
    let started = Instant::now();
    let result = reconcile_pass(&sandbox, &context).instrument(span).await;
    context
        .metrics
        .reconciled(result.is_ok(), started.elapsed());
    if result.is_ok() {
        context.reset_failures(&sandbox);
    }
    result
}

async fn reconcile_pass(sandbox: &Sandbox, context: &Context) -> Result<Action, Error> {
    let uid = sandbox.metadata.uid.clone().unwrap_or_default();

    // The Sandbox watch can deliver before the child caches finished their first list; deciding then
    // would see no children and try to create them again.
    if !context.caches.is_synced()
        && tokio::time::timeout(SYNC_WAIT, context.caches.wait_synced())
            .await
            .is_err()
    {
        // Free the worker; the retry waits again.
        return Err(Error::Reconcile("caches have not synced yet".into()));
    }
    // Decide only on caches that show our own last writes.
    if let Some(wait) = context.unmet_expectations(&uid) {
        tracing::debug!(?wait, "waiting for the caches to show earlier writes");
        return Ok(Action::requeue(wait));
    }

    // The pass decides on the newest cached Sandbox, which the expectations just vouched for.
    let latest = context
        .caches
        .sandboxes
        .get(&ObjectRef::from(sandbox))
        .unwrap_or_else(|| Arc::new(sandbox.clone()));
    let sandbox = latest.as_ref();
    let observed = observe(sandbox, &context.caches);
    let plan = plan(&observed, Timestamp::now(), &context.config);
    let mut executed = execute(&context.client, sandbox, plan.actions()).await;
    for (action, ok) in &executed.outcomes {
        context.metrics.action(action, *ok);
    }
    let outcome = plan.finish(&executed.failures);
    context.events.publish(sandbox, &outcome.events).await;

    let mut errors: Vec<String> = outcome.error.into_iter().collect();
    if let Some(patch) = &outcome.status_patch {
        match write_status(&context.client, sandbox, patch).await {
            Ok(written) => {
                context.metrics.observe_ready(sandbox, patch);
                executed.written.extend(written);
            }
            Err(error) => errors.push(format!("failed to update status: {error}")),
        }
    }
    if !executed.written.is_empty()
        && let Ok(mut expectations) = context.expectations.lock()
    {
        let now = Instant::now();
        for written in executed.written {
            expectations.expect(&uid, written.child, written.expected, now);
        }
    }
    if !errors.is_empty() {
        let message = errors.join("; ");
        tracing::info!(error = %message, "reconcile failed");
        return Err(Error::Reconcile(message));
    }
    tracing::debug!(actions = executed.outcomes.len(), requeue = ?outcome.requeue_after, "reconciled");
    Ok(outcome
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(sandbox: Arc<Sandbox>, _error: &Error, context: Arc<Context>) -> Action {
    let failures = context
        .failures
        .lock()
        .map(|mut failures| {
            let count = failures
                .entry(ObjectRef::from(sandbox.as_ref()))
                .or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
        .unwrap_or(1);
    Action::requeue(backoff(failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod_owned_by(api_version: &str, kind: &str, controller: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("p".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: "sb".into(),
                    uid: "u".into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn children_trigger_the_sandbox_named_by_their_controller_reference() {
        let want = Some(ObjectRef::<Sandbox>::new("sb").within("ns"));
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Sandbox", true)),
            want
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1alpha1", "Sandbox", true)),
            want
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Sandbox", false)),
            None
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("example.com/v1", "Sandbox", true)),
            None
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Other", true)),
            None
        );
        assert_eq!(owning_sandbox(&Pod::default()), None);
    }

    #[test]
    fn backoff_doubles_from_five_milliseconds_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(11), Duration::from_millis(5120));
        assert_eq!(backoff(30), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }
}
