//! `kubectl-sandbox`, the kubectl plugin for Agent Sandbox (`kubectl sandbox …` once it is on
//! `PATH`): claim sandboxes from warm pools, run commands in them with their output streamed and
//! their exit code passed on, copy files both ways, suspend, resume, delete, read logs. Built on
//! `agent-sandbox-client`; docs/client.md describes both.

mod cli;
mod run;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match run::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            // One line: the error and its causes, as kubectl prints its own.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
