//! One warm-pool pass: read the pool, its members (with their Pods) and the template from the caches,
//! ask [`agent_sandbox_warmpool::pool::plan`] what to do, write it, and write the status.

use std::sync::Arc;

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_warmpool::Timestamp;
use agent_sandbox_warmpool::pool::{Config, Member, Observed, plan};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controllers::pool::writes::PoolWrites;
use crate::runtime::control_loop::{Reconcile, requeue_after};
use crate::runtime::error::Error;
use crate::runtime::events::EventPublisher;

/// What every pool pass shares.
pub struct PoolPass {
    /// Plan settings.
    pub config: Config,
    /// Sandboxes (shared with the Sandbox controller).
    pub sandboxes: Store<Sandbox>,
    /// Pods (shared with the Sandbox controller).
    pub pods: Store<Pod>,
    /// SandboxTemplates.
    pub templates: Store<SandboxTemplate>,
    /// The pass's writes and the state they lower.
    pub writes: PoolWrites,
    /// Events about pools.
    pub events: EventPublisher,
}

impl PoolPass {
    /// The pool's members in the cache (Sandboxes of its namespace labelled with its name hash), oldest
    /// first, each with its cached Pod.
    fn members(&self, pool: &SandboxWarmPool) -> Vec<(Arc<Sandbox>, Option<Arc<Pod>>)> {
        let namespace = pool.metadata.namespace.as_deref();
        let hash = name_hash(&pool.name_any());
        // No allocation per Sandbox: this scans every cached Sandbox on each pool pass.
        let mut sandboxes: Vec<Arc<Sandbox>> = self
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
                let pod = self.pods.get(
                    &ObjectRef::new(&sandbox.name_any()).within(namespace.unwrap_or_default()),
                );
                (sandbox, pod)
            })
            .collect()
    }

    async fn pass(&self, pool: &SandboxWarmPool) -> Result<Action, Error> {
        let reference = ObjectRef::from(pool);
        if pool.metadata.deletion_timestamp.is_some() {
            // Members go with the pool through their owner references.
            self.writes.state.forget(&reference);
            return Ok(Action::await_change());
        }
        let members = self.members(pool);
        let template = self.templates.get(
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
                self.writes.state.memory.lock(),
                self.writes.state.expectations.lock(),
            ) else {
                return Err(Error::blocked("warm pool state lock poisoned".into()));
            };
            plan(
                &observed,
                memory.entry(reference.clone()).or_default(),
                &mut expectations,
                Timestamp::now(),
                &self.config,
            )
        };
        let mut errors = self.writes.execute(pool, plan.actions).await;
        self.events.publish(pool, &plan.events).await;
        errors.extend(plan.error.map(Error::blocked));
        if errors.is_empty()
            && let Err(error) = self.writes.write_status(pool, &plan.status).await
        {
            errors.push(error);
        }
        if let Some(error) = Error::join(errors) {
            return Err(error);
        }
        tracing::debug!(requeue = ?plan.requeue_after, "warm pool reconciled");
        Ok(requeue_after(plan.requeue_after))
    }
}

impl Reconcile for PoolPass {
    type Object = SandboxWarmPool;
    const NAME: &'static str = "pool";

    async fn reconcile(&self, pool: Arc<SandboxWarmPool>) -> Result<Action, Error> {
        self.pass(&pool).await
    }

    fn deleted(&self, pool: &SandboxWarmPool) {
        self.writes.state.forget(&ObjectRef::from(pool));
    }
}
