//! The SandboxWarmPool controller: keeps each pool at its size with fresh members.
//!
//! Triggers: pool changes; Sandbox changes, mapped to the controlling pool (and to the pool that
//! controlled it before, when a claim took it over) after the creation/deletion expectations were
//! updated; template changes, mapped to every pool of the namespace that references the template.
//! A pass reads the pool, its members (with their Pods) and the template from the caches, asks
//! [`agent_sandbox_warmpool::pool::plan`] what to do, executes it and writes the status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::ownership::controlling_pool;
use agent_sandbox_warmpool::Timestamp;
use agent_sandbox_warmpool::expectations::Expectations;
use agent_sandbox_warmpool::pool::{Config, Member, Memory, Observed, plan};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action as Requeue};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::Instrument;

use crate::Error;
use crate::events::EventPublisher;
use crate::extensions::{ExtensionContext, ExtensionSettings};
use crate::feed::Change;
use crate::metrics::Metrics;
use crate::retry::Failures;

mod writes;

/// The SandboxWarmPool controller, subscribed to its triggers.
pub struct WarmPoolController {
    context: ExtensionContext,
    workers: u16,
    config: Config,
    pools: mpsc::UnboundedReceiver<Change<SandboxWarmPool>>,
    sandboxes: mpsc::UnboundedReceiver<Change<Sandbox>>,
    templates: mpsc::UnboundedReceiver<Change<SandboxTemplate>>,
}

/// What the controller remembers per pool between passes (in memory, dropped with the pool).
#[derive(Default)]
struct State {
    expectations: Mutex<Expectations>,
    memory: Mutex<HashMap<ObjectRef<SandboxWarmPool>, Memory>>,
    /// The pool that controlled each pool-controlled Sandbox when it was last seen, by UID.
    members: Mutex<HashMap<String, ObjectRef<SandboxWarmPool>>>,
}

struct Context {
    client: kube::Client,
    config: Config,
    sandboxes: Store<Sandbox>,
    pods: Store<Pod>,
    templates: Store<SandboxTemplate>,
    state: Arc<State>,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    failures: Failures<SandboxWarmPool>,
}

/// The expectations key of a pool: `namespace/name`.
pub fn pool_key(pool: &ObjectRef<SandboxWarmPool>) -> String {
    format!(
        "{}/{}",
        pool.namespace.as_deref().unwrap_or_default(),
        pool.name
    )
}

/// The pool controlling `sandbox` (a SandboxWarmPool of the extensions group, any version), as a
/// reference to queue.
pub fn pool_ref(sandbox: &Sandbox) -> Option<ObjectRef<SandboxWarmPool>> {
    controlling_pool(sandbox)
        .map(|name| ObjectRef::new(name).within(&sandbox.namespace().unwrap_or_default()))
}

impl State {
    /// Records what a Sandbox change means for the expectations (a new member was seen, a member is
    /// gone) and returns the pools to look at again. Runs before those pools are queued, so a pass
    /// triggered by our own write already sees the lowered expectation.
    fn observe_sandbox(&self, change: &Change<Sandbox>) -> Vec<ObjectRef<SandboxWarmPool>> {
        let sandbox = change.object();
        let uid = sandbox.uid().unwrap_or_default();
        let owner = pool_ref(sandbox);
        let (Ok(mut members), Ok(mut expectations)) =
            (self.members.lock(), self.expectations.lock())
        else {
            return owner.into_iter().collect();
        };
        let mut pools = Vec::new();
        match change {
            Change::Applied(_) => {
                let previous = match &owner {
                    Some(pool) => members.insert(uid, pool.clone()),
                    None => members.remove(&uid),
                };
                match previous {
                    None => {
                        if let Some(pool) = &owner {
                            expectations.creation_observed(&pool_key(pool));
                        }
                    }
                    Some(previous) if Some(&previous) != owner.as_ref() => pools.push(previous),
                    Some(_) => {}
                }
            }
            Change::Deleted(_) => {
                if let Some(previous) = members.remove(&uid)
                    && Some(&previous) != owner.as_ref()
                {
                    expectations.deletion_observed(&pool_key(&previous), &uid);
                    pools.push(previous);
                }
                if let Some(pool) = &owner {
                    expectations.deletion_observed(&pool_key(pool), &uid);
                }
            }
        }
        pools.extend(owner);
        pools
    }

    /// Drops everything remembered about a deleted pool.
    fn forget(&self, pool: &ObjectRef<SandboxWarmPool>) {
        if let Ok(mut expectations) = self.expectations.lock() {
            expectations.forget(&pool_key(pool));
        }
        if let Ok(mut memory) = self.memory.lock() {
            memory.remove(pool);
        }
    }
}

/// The pools of `template`'s namespace that reference it.
fn pools_of(
    pools: &Store<SandboxWarmPool>,
    template: &SandboxTemplate,
) -> Vec<ObjectRef<SandboxWarmPool>> {
    let namespace = template.namespace();
    let name = template.name_any();
    pools
        .state()
        .iter()
        .filter(|pool| pool.namespace() == namespace && pool.spec.sandbox_template_ref.name == name)
        .map(|pool| ObjectRef::from(pool.as_ref()))
        .collect()
}

