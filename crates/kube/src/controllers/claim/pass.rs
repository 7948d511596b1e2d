//! One claim pass: remove the legacy per-claim policy, run `agent_sandbox_core::claim::pass` over
//! the caches and the API server, and turn its outcome into metrics, Events and a retry.

use std::sync::Arc;

use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_core::Timestamp;
use agent_sandbox_core::claim::pass::{self, Settings};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controllers::claim::first_observed::FirstObserved;
use crate::controllers::claim::legacy::LegacyPolicies;
use crate::controllers::claim::writes::{Caches, KubeClaimApi};
use crate::metrics::Metrics;
use crate::runtime::control_loop::{Reconcile, requeue_after};
use crate::runtime::error::Error;
use crate::runtime::events::EventPublisher;
use crate::runtime::writes::Writer;

/// What every claim pass shares.
pub struct ClaimPass {
    /// Writes as the controllers' field manager.
    pub writer: Writer,
    /// Claims (the trigger's copy may be older than the cache's).
    pub claims: Store<SandboxClaim>,
    /// What a pass reads, and the adoption queue.
    pub caches: Caches,
    /// Decision settings.
    pub settings: Settings,
    /// Events about claims, when enabled.
    pub publisher: Option<EventPublisher>,
    /// Claim metrics.
    pub metrics: Arc<Metrics>,
    /// First sightings of claims.
    pub first_observed: FirstObserved,
    /// Legacy per-claim NetworkPolicies looked for.
    pub legacy: LegacyPolicies,
}

impl Reconcile for ClaimPass {
    type Object = SandboxClaim;
    const NAME: &'static str = "claim";

    async fn reconcile(&self, claim: Arc<SandboxClaim>) -> Result<Action, Error> {
        // Decide on the newest cached claim (the trigger may carry an older copy).
        let Some(latest) = self.claims.get(&ObjectRef::from(claim.as_ref())) else {
            return Ok(Action::await_change());
        };
        self.legacy.remove(&self.writer, &latest).await;
        let api = KubeClaimApi::new(&self.writer, &self.caches, &latest);
        let outcome = pass::reconcile(
            &api,
            (*latest).clone(),
            self.first_observed.get(&latest),
            Timestamp::now(),
            &self.settings,
        )
        .await;
        let namespace = latest.namespace().unwrap_or_default();
        for served in &outcome.served {
            self.metrics.claims().served(&namespace, served);
        }
        if let Some(latencies) = &outcome.latencies {
            self.metrics.claims().ready(latencies);
        }
        if outcome.drain_first_observed {
            self.first_observed.drain(&latest);
        }
        if let Some(publisher) = &self.publisher {
            publisher.publish(latest.as_ref(), &outcome.events).await;
        }
        if let Some(error) = outcome.error {
            return Err(Error::summary(error, api.into_errors()));
        }
        Ok(requeue_after(outcome.requeue_after))
    }

    fn applied(&self, claim: &SandboxClaim) {
        self.first_observed.observe(claim);
    }

    fn deleted(&self, claim: &SandboxClaim) {
        self.first_observed.forget(claim);
        self.legacy.forget(claim);
    }
}
