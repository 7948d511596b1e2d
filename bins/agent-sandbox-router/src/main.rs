//! The `agent-sandbox-router` binary: see the library's documentation.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use agent_sandbox_kube::shutdown_signal;
use agent_sandbox_router::server::{Flags, LogFormat, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match flags.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    match run(flags, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One readable line with its causes.
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