impl WarmPoolController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        Self {
            context: context.clone(),
            workers: settings.pool_workers,
            config: settings.pool.clone(),
            pools: context.pools.feed.subscribe(),
            sandboxes: context.sandbox_feed.subscribe(),
            templates: context.templates.feed.subscribe(),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let shutdown = shutdown.shared();
        tokio::select! {
            () = self.context.wait_synced() => {}
            () = shutdown.clone() => return,
        }
        tracing::info!("warm pool controller started");
        let state = Arc::new(State::default());
        let context = Arc::new(Context {
            client: self.context.client.clone(),
            config: self.config,
            sandboxes: self.context.sandboxes.clone(),
            pods: self.context.pods.clone(),
            templates: self.context.templates.store.clone(),
            state: state.clone(),
            events: EventPublisher::new(self.context.client.clone(), self.context.identity.clone()),
            metrics: self.context.metrics.clone(),
            failures: Failures::default(),
        });
        let forget = state.clone();
        let pools = self.pools.filter_map(move |change| {
            let object = match change {
                Change::Applied(pool) => Some(Ok(pool.as_ref().clone())),
                Change::Deleted(pool) => {
                    forget.forget(&ObjectRef::from(pool.as_ref()));
                    None
                }
            };
            async move { object }
        });
        let sandbox_triggers = self
            .sandboxes
            .flat_map(move |change| futures::stream::iter(state.observe_sandbox(&change)));
        let pool_store = self.context.pools.store.clone();
        let template_triggers = self
            .templates
            .flat_map(move |change| futures::stream::iter(pools_of(&pool_store, change.object())));
        crate::retry::drain(
            Controller::for_stream(pools, self.context.pools.store.clone())
                .reconcile_on(futures::stream::select(sandbox_triggers, template_triggers))
                .with_config(controller::Config::default().concurrency(self.workers))
                .graceful_shutdown_on(shutdown)
                .run(reconcile, error_policy, context),
            "warm pool",
        )
        .await;
        tracing::info!("warm pool controller stopped");
    }
}

/// The name of a member's Pod: the pod-name annotation, else the Sandbox's name.
fn pod_name(sandbox: &Sandbox) -> String {
    sandbox
        .annotations()
        .get(annotations::POD_NAME)
        .filter(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| sandbox.name_any())
}

/// The pool's members in the cache (Sandboxes of its namespace labelled with its name hash), oldest
/// first, each with its cached Pod.
fn members(pool: &SandboxWarmPool, context: &Context) -> Vec<(Arc<Sandbox>, Option<Arc<Pod>>)> {
    let namespace = pool.metadata.namespace.as_deref();
    let hash = name_hash(&pool.name_any());
    // No allocation per Sandbox: this scans every cached Sandbox on each pool pass.
    let mut sandboxes: Vec<Arc<Sandbox>> = context
        .sandboxes
        .state()
        .into_iter()
        .filter(|sandbox| {
            sandbox.metadata.namespace.as_deref() == namespace
                && sandbox.labels().get(labels::WARM_POOL_SANDBOX) == Some(&hash)
        })
        .collect();
    sandboxes.sort_by(|a, b| {
        let created = |s: &Sandbox| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    sandboxes
        .into_iter()
        .map(|sandbox| {
            let pod = context
                .pods
                .get(&ObjectRef::new(&pod_name(&sandbox)).within(namespace.unwrap_or_default()));
            (sandbox, pod)
        })
        .collect()
}

async fn reconcile(pool: Arc<SandboxWarmPool>, context: Arc<Context>) -> Result<Requeue, Error> {
    let span = tracing::info_span!(
        "reconcile_pool",
        pool.namespace = %pool.namespace().unwrap_or_default(),
        pool.name = %pool.name_any(),
    );
    let result = reconcile_pass(&pool, &context).instrument(span).await;
    if result.is_ok() {
        context.failures.reset(&pool);
    }
    result
}

async fn reconcile_pass(pool: &SandboxWarmPool, context: &Context) -> Result<Requeue, Error> {
    let reference = ObjectRef::from(pool);
    if pool.metadata.deletion_timestamp.is_some() {
        // Members go with the pool through their owner references.
        context.state.forget(&reference);
        return Ok(Requeue::await_change());
    }
    let members = members(pool, context);
    let template = context.templates.get(
        &ObjectRef::new(&pool.spec.sandbox_template_ref.name)
            .within(&pool.namespace().unwrap_or_default()),
    );
    let observed = Observed {
        pool,
        members: members
            .iter()
            .map(|(sandbox, pod)| Member {
                sandbox,
                pod: pod.as_deref(),
            })
            .collect(),
        template: Ok(template.as_deref()),
    };
    let plan = {
        let (Ok(mut memory), Ok(mut expectations)) = (
            context.state.memory.lock(),
            context.state.expectations.lock(),
        ) else {
            return Err(Error::Reconcile("warm pool state lock poisoned".into()));
        };
        plan(
            &observed,
            memory.entry(reference.clone()).or_default(),
            &mut expectations,
            Timestamp::now(),
            &context.config,
        )
    };
    let mut errors = writes::execute(context, pool, plan.actions).await;
    context.events.publish(pool, &plan.events).await;
    errors.extend(plan.error);
    if errors.is_empty() {
        let written = writes::write_status(context, pool, &plan.status).await;
        if let Err(error) = written {
            errors.push(error);
        }
    }
    if !errors.is_empty() {
        let message = errors.join("; ");
        tracing::info!(error = %message, "warm pool reconcile failed");
        return Err(Error::Reconcile(message));
    }
    tracing::debug!(requeue = ?plan.requeue_after, "warm pool reconciled");
    Ok(plan
        .requeue_after
        .map_or_else(Requeue::await_change, Requeue::requeue))
}

fn error_policy(pool: Arc<SandboxWarmPool>, _error: &Error, context: Arc<Context>) -> Requeue {
    Requeue::requeue(context.failures.failed(&pool))
}

#[cfg(test)]
mod tests;
