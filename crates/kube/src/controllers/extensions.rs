//! The extension controllers (SandboxTemplate, SandboxWarmPool, SandboxClaim): their settings, the
//! caches they share, and how they are started next to the Sandbox controller.

use std::sync::Arc;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_api::validate::ValidationContext;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::{Api, Client};

use crate::controllers::sandbox::SandboxCaches;
use crate::metrics::Metrics;
use crate::runtime::feed::Feed;
use crate::runtime::watch::{Watch, Watched};

/// Settings of the extension controllers.
#[derive(Clone, Debug)]
pub struct ExtensionSettings {
    /// Maximum concurrent SandboxTemplate reconciles.
    pub template_workers: u16,
    /// Maximum concurrent SandboxWarmPool reconciles.
    pub pool_workers: u16,
    /// Maximum concurrent SandboxClaim reconciles.
    pub claim_workers: u16,
    /// Pool decisions: batch size, replenish delay, refill rate, readiness grace, unschedulable recheck,
    /// eviction annotation.
    pub pool: agent_sandbox_warmpool::pool::Config,
    /// Publish Events about claims.
    pub claim_events: bool,
    /// Persist the first-observed and trace-context annotations on claims.
    pub claim_observability_annotations: bool,
    /// Which label domains claims may put on Pods (the binary reads the operator's allow-list).
    pub claim_validation: ValidationContext,
}

impl Default for ExtensionSettings {
    fn default() -> Self {
        Self {
            template_workers: 1,
            pool_workers: 1,
            claim_workers: 50,
            pool: agent_sandbox_warmpool::pool::Config::default(),
            claim_events: true,
            claim_observability_annotations: true,
            claim_validation: ValidationContext::default(),
        }
    }
}

/// What every extension controller may read: the Sandbox controller's Sandbox and Pod caches and the
/// caches of the extension kinds. Subscribe to feeds while constructing a controller, before any
/// watch starts.
#[derive(Clone)]
pub struct ExtensionContext {
    /// API client.
    pub client: Client,
    /// This replica's identity (Events reporting instance).
    pub identity: String,
    /// Sandboxes (shared with the Sandbox controller).
    pub sandboxes: Store<Sandbox>,
    /// Sandbox changes, after the Sandbox cache applied them.
    pub sandbox_feed: Feed<Sandbox>,
    /// Pods, slimmed (shared with the Sandbox controller).
    pub pods: Store<Pod>,
    /// The Sandbox controller's caches, for their sync state.
    pub core: SandboxCaches,
    /// SandboxTemplates.
    pub templates: Watched<SandboxTemplate>,
    /// SandboxWarmPools.
    pub pools: Watched<SandboxWarmPool>,
    /// SandboxClaims.
    pub claims: Watched<SandboxClaim>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

impl ExtensionContext {
    /// Waits until every cache an extension controller reads (the Sandbox controller's and the
    /// extension kinds') completed its first list.
    pub async fn wait_synced(&self) {
        self.core.wait_synced().await;
        self.templates.wait_synced().await;
        self.pools.wait_synced().await;
        self.claims.wait_synced().await;
    }
}

/// The watches of the extension kinds, not started yet.
#[derive(Default)]
pub struct ExtensionWatches {
    templates: Watch<SandboxTemplate>,
    pools: Watch<SandboxWarmPool>,
    claims: Watch<SandboxClaim>,
}

impl ExtensionWatches {
    /// The read side of every shared cache, with the Sandbox controller's caches.
    pub fn context(
        &self,
        client: Client,
        identity: String,
        core: &SandboxCaches,
        metrics: Arc<Metrics>,
    ) -> ExtensionContext {
        ExtensionContext {
            client,
            identity,
            sandboxes: core.sandboxes.store.clone(),
            sandbox_feed: core.sandboxes.feed.clone(),
            pods: core.pods.store.clone(),
            core: core.clone(),
            templates: self.templates.cache().clone(),
            pools: self.pools.cache().clone(),
            claims: self.claims.cache().clone(),
            metrics,
        }
    }

    /// Starts the three watches; abort the handles to stop them.
    pub fn spawn(self, client: &Client) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            self.templates.spawn(Api::all(client.clone())),
            self.pools.spawn(Api::all(client.clone())),
            self.claims.spawn(Api::all(client.clone())),
        ]
    }
}
