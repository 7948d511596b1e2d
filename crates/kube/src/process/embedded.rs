//! Our controllers inside a binary of your own: you own the client, the metrics registry, leader
//! election and shutdown; we declare the watches and run the controllers on them.

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use prometheus_client::registry::Registry;

use crate::controllers::sandbox::SandboxWatches;
use crate::metrics::Metrics;
use crate::process::controllers;
use crate::process::servers::Readiness;
use crate::process::settings::ControllerSettings;
use crate::process::signal::Signal;

/// The Sandbox controller, and with [`ControllerSettings::extensions`] the SandboxTemplate,
/// SandboxWarmPool and SandboxClaim controllers, ready to run in a process of yours.
///
/// ```no_run
/// # async fn operator() -> Result<(), Box<dyn std::error::Error>> {
/// use agent_sandbox_kube::{ControllerSettings, Controllers};
/// use prometheus_client::registry::Registry;
///
/// let client = kube::Client::try_default().await?;
/// let mut registry = Registry::default();
/// let controllers = Controllers::new(client, ControllerSettings::default(), &mut registry);
/// let ready = controllers.readiness();
/// // Serve `registry` and `ready` on your own endpoints; run only while your replica leads.
/// controllers.run(agent_sandbox_kube::shutdown_signal()).await;
/// # Ok(()) }
/// ```
pub struct Controllers {
    client: Client,
    settings: ControllerSettings,
    watches: SandboxWatches,
    metrics: Arc<Metrics>,
    ready: Readiness,
}

impl Controllers {
    /// Declares the controllers `settings` asks for and registers their metrics (all named
    /// `agent_sandbox…`) in `registry`. Nothing runs before [`Controllers::run`].
    pub fn new(client: Client, settings: ControllerSettings, registry: &mut Registry) -> Self {
        let watches = SandboxWatches::new(settings.scoped_child_caches);
        let metrics = Metrics::register(registry, watches.caches().sandboxes.store.clone());
        Self {
            client,
            settings,
            watches,
            metrics,
            ready: Readiness::default(),
        }
    }

    /// True once every cache the controllers use has listed (for your readiness probe); false
    /// again after they stopped.
    pub fn readiness(&self) -> Readiness {
        self.ready.clone()
    }

    /// Runs the controllers until `shutdown` completes, then waits for the passes in flight to
    /// finish (at most 20 s). Leader election is the caller's: run this while your replica leads,
    /// and complete `shutdown` when it stops leading.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let stop = Signal::default();
        let requested = stop.clone();
        let waiter = tokio::spawn(async move {
            shutdown.await;
            requested.raise();
        });
        // Never raised: the caller's shutdown is the only way these controllers stop.
        let lost = Signal::default();
        let running = controllers::start(
            &self.client,
            &self.settings,
            (self.watches, self.metrics),
            &self.ready,
            (&stop, &lost),
        );
        running.finish(&stop, &lost).await;
        self.ready.set(false);
        waiter.abort();
    }
}
