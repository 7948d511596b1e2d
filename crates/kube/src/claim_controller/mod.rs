//! The SandboxClaim controller: binds each claim to a warm or cold Sandbox and mirrors its status.
//! The decisions are `agent_sandbox_core::claim::pass`; this module feeds it caches, the adoption
//! queue and the API server, and turns its outcome into Events, metrics and retries.

pub mod api;
pub mod metrics;
pub mod triggers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use agent_sandbox_api::keys::EXTENSIONS_GROUP;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_api::validate::ValidationContext;
use agent_sandbox_core::Timestamp;
use agent_sandbox_core::claim::pass::{self, Settings};
use agent_sandbox_core::ownership::controller_of;
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use self::api::{Caches, KubeClaimApi};
use self::triggers::{PoolWatch, SandboxWatch, template_created};
use crate::Error;
use crate::events::EventPublisher;
use crate::extensions::{ExtensionContext, ExtensionSettings};
use crate::feed::Change;
use crate::metrics::Metrics;
use crate::sandbox_controller::backoff;

/// Where an operator may list extra label domains claims may put on Pods.
const ALLOWED_LABEL_DOMAINS_FILE: &str = "/etc/sandbox-config/allowed-label-domains";

type Key = ObjectRef<SandboxClaim>;

/// The SandboxClaim controller, subscribed to its triggers.
pub struct ClaimController {
    context: ExtensionContext,
    workers: u16,
    events: bool,
    settings: Settings,
    claims: mpsc::UnboundedReceiver<Change<SandboxClaim>>,
    sandboxes: mpsc::UnboundedReceiver<Change<Sandbox>>,
    pools: mpsc::UnboundedReceiver<Change<SandboxWarmPool>>,
    templates: mpsc::UnboundedReceiver<Change<SandboxTemplate>>,
}

/// What every pass shares.
struct Shared {
    client: Client,
    /// Claims (the trigger's copy may be older than the cache's).
    claims: Store<SandboxClaim>,
    caches: Caches,
    settings: Settings,
    publisher: Option<EventPublisher>,
    metrics: Arc<Metrics>,
    /// When this process first saw each claim (by UID): the controller startup latency's start.
    first_observed: Mutex<HashMap<Key, (String, Timestamp)>>,
    /// Claims (by UID) whose legacy per-claim NetworkPolicy was looked for.
    legacy_checked: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<Key, u32>>,
}

impl ClaimController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        let domains = std::fs::read_to_string(ALLOWED_LABEL_DOMAINS_FILE).unwrap_or_default();
        Self {
            context: context.clone(),
            workers: settings.claim_workers,
            events: settings.claim_events,
            settings: Settings {
                observability_annotations: settings.claim_observability_annotations,
                validation: ValidationContext::from_allowed_domains(&domains),
            },
            claims: context.claims.feed.subscribe(),
            sandboxes: context.sandbox_feed.subscribe(),
            pools: context.pools.feed.subscribe(),
            templates: context.templates.feed.subscribe(),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        let Self {
            context,
            workers,
            events,
            settings,
            claims,
            sandboxes,
            pools,
            templates,
        } = self;
        let shared = Arc::new(Shared {
            client: context.client.clone(),
            claims: context.claims.store.clone(),
            caches: Caches {
                sandboxes: context.sandboxes.clone(),
                pools: context.pools.store.clone(),
                templates: context.templates.store.clone(),
                queue: Arc::default(),
                created_unseen: Arc::default(),
            },
            settings,
            publisher: events
                .then(|| EventPublisher::new(context.client.clone(), context.identity.clone())),
            metrics: context.metrics.clone(),
            first_observed: Mutex::default(),
            legacy_checked: Mutex::default(),
            failures: Mutex::default(),
        });

        // Claim changes: every one passes (a dropped status conflict relies on the next event),
        // and the first sighting of each claim is remembered.
        let observer = shared.clone();
        let claim_stream = claims.filter_map(move |change| {
            future::ready(match change {
                Change::Applied(claim) => {
                    observer.observe(&claim);
                    Some(Ok::<_, kube::runtime::watcher::Error>((*claim).clone()))
                }
                Change::Deleted(claim) => {
                    observer.forget(&claim);
                    None
                }
            })
        });

        let (wake, woken) = mpsc::unbounded::<Key>();
        let mut sandbox_watch = SandboxWatch::new(shared.caches.queue.clone());
        let sandbox_wake = wake.clone();
        let created_unseen = shared.caches.created_unseen.clone();
        let sandbox_task = tokio::spawn(sandboxes.for_each(move |change| {
            if let (Change::Deleted(sandbox), Ok(mut created)) = (&change, created_unseen.lock()) {
                created.remove(&format!(
                    "{}/{}",
                    sandbox.namespace().unwrap_or_default(),
                    sandbox.name_any()
                ));
            }
            for key in sandbox_watch.apply(&change) {
                let _ = sandbox_wake.unbounded_send(key);
            }
            future::ready(())
        }));
        let mut pool_watch = PoolWatch::new();
        let (pool_wake, claim_store, queue) = (
            wake.clone(),
            context.claims.store.clone(),
            shared.caches.queue.clone(),
        );
        let pool_task = tokio::spawn(pools.for_each(move |change| {
            for key in pool_watch.apply(&change, &claim_store, &queue) {
                let _ = pool_wake.unbounded_send(key);
            }
            future::ready(())
        }));
        let (claim_store, pool_store) = (context.claims.store.clone(), context.pools.store.clone());
        let mut seen_templates = HashSet::new();
        let template_task = tokio::spawn(templates.for_each(move |change| {
            if let Change::Applied(template) = &change
                && seen_templates.insert(ObjectRef::from(template.as_ref()))
            {
                for key in template_created(template, &pool_store, &claim_store) {
                    let _ = wake.unbounded_send(key);
                }
            }
            if let Change::Deleted(template) = &change {
                seen_templates.remove(&ObjectRef::from(template.as_ref()));
            }
            future::ready(())
        }));

        // Decide only once every cache a pass reads has listed; a shutdown before that ends at once.
        let shutdown = shutdown.shared();
        tokio::select! {
            () = context.wait_synced() => {}
            () = shutdown.clone() => return,
        }
        tracing::info!("claim controller caches synced");

        crate::retry::drain(
            Controller::for_stream(claim_stream, context.claims.store.clone())
                .reconcile_on(woken)
                .with_config(controller::Config::default().concurrency(workers))
                .graceful_shutdown_on(shutdown)
                .run(reconcile, error_policy, shared),
            "claim",
        )
        .await;
        for task in [sandbox_task, pool_task, template_task] {
            task.abort();
        }
        tracing::info!("claim controller stopped");
    }
}

