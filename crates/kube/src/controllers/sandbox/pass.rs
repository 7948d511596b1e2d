//! One Sandbox pass: wait for the caches to show earlier writes, observe → plan → execute → status,
//! Events, and the expectations the writes leave.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::Timestamp;
use agent_sandbox_core::sandbox::{Config, plan};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::controllers::sandbox::caches::{Caches, SandboxCaches};
use crate::controllers::sandbox::expectations::Expectations;
use crate::controllers::sandbox::observe::{observe, seen_in_cache};
use crate::controllers::sandbox::writes::{Written, execute, write_status};
use crate::metrics::Metrics;
use crate::runtime::control_loop::{Reconcile, requeue_after};
use crate::runtime::error::Error;
use crate::runtime::events::EventPublisher;
use crate::runtime::writes::Writer;

/// How long a create or delete is waited for in the caches before it is assumed lost.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a pass waits for the caches' first list before it gives the worker back and retries.
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// What every Sandbox pass shares.
pub struct SandboxPass {
    writer: Writer,
    config: Config,
    watched: SandboxCaches,
    caches: Caches,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    expectations: Mutex<Expectations>,
}

impl SandboxPass {
    /// Passes deciding with `config` from `watched`, writing through `writer`.
    pub fn new(
        writer: Writer,
        config: Config,
        watched: &SandboxCaches,
        (events, metrics): (EventPublisher, Arc<Metrics>),
    ) -> Self {
        Self {
            writer,
            config,
            caches: watched.stores(),
            watched: watched.clone(),
            events,
            metrics,
            expectations: Mutex::new(Expectations::new(EXPECTATION_TIMEOUT)),
        }
    }

    fn unmet_expectations(&self, uid: &str) -> Option<Duration> {
        let mut expectations = self.expectations.lock().ok()?;
        expectations.unmet(uid, Instant::now(), |child| {
            seen_in_cache(&self.caches, child)
        })
    }

    fn expect(&self, uid: &str, written: Vec<Written>) {
        if written.is_empty() {
            return;
        }
        if let Ok(mut expectations) = self.expectations.lock() {
            let now = Instant::now();
            for written in written {
                expectations.expect(uid, written.child, written.expected, now);
            }
        }
    }

    async fn pass(&self, sandbox: &Sandbox) -> Result<Action, Error> {
        let uid = sandbox.metadata.uid.clone().unwrap_or_default();

        // The Sandbox watch can deliver before the child caches finished their first list; deciding
        // then would see no children and try to create them again.
        if !self.watched.is_synced()
            && tokio::time::timeout(SYNC_WAIT, self.watched.wait_synced())
                .await
                .is_err()
        {
            // Free the worker; the retry waits again.
            return Err(Error::not_synced());
        }
        // Decide only on caches that show our own last writes.
        if let Some(wait) = self.unmet_expectations(&uid) {
            tracing::debug!(?wait, "waiting for the caches to show earlier writes");
            return Ok(Action::requeue(wait));
        }

        // The pass decides on the newest cached Sandbox, which the expectations just vouched for.
        let latest = self
            .caches
            .sandboxes
            .get(&ObjectRef::from(sandbox))
            .unwrap_or_else(|| Arc::new(sandbox.clone()));
        let sandbox = latest.as_ref();
        let observed = observe(sandbox, &self.caches);
        let plan = plan(&observed, Timestamp::now(), &self.config);
        let mut executed = execute(&self.writer, sandbox, plan.actions()).await;
        for (action, ok) in &executed.outcomes {
            self.metrics.action(action, *ok);
        }
        let outcome = plan.finish(&executed.failures);
        self.events.publish(sandbox, &outcome.events).await;

        let mut errors: Vec<Error> = outcome
            .error
            .map(|message| Error::summary(message, std::mem::take(&mut executed.errors)))
            .into_iter()
            .collect();
        if let Some(patch) = &outcome.status_patch {
            match write_status(&self.writer, sandbox, patch).await {
                Ok(written) => {
                    self.metrics.observe_ready(sandbox, patch);
                    executed.written.extend(written);
                }
                Err(error) => errors.push(Error::api("failed to update status", error)),
            }
        }
        self.expect(&uid, executed.written);
        if let Some(error) = Error::join(errors) {
            return Err(error);
        }
        tracing::debug!(actions = executed.outcomes.len(), requeue = ?outcome.requeue_after, "reconciled");
        Ok(requeue_after(outcome.requeue_after))
    }
}

impl Reconcile for SandboxPass {
    type Object = Sandbox;
    const NAME: &'static str = "sandbox";

    async fn reconcile(&self, sandbox: Arc<Sandbox>) -> Result<Action, Error> {
        let started = Instant::now();
        let result = self.pass(&sandbox).await;
        self.metrics.reconciled(result.is_ok(), started.elapsed());
        result
    }

    fn deleted(&self, sandbox: &Sandbox) {
        let uid = sandbox.metadata.uid.clone().unwrap_or_default();
        if let Ok(mut expectations) = self.expectations.lock() {
            expectations.forget(&uid);
        }
        self.metrics.forget(&uid);
    }
}
