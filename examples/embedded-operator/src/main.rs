//! An operator of its own that embeds agent-sandbox's controllers: the Sandbox controller and the
//! SandboxTemplate, SandboxWarmPool and SandboxClaim controllers run beside this operator's own
//! controller (it labels every Ready SandboxClaim with the operator that saw it), all sharing
//!
//! * one Kubernetes client,
//! * one Prometheus registry, served on one `/metrics` (agent-sandbox's metrics and this one's),
//! * one leader election (one Lease: a standby replica runs neither),
//! * one shutdown (SIGTERM or Ctrl-C stops both, lets passes finish, then releases the Lease).
//!
//! ```sh
//! cargo run -p embedded-operator -- --lease-namespace default --metrics 127.0.0.1:9090
//! ```
//! docs/embedding.md walks through it; tests/e2e/tests/embedding.rs runs it against a cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_kube::process::leadership::Leadership;
use agent_sandbox_kube::process::servers::{bind, metrics_router, probe_router, serve};
use agent_sandbox_kube::process::signal::Signal;
use agent_sandbox_kube::{
    ControllerSettings, Controllers, LeaderElection, Readiness, replica_identity, shutdown_signal,
};
use anyhow::Context;
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The label this operator puts on every Ready claim: the identity of the replica that saw it.
const SEEN_BY: &str = "operator.example.com/seen-by";
/// The Lease both the embedded controllers and this operator's own run under.
const LEASE: &str = "embedded-operator";

/// Where to serve and lead, from the command line (`--lease-namespace NS`, `--metrics ADDR`,
/// `--probes ADDR`).
struct Options {
    lease_namespace: String,
    metrics: SocketAddr,
    probes: SocketAddr,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        lease_namespace: "default".to_owned(),
        metrics: "127.0.0.1:9090".parse()?,
        probes: "127.0.0.1:9091".parse()?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--lease-namespace" => options.lease_namespace = value,
            "--metrics" => options.metrics = value.parse().context("--metrics")?,
            "--probes" => options.probes = value.parse().context("--probes")?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let options = options()?;
    let client = Client::try_default()
        .await
        .context("connecting to the cluster")?;
    let identity = replica_identity();

    // One registry: agent-sandbox's metrics and this operator's.
    let mut registry = Registry::default();
    let controllers = Controllers::new(
        client.clone(),
        ControllerSettings {
            identity: identity.clone(),
            ..ControllerSettings::default()
        },
        &mut registry,
    );
    let labelled = Counter::<u64>::default();
    registry.register(
        "embedded_operator_claims_labelled",
        "Ready SandboxClaims this operator labelled",
        labelled.clone(),
    );

    // One shutdown: SIGTERM/Ctrl-C raises `stop`, which everything below waits for.
    let stop = Signal::default();
    let requested = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        requested.raise();
    });
    let ready = controllers.readiness();
    let (metrics_listener, metrics_address) = bind(options.metrics).await?;
    let (probe_listener, probe_address) = bind(options.probes).await?;
    tracing::info!(%metrics_address, %probe_address, %identity, "serving metrics and probes");
    let servers = [
        tokio::spawn(serve(
            metrics_listener,
            metrics_router(Arc::new(registry)),
            stop.raised(),
        )),
        tokio::spawn(serve(
            probe_listener,
            probe_router(ready.clone()),
            stop.raised(),
        )),
    ];

    // One leader election: nothing runs until this replica holds the Lease.
    let election = LeaderElection {
        namespace: options.lease_namespace,
        lease_name: LEASE.to_owned(),
    };
    let standby = Readiness::default();
    let Some(leadership) =
        Leadership::acquire(&client, Some(&election), &identity, &standby, &stop).await
    else {
        return join(servers).await;
    };
    tracing::info!("leading: starting agent-sandbox's controllers and our own");
    let until_done = stop.either(leadership.lost());
    let ours = tokio::spawn(label_ready_claims(
        client.clone(),
        identity.clone(),
        labelled,
        stop.either(leadership.lost()),
    ));
    controllers.run(until_done).await;
    let _ = ours.await;
    // Released only after both stopped, so a standby never acts while passes still run.
    let released = leadership.release().await;
    stop.raise();
    join(servers).await?;
    released.context("the Lease was lost")?;
    tracing::info!("stopped");
    Ok(())
}

async fn join(servers: [tokio::task::JoinHandle<std::io::Result<()>>; 2]) -> anyhow::Result<()> {
    for server in servers {
        server.await??;
    }
    Ok(())
}

/// This operator's own controller: labels every Ready SandboxClaim with [`SEEN_BY`].
async fn label_ready_claims(
    client: Client,
    identity: String,
    labelled: Counter<u64>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let claims: Api<SandboxClaim> = Api::all(client.clone());
    let context = Arc::new((client, identity, labelled));
    Controller::new(claims, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!(%error, "labelling a claim failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            context,
        )
        .for_each(|_| async {})
        .await;
}

type Shared = (Client, String, Counter<u64>);

async fn reconcile(claim: Arc<SandboxClaim>, context: Arc<Shared>) -> Result<Action, kube::Error> {
    let (client, identity, labelled) = &*context;
    let ready = claim.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    });
    if !ready || claim.labels().contains_key(SEEN_BY) {
        return Ok(Action::await_change());
    }
    let namespace = claim.namespace().unwrap_or_default();
    let api: Api<SandboxClaim> = Api::namespaced(client.clone(), &namespace);
    let patch = serde_json::json!({"metadata": {"labels": {SEEN_BY: label_value(identity)}}});
    api.patch(
        &claim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    labelled.inc();
    Ok(Action::await_change())
}

/// A label value from the replica identity (at most 63 characters of `[A-Za-z0-9_.-]`).
fn label_value(identity: &str) -> String {
    let cleaned: String = identity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}
