//! The `agent-sandbox-runtime` binary: see the library's documentation.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = agent_sandbox_runtime::server::Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&flags.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match agent_sandbox_runtime::server::run(flags, agent_sandbox_runtime::server::termination())
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
