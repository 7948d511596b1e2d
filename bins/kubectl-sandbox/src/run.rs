//! What each command does, on the client crate and the Kubernetes API.

use std::io::Write as _;
use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_client::{
    Connection, CreateOptions, OutputEvent, RunOptions, Sandbox, SandboxClient,
};
use anyhow::Context;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::cli::{Cli, Command, Location, Output};

/// How a command ended: the process's exit code (`exec` passes the sandbox command's on).
pub type ExitCode = i32;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(
            shell,
            &mut command,
            "kubectl-sandbox",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    let kube = kube::Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG, or the in-cluster config)")?;
    let connection = match &cli.router_url {
        Some(url) => Connection::Router { url: url.clone() },
        None => Connection::default(),
    };
    let client = SandboxClient::new(kube, connection);
    let namespace = cli.namespace.as_str();
    match cli.command {
        Command::Claim {
            pool,
            name,
            wait,
            timeout,
        } => claim(&client, namespace, pool, name, wait, timeout, cli.output).await,
        Command::Ls => list(&client, namespace, cli.output).await,
        Command::Exec {
            claim,
            timeout,
            command,
        } => exec(&client, namespace, &claim, timeout, &command).await,
        Command::Cp {
            source,
            destination,
        } => copy(&client, namespace, &source, &destination).await,
        Command::Suspend { claim } => {
            handle(&client, namespace, &claim).await?.suspend().await?;
            eprintln!("{claim} suspended");
            Ok(0)
        }
        Command::Resume { claim } => {
            handle(&client, namespace, &claim).await?.resume().await?;
            eprintln!("{claim} resumed");
            Ok(0)
        }
        Command::Rm { claims } => {
            for claim in claims {
                client.delete_sandbox(&claim, namespace).await?;
                eprintln!("{claim} deleted");
            }
            Ok(0)
        }
        Command::Logs { claim, follow } => logs(&client, namespace, &claim, follow).await,
        Command::Completion { .. } => unreachable!("handled before connecting"),
    }
}

async fn handle(client: &SandboxClient, namespace: &str, claim: &str) -> anyhow::Result<Sandbox> {
    Ok(client.get_sandbox(claim, namespace).await?)
}

/// What `claim` prints with `--output json`.
#[derive(Serialize)]
struct Claimed<'a> {
    claim: &'a str,
    namespace: &'a str,
    sandbox: Option<&'a str>,
    ready: bool,
}

async fn claim(
    client: &SandboxClient,
    namespace: &str,
    pool: String,
    name: Option<String>,
    wait: bool,
    timeout: u64,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut options = CreateOptions::new(pool);
    options.namespace = namespace.to_owned();
    options.claim_name = name;
    options.ready_timeout = Duration::from_secs(timeout);
    let (claim, sandbox) = if wait {
        let progress = Progress::start("waiting for the claim to be Ready");
        let sandbox = client.create_sandbox(options).await;
        progress.stop();
        let sandbox = sandbox?;
        (
            sandbox.claim_name().to_owned(),
            Some(sandbox.name().to_owned()),
        )
    } else {
        (client.create_claim(options).await?, None)
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string(&Claimed {
                claim: &claim,
                namespace,
                sandbox: sandbox.as_deref(),
                ready: sandbox.is_some(),
            })?
        ),
        Output::Table => println!("{claim}"),
    }
    Ok(0)
}

/// One row of `ls`.
#[derive(Serialize)]
struct Row {
    claim: String,
    pool: String,
    sandbox: String,
    ready: String,
    reason: String,
}

