//! The Sandbox controller: every Sandbox change and every change of a child it controls runs a
//! [`SandboxPass`].

use std::sync::Arc;

use agent_sandbox_core::sandbox::Config;
use kube::Client;

use crate::controllers::sandbox::caches::SandboxCaches;
use crate::controllers::sandbox::pass::SandboxPass;
use crate::controllers::sandbox::triggers::child_triggers;
use crate::metrics::Metrics;
use crate::runtime::control_loop::ControlLoop;
use crate::runtime::events::EventPublisher;
use crate::runtime::writes::Writer;

/// Settings of the Sandbox controller.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// Decision settings (cluster domain).
    pub config: Config,
    /// Maximum concurrent reconciles.
    pub concurrent_workers: u16,
    /// Events reporting instance.
    pub identity: String,
}

/// The Sandbox controller, subscribed to its triggers.
pub struct SandboxController {
    control: ControlLoop<SandboxPass>,
}

impl SandboxController {
    /// Subscribes to Sandbox and child changes; start the watches afterwards.
    pub fn new(
        client: Client,
        settings: SandboxSettings,
        caches: &SandboxCaches,
        metrics: Arc<Metrics>,
    ) -> Self {
        let events = EventPublisher::new(client.clone(), settings.identity);
        Self {
            control: ControlLoop {
                reconciler: SandboxPass::new(
                    Writer::new(client),
                    settings.config,
                    caches,
                    (events, metrics.clone()),
                ),
                cache: caches.sandboxes.clone(),
                changes: caches.sandboxes.feed.subscribe(),
                triggers: child_triggers(caches),
                workers: settings.concurrent_workers,
                metrics,
            },
        }
    }

    /// Runs until `shutdown` completes. Passes start at once; each waits for the caches' first list.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        self.control.run(shutdown).await;
    }
}
