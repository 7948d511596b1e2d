//! The SandboxClaim controller: every claim change, and every Sandbox, pool or template change that
//! concerns a claim, runs a [`ClaimPass`].

use std::future::Future;
use std::sync::Arc;

use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_core::claim::pass::Settings;
use futures::channel::mpsc::UnboundedReceiver;
use futures::{FutureExt, StreamExt};

use crate::controllers::claim::first_observed::FirstObserved;
use crate::controllers::claim::legacy::LegacyPolicies;
use crate::controllers::claim::pass::ClaimPass;
use crate::controllers::claim::triggers::{self, Feeds};
use crate::controllers::claim::writes::Caches;
use crate::controllers::extensions::{ExtensionContext, ExtensionSettings};
use crate::runtime::control_loop::ControlLoop;
use crate::runtime::events::EventPublisher;
use crate::runtime::feed::Change;
use crate::runtime::writes::Writer;

/// The SandboxClaim controller, subscribed to its triggers.
pub struct ClaimController {
    context: ExtensionContext,
    feeds: Feeds,
    workers: u16,
    pass: ClaimPass,
    changes: UnboundedReceiver<Change<SandboxClaim>>,
}

impl ClaimController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        let pass = ClaimPass {
            writer: Writer::new(context.client.clone()),
            claims: context.claims.store.clone(),
            caches: Caches {
                sandboxes: context.sandboxes.clone(),
                pools: context.pools.store.clone(),
                templates: context.templates.store.clone(),
                queue: Arc::default(),
                created_unseen: Arc::default(),
            },
            settings: Settings {
                observability_annotations: settings.claim_observability_annotations,
                validation: settings.claim_validation.clone(),
            },
            publisher: settings
                .claim_events
                .then(|| EventPublisher::new(context.client.clone(), context.identity.clone())),
            metrics: context.metrics.clone(),
            first_observed: FirstObserved::default(),
            legacy: LegacyPolicies::default(),
        };
        Self {
            context: context.clone(),
            feeds: Feeds {
                sandboxes: context.sandbox_feed.subscribe(),
                pools: context.pools.feed.subscribe(),
                templates: context.templates.feed.subscribe(),
            },
            workers: settings.claim_workers,
            changes: context.claims.feed.subscribe(),
            pass,
        }
    }

    /// Runs until `shutdown` completes; passes start once every cache a pass reads has listed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let (woken, tasks) = triggers::spawn(self.feeds, &self.pass.caches, &self.pass.claims);
        let shutdown = shutdown.shared();
        let synced = tokio::select! {
            () = self.context.wait_synced() => true,
            () = shutdown.clone() => false,
        };
        if synced {
            tracing::info!("claim controller caches synced");
            ControlLoop {
                reconciler: self.pass,
                cache: self.context.claims.clone(),
                changes: self.changes,
                triggers: woken.boxed(),
                workers: self.workers,
                metrics: self.context.metrics.clone(),
            }
            .run(shutdown)
            .await;
        }
        for task in tasks {
            task.abort();
        }
    }
}
