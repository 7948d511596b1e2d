//! Kubernetes adapter of the Agent Sandbox controllers: reflector caches, the plan executor, the run loop,
//! events, metrics, probes and leader election. Decisions live in `agent-sandbox-core`; this crate only
//! observes, executes and reports.

pub mod cache;
pub mod claim_controller;
pub mod events;
pub mod executor;
pub mod expectations;
pub mod extensions;
pub mod feed;
pub mod health;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod retry;
pub mod sandbox_controller;
pub mod shared;
pub mod template_controller;
pub mod warmpool_controller;

use std::future::Future;
use std::net::SocketAddr;

use agent_sandbox_core::sandbox::Config;
use kube::Client;
use tokio::sync::watch;

use crate::claim_controller::ClaimController;
use crate::extensions::{ExtensionSettings, ExtensionWatches};
use crate::health::Readiness;
use crate::leader::{Elector, LeaseConfig};
use crate::sandbox_controller::{SandboxControllerSettings, Watches};
use crate::template_controller::TemplateController;
use crate::warmpool_controller::WarmPoolController;

/// How long in-flight passes may take to finish after a shutdown request (below the Deployment's
/// 30 s termination grace period).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Errors of the adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reconcile pass failed; it is retried with backoff.
    #[error("{0}")]
    Reconcile(String),
    /// An HTTP endpoint could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Leadership was lost; the process must stop.
    #[error(transparent)]
    LeadershipLost(#[from] leader::LeadershipLost),
}

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
}

/// Everything the controller process needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cluster DNS domain for `status.serviceFQDN`.
    pub cluster_domain: String,
    /// Maximum concurrent Sandbox reconciles.
    pub concurrent_workers: u16,
    /// Watch only Pods and Services carrying the name-hash label.
    pub scoped_child_caches: bool,
    /// Address of `/metrics` (port 0 picks one).
    pub metrics_address: SocketAddr,
    /// Address of `/healthz` and `/readyz` (port 0 picks one).
    pub health_address: SocketAddr,
    /// `None` runs without leader election.
    pub leader_election: Option<LeaderElection>,
    /// This replica's identity (lease holder, event reporting instance).
    pub identity: String,
    /// `None` runs the Sandbox controller only; `Some` adds the SandboxTemplate, SandboxWarmPool and
    /// SandboxClaim controllers.
    pub extensions: Option<ExtensionSettings>,
}

/// Completes when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn stopped(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

/// Runs the controller process until `shutdown` completes (graceful: in-flight passes finish, the
/// lease is released) or leadership is lost (an error: the process should exit and restart).
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        let _ = stop_on_signal.send(true);
    });

    let watches = Watches::new();
    let metrics = metrics::Metrics::new(watches.caches().sandboxes.clone());
    let ready = Readiness::default();

    let (metrics_listener, metrics_address) = health::bind(settings.metrics_address)
        .await
        .map_err(|source| Error::Bind {
            address: settings.metrics_address,
            source,
        })?;
    let (health_listener, health_address) =
        health::bind(settings.health_address)
            .await
            .map_err(|source| Error::Bind {
                address: settings.health_address,
                source,
            })?;
    tracing::info!(%metrics_address, %health_address, "serving metrics and probes");
    let metrics_server = tokio::spawn(health::serve(
        metrics_listener,
        health::metrics_router(metrics.clone()),
        stopped(stop_rx.clone()),
    ));
    let health_server = tokio::spawn(health::serve(
        health_listener,
        health::probe_router(ready.clone()),
        stopped(stop_rx.clone()),
    ));

    let (lost_tx, lost_rx) = watch::channel(false);
    // The lease is released only after the controller stopped, so a standby never acts while
    // this replica still finishes in-flight passes.
    let (release_tx, release_rx) = watch::channel(false);
    let mut holder = None;
    if let Some(election) = &settings.leader_election {
        let mut elector = Elector::new(
            client.clone(),
            LeaseConfig::new(
                election.namespace.clone(),
                election.lease_name.clone(),
                settings.identity.clone(),
            ),
        );
        // A standby replica is healthy and ready: it is waiting by design.
        ready.set(true);
        tracing::info!(lease = %election.lease_name, namespace = %election.namespace, "waiting for leadership");
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stop.wait_for(|stop| *stop) => {
                let _ = metrics_server.await;
                let _ = health_server.await;
                return Ok(());
            }
        }
        ready.set(false);
        holder = Some(tokio::spawn(async move {
            let result = elector.hold(release_rx).await;
            if result.is_err() {
                let _ = lost_tx.send(true);
            }
            result
        }));
    }

    let controller_stop = || {
        let stop = stopped(stop_rx.clone());
        let lost = stopped(lost_rx.clone());
        async move {
            futures::future::select(Box::pin(stop), Box::pin(lost)).await;
        }
    };
    let mut extension_controllers = Vec::new();
    let mut extension_watches = Vec::new();
    let mut extensions_synced = None;
    if let Some(extension_settings) = &settings.extensions {
        let shared = ExtensionWatches::default();
        let context = shared.context(
            client.clone(),
            settings.identity.clone(),
            watches.caches(),
            watches.sandbox_feed().clone(),
            metrics.clone(),
        );
        // Every controller subscribes to its feeds before any watch starts, so none misses the
        // first list.
        let template = TemplateController::new(&context, extension_settings);
        let pool = WarmPoolController::new(&context, extension_settings);
        let claim = ClaimController::new(&context, extension_settings);
        extension_watches = shared.spawn(&client);
        extension_controllers.push(tokio::spawn(template.run(controller_stop())));
        extension_controllers.push(tokio::spawn(pool.run(controller_stop())));
        extension_controllers.push(tokio::spawn(claim.run(controller_stop())));
        extensions_synced = Some(context);
    }
    let synced_ready = ready.clone();
    let controller = sandbox_controller::run(
        client,
        SandboxControllerSettings {
            config: Config {
                cluster_domain: settings.cluster_domain.clone(),
            },
            concurrent_workers: settings.concurrent_workers,
            scoped_child_caches: settings.scoped_child_caches,
            identity: settings.identity.clone(),
        },
        watches,
        metrics,
        move || {
            tokio::spawn(async move {
                if let Some(extensions) = extensions_synced {
                    extensions.wait_synced().await;
                }
                synced_ready.set(true);
            });
        },
        controller_stop(),
    );
    let controllers = async move {
        controller.await;
        for extension in extension_controllers {
            let _ = extension.await;
        }
    };
    // In-flight passes get a bounded time to finish: a pass waiting for caches that cannot sync (a
    // watch failing on every retry) must not keep the process from exiting.
    let deadline = {
        let mut stop = stop_rx.clone();
        let mut lost = lost_rx.clone();
        async move {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => {}
                _ = lost.wait_for(|lost| *lost) => {}
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    tokio::select! {
        _ = controllers => {}
        _ = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight passes did not finish in time; stopping anyway"),
    }
    ready.set(false);
    for watch in extension_watches {
        watch.abort();
    }

    let _ = release_tx.send(true);
    let _ = stop_tx.send(true);
    let held = match holder {
        Some(holder) => holder.await.unwrap_or(Ok(())),
        None => Ok(()),
    };
    let _ = metrics_server.await;
    let _ = health_server.await;
    held.map_err(Error::from)
}