async fn list(client: &SandboxClient, namespace: &str, output: Output) -> anyhow::Result<ExitCode> {
    let claims: Api<SandboxClaim> = Api::namespaced(client.kube().clone(), namespace);
    let mut rows: Vec<Row> = claims
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing SandboxClaims in {namespace}"))?
        .items
        .iter()
        .map(|claim| {
            let status = claim.status.clone().unwrap_or_default();
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            Row {
                claim: claim.name_any(),
                pool: claim.spec.warm_pool_ref.name.clone(),
                sandbox: status.sandbox.name,
                ready: ready
                    .map(|c| c.status.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.claim.cmp(&b.claim));
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Table => print!("{}", table(&rows)),
    }
    Ok(0)
}

/// `rows` as aligned columns with a header.
fn table(rows: &[Row]) -> String {
    let cells: Vec<[&str; 5]> = std::iter::once(["CLAIM", "POOL", "SANDBOX", "READY", "REASON"])
        .chain(rows.iter().map(|r| {
            [
                r.claim.as_str(),
                r.pool.as_str(),
                r.sandbox.as_str(),
                r.ready.as_str(),
                r.reason.as_str(),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| cells.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("   ").trim_end());
        text.push('\n');
    }
    text
}

async fn exec(
    client: &SandboxClient,
    namespace: &str,
    claim: &str,
    timeout: Option<u64>,
    argv: &[String],
) -> anyhow::Result<ExitCode> {
    let sandbox = handle(client, namespace, claim).await?;
    let options = RunOptions {
        timeout: timeout.map(Duration::from_secs),
        ..RunOptions::default()
    };
    let mut events = sandbox.run_streaming(&shell_line(argv), &options).await?;
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    while let Some(event) = events.next().await {
        match event? {
            OutputEvent::Stdout(chunk) => {
                stdout.write_all(&chunk).await?;
                stdout.flush().await?;
            }
            OutputEvent::Stderr(chunk) => {
                stderr.write_all(&chunk).await?;
                stderr.flush().await?;
            }
            OutputEvent::Exit(code) => return Ok(code),
        }
    }
    anyhow::bail!("the sandbox closed the command's stream before it exited")
}

/// `argv` as one POSIX shell command line, each word quoted unless it is plainly safe: the runtime
/// runs commands through `/bin/sh -c`, and `kubectl sandbox exec NAME -- ls 'a b'` must list one
/// file named `a b`.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn copy(
    client: &SandboxClient,
    namespace: &str,
    source: &str,
    destination: &str,
) -> anyhow::Result<ExitCode> {
    match (Location::parse(source), Location::parse(destination)) {
        (Location::Local(local), Location::Sandbox { claim, path }) => {
            let file = tokio::fs::File::open(&local)
                .await
                .with_context(|| format!("opening {}", local.display()))?;
            let sandbox = handle(client, namespace, &claim).await?;
            sandbox.write_from(&path, file).await?;
        }
        (Location::Sandbox { claim, path }, Location::Local(local)) => {
            let sandbox = handle(client, namespace, &claim).await?;
            let mut chunks = sandbox.read_stream(&path).await?;
            let mut file = tokio::fs::File::create(&local)
                .await
                .with_context(|| format!("creating {}", local.display()))?;
            while let Some(chunk) = chunks.try_next().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
        }
        _ => anyhow::bail!(
            "cp copies between this machine and a sandbox: one side is CLAIM:path, the other a local path"
        ),
    }
    Ok(0)
}

async fn logs(
    client: &SandboxClient,
    namespace: &str,
    claim: &str,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let sandbox = handle(client, namespace, claim).await?;
    // The Sandbox's Pod is named like the Sandbox (upstream 1.0's contract).
    let pods: Api<Pod> = Api::namespaced(client.kube().clone(), namespace);
    let params = LogParams {
        follow,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream(sandbox.name(), &params)
        .await
        .with_context(|| format!("reading the logs of Pod {namespace}/{}", sandbox.name()))?
        .lines();
    let mut stdout = std::io::stdout();
    while let Some(line) = lines.try_next().await? {
        writeln!(stdout, "{line}")?;
    }
    Ok(0)
}

/// Elapsed seconds on stderr while something is waited for, when stderr is a terminal.
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(what: &'static str) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                eprint!("\r{what}… {}s", started.elapsed().as_secs());
            }
        });
        Self { task: Some(task) }
    }

    fn stop(self) {
        if let Some(task) = self.task {
            task.abort();
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_and_others_are_quoted_for_the_shell() {
        let argv: Vec<String> = ["ls", "-la", "a b", "it's", "", "$HOME"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(shell_line(&argv), r#"ls -la 'a b' 'it'\''s' '' '$HOME'"#);
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let rows = [Row {
            claim: "task".into(),
            pool: "python-pool".into(),
            sandbox: "python-pool-abcde".into(),
            ready: "True".into(),
            reason: "DependenciesReady".into(),
        }];
        assert_eq!(
            table(&rows),
            "CLAIM   POOL          SANDBOX             READY   REASON\n\
             task    python-pool   python-pool-abcde   True    DependenciesReady\n"
        );
    }
}
