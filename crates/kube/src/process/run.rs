//! The controller process from start to stop: serve probes and metrics, lead, run the controllers,
//! stop them, give the lease up, stop serving.

use std::future::Future;

use std::sync::Arc;

use kube::Client;
use prometheus_client::registry::Registry;

use crate::controllers::sandbox::SandboxWatches;
use crate::metrics::Metrics;
use crate::process::controllers;
use crate::process::error::Error;
use crate::process::leadership::Leadership;
use crate::process::servers::{Readiness, Servers};
use crate::process::settings::Settings;
use crate::process::signal::Signal;

/// Runs the controller process until `shutdown` completes (graceful: in-flight passes finish, the
/// lease is released) or leadership is lost (an error: the process should exit and restart).
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = Signal::default();
    let requested = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        requested.raise();
    });
    let watches = SandboxWatches::new(settings.controllers.scoped_child_caches);
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry, watches.caches().sandboxes.store.clone());
    let ready = Readiness::default();
    let servers = Servers::start(
        (settings.metrics_address, settings.health_address),
        Arc::new(registry),
        ready.clone(),
        &stop,
    )
    .await?;
    let result = lead(&client, &settings, (watches, metrics), &ready, &stop).await;
    stop.raise();
    servers.join().await;
    result
}

/// Waits for leadership, runs the controllers until `stop` (or the loss of the lease), then releases
/// the lease: only after the controllers stopped, so a standby never acts while passes still run.
async fn lead(
    client: &Client,
    settings: &Settings,
    declared: (SandboxWatches, std::sync::Arc<Metrics>),
    ready: &Readiness,
    stop: &Signal,
) -> Result<(), Error> {
    let Some(leadership) = Leadership::acquire(
        client,
        settings.leader_election.as_ref(),
        &settings.controllers.identity,
        ready,
        stop,
    )
    .await
    else {
        return Ok(());
    };
    let running = controllers::start(
        client,
        &settings.controllers,
        declared,
        ready,
        (stop, leadership.lost()),
    );
    running.finish(stop, leadership.lost()).await;
    ready.set(false);
    leadership.release().await.map_err(Error::from)
}
