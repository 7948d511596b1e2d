//! The Agent Sandbox controller: parses flags, validates them, and runs the Kubernetes adapter.

mod flags;
mod settings;
mod values;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::flags::{Command, Flags, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn client(flags: &Flags) -> anyhow::Result<kube::Client> {
    let config = agent_sandbox_kube::cluster_config(flags.kubeconfig.as_deref()).await?;
    // kube-rs has no client-side rate limiter; QPS/burst are accepted for compatibility and
    // server-side API Priority and Fairness does the limiting.
    if flags.kube_api_qps > 0.0 {
        tracing::info!(
            qps = flags.kube_api_qps,
            burst = flags.kube_api_burst,
            "client-side rate limiting is not applied; the API server's priority and fairness limits apply"
        );
    }
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One readable line (with causes), whatever RUST_BACKTRACE says.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What `--version` prints after the name: the version and commit `cargo xtask images` (or a
/// container build) sets in `AGENT_SANDBOX_VERSION`, else the package version.
const VERSION: &str = match option_env!("AGENT_SANDBOX_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

async fn run() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if flags.version {
        println!("agent-sandbox-controller {VERSION}");
        return Ok(());
    }
    if let Some(Command::MigrateStorage { apply }) = flags.command {
        return migrate_storage(&flags, apply).await;
    }
    init_logging(flags.log_format);
    let settings = flags.settings()?;
    for warning in flags.warnings() {
        tracing::warn!("{warning}");
    }
    let client = client(&flags).await?;
    tracing::info!(
        version = VERSION,
        identity = %settings.controllers.identity,
        leader_election = settings.leader_election.is_some(),
        "starting agent-sandbox-controller"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = {
        let stop = stop.clone();
        async move {
            agent_sandbox_kube::shutdown_signal().await;
            let _ = stop.send(true);
        }
    };
    tokio::spawn(shutdown);
    // Every replica serves conversions, leader or not: the API server may call any of them.
    let webhook = match flags.webhook() {
        Some(webhook) => Some(
            agent_sandbox_webhook::start(&client, &webhook, until(stopped.clone()))
                .await
                .context("conversion webhook")?
                .1,
        ),
        None => None,
    };
    let result = agent_sandbox_kube::run(client, settings, until(stopped)).await;
    // The controllers are done (shut down, or leadership lost): the webhook stops with them.
    let _ = stop.send(true);
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    result.context("controller stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// `migrate-storage`: its report goes to stdout, one line per step.
async fn migrate_storage(flags: &Flags, apply: bool) -> anyhow::Result<()> {
    let client = client(flags).await?;
    let options = agent_sandbox_migrate::Options { apply };
    agent_sandbox_migrate::run(&client, options, &mut |line| println!("{line}")).await?;
    Ok(())
}

/// Completes once `stop` says so (or its sender is gone).
async fn until(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
