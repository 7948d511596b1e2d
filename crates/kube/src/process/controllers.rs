//! Starting every controller once this replica leads, and stopping them with a bounded grace.

use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_core::sandbox::Config;
use kube::Client;
use tokio::task::JoinHandle;

use crate::controllers::claim::ClaimController;
use crate::controllers::extensions::ExtensionWatches;
use crate::controllers::pool::WarmPoolController;
use crate::controllers::sandbox::{SandboxController, SandboxSettings, SandboxWatches};
use crate::controllers::template::TemplateController;
use crate::metrics::Metrics;
use crate::process::servers::Readiness;
use crate::process::settings::ControllerSettings;
use crate::process::signal::Signal;

/// How long in-flight passes may take to finish after a shutdown request (below the Deployment's
/// 30 s termination grace period).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The controllers and their watches, running.
pub struct Running {
    controllers: Vec<JoinHandle<()>>,
    /// The watches and the readiness task: aborted once the controllers stopped.
    background: Vec<JoinHandle<()>>,
}

/// Starts the controllers `settings` asks for on the declared `watches`; they stop when `stop` or
/// `lost` is raised. Every controller subscribes to its feeds before any watch starts, so none misses
/// the first list. The replica turns ready once every cache has listed.
pub fn start(
    client: &Client,
    settings: &ControllerSettings,
    (watches, metrics): (SandboxWatches, Arc<Metrics>),
    ready: &Readiness,
    (stop, lost): (&Signal, &Signal),
) -> Running {
    let shutdown = || stop.either(lost);
    let caches = watches.caches().clone();
    let sandbox = SandboxController::new(
        client.clone(),
        SandboxSettings {
            config: Config {
                cluster_domain: settings.cluster_domain.clone(),
            },
            concurrent_workers: settings.concurrent_workers,
            identity: settings.identity.clone(),
        },
        &caches,
        metrics.clone(),
    );
    let mut controllers = Vec::new();
    let mut background = Vec::new();
    let mut extensions = None;
    if let Some(extension_settings) = &settings.extensions {
        let declared = ExtensionWatches::default();
        let context = declared.context(
            client.clone(),
            settings.identity.clone(),
            &caches,
            metrics.clone(),
        );
        let template = TemplateController::new(&context, extension_settings);
        let pool = WarmPoolController::new(&context, extension_settings);
        let claim = ClaimController::new(&context, extension_settings);
        background.extend(declared.spawn(client));
        controllers.push(tokio::spawn(template.run(shutdown())));
        controllers.push(tokio::spawn(pool.run(shutdown())));
        controllers.push(tokio::spawn(claim.run(shutdown())));
        extensions = Some(context);
    }
    background.extend(watches.spawn(client));
    controllers.push(tokio::spawn(sandbox.run(shutdown())));
    let ready = ready.clone();
    background.push(tokio::spawn(async move {
        caches.wait_synced().await;
        if let Some(extensions) = extensions {
            extensions.wait_synced().await;
        }
        tracing::info!("caches synced");
        ready.set(true);
    }));
    Running {
        controllers,
        background,
    }
}

impl Running {
    /// Waits for the controllers to finish their passes in flight once `stop` or `lost` is raised,
    /// at most [`SHUTDOWN_GRACE`]: a pass waiting for caches that cannot sync (a watch failing on
    /// every retry) must not keep the process from exiting.
    pub async fn finish(self, stop: &Signal, lost: &Signal) {
        let stopping = stop.either(lost);
        let deadline = async move {
            stopping.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let controllers = async move {
            for controller in self.controllers {
                let _ = controller.await;
            }
        };
        tokio::select! {
            _ = controllers => {}
            _ = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight passes did not finish in time; stopping anyway"),
        }
        for task in self.background {
            task.abort();
        }
    }
}