impl Shared {
    fn observe(&self, claim: &SandboxClaim) {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        if let Ok(mut seen) = self.first_observed.lock() {
            let entry = seen
                .entry(ObjectRef::from(claim))
                .or_insert_with(|| (uid.clone(), Timestamp::now()));
            if entry.0 != uid {
                *entry = (uid, Timestamp::now());
            }
        }
    }

    fn forget(&self, claim: &SandboxClaim) {
        let key = ObjectRef::from(claim);
        if let Ok(mut seen) = self.first_observed.lock()
            && seen.get(&key).map(|(uid, _)| uid) == claim.metadata.uid.as_ref()
        {
            seen.remove(&key);
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key);
        }
        if let (Ok(mut checked), Some(uid)) = (self.legacy_checked.lock(), &claim.metadata.uid) {
            checked.remove(uid);
        }
    }

    fn first_observed(&self, claim: &SandboxClaim) -> Option<Timestamp> {
        let seen = self.first_observed.lock().ok()?;
        let (uid, at) = seen.get(&ObjectRef::from(claim))?;
        (claim.metadata.uid.as_ref() == Some(uid)).then_some(*at)
    }

    fn drain(&self, claim: &SandboxClaim) {
        if let Ok(mut seen) = self.first_observed.lock() {
            seen.remove(&ObjectRef::from(claim));
        }
    }

    /// Deletes `<claim>-network-policy` if this claim controls it (made by old upstream versions).
    /// Looked for once per claim per process rather than every pass: nothing creates it any more.
    async fn remove_legacy_policy(&self, claim: &SandboxClaim) {
        let Some(uid) = claim.metadata.uid.clone() else {
            return;
        };
        if !self
            .legacy_checked
            .lock()
            .is_ok_and(|mut checked| checked.insert(uid.clone()))
        {
            return;
        }
        let api: Api<NetworkPolicy> =
            Api::namespaced(self.client.clone(), &claim.namespace().unwrap_or_default());
        let name = format!("{}-network-policy", claim.name_any());
        let Ok(Some(policy)) = api.get_opt(&name).await else {
            return;
        };
        let ours = controller_of(&policy.metadata, EXTENSIONS_GROUP, "SandboxClaim")
            .is_some_and(|r| r.uid == uid);
        if !ours {
            return;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: policy.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(error) = api.delete(&name, &params).await {
            tracing::info!(%error, policy = name, "could not delete the legacy claim NetworkPolicy");
        }
    }
}

async fn reconcile(claim: Arc<SandboxClaim>, shared: Arc<Shared>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile_claim",
        claim.namespace = %claim.namespace().unwrap_or_default(),
        claim.name = %claim.name_any(),
    );
    reconcile_pass(ObjectRef::from(claim.as_ref()), &shared)
        .instrument(span)
        .await
}

async fn reconcile_pass(key: Key, shared: &Shared) -> Result<Action, Error> {
    // Decide on the newest cached claim (the trigger may carry an older copy).
    let Some(latest) = shared.claims.get(&key) else {
        return Ok(Action::await_change());
    };
    shared.remove_legacy_policy(&latest).await;
    let api = KubeClaimApi::new(&shared.client, &shared.caches, &latest);
    let first_observed = shared.first_observed(&latest);
    let outcome = pass::reconcile(
        &api,
        (*latest).clone(),
        first_observed,
        Timestamp::now(),
        &shared.settings,
    )
    .await;
    let namespace = latest.namespace().unwrap_or_default();
    for served in &outcome.served {
        shared.metrics.claims().served(&namespace, served);
    }
    if let Some(latencies) = &outcome.latencies {
        shared.metrics.claims().ready(latencies);
    }
    if outcome.drain_first_observed {
        shared.drain(&latest);
    }
    if let Some(publisher) = &shared.publisher {
        publisher.publish(latest.as_ref(), &outcome.events).await;
    }
    if let Some(error) = outcome.error {
        tracing::info!(claim = %key, %error, "claim pass failed");
        return Err(Error::Reconcile(error));
    }
    if let Ok(mut failures) = shared.failures.lock() {
        failures.remove(&key);
    }
    Ok(outcome
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(claim: Arc<SandboxClaim>, _error: &Error, shared: Arc<Shared>) -> Action {
    let failures = shared
        .failures
        .lock()
        .map(|mut failures| {
            let count = failures.entry(ObjectRef::from(claim.as_ref())).or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
        .unwrap_or(1);
    Action::requeue(backoff(failures))
}
