//! Our Rust client (`crates/client`) against the real node: claims of a gVisor warm pool of the
//! python-runtime template, reached through the router as a host process (a router URL), through
//! the router in the cluster (a port-forward), and at the pod IP (the host routes to pod IPs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox as SandboxObject, SandboxClaim};
use agent_sandbox_client::{
    CommandResult, Connection, CreateOptions, Error, FileKind, OutputEvent, RunOptions, Sandbox,
    SandboxClient,
};
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::router::with_router;
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_set};
use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::real_node_support::claims::wait_pool_ready;
use crate::real_node_support::{TIMEOUT, create_pool};
use crate::router_support::router_kubeconfig;
use crate::runtime_support::{TEMPLATE, overlay_template, with_in_cluster_router};

const POOL: &str = "client-pool";

/// The size of the files scenario's file.
const FILE_SIZE: usize = 4 * 1024 * 1024;

/// How long the router may take to see a resumed sandbox's new pod after it is Ready.
const ROUTER_CATCH_UP: Duration = Duration::from_secs(10);

/// How long a command killed after one second may take to be reported (a gVisor sandbox on a
/// loaded machine).
const KILL_BOUND: Duration = Duration::from_secs(20);

/// The python-runtime template and a warm pool of one Ready gVisor member in the test's namespace.
async fn stage_pool(env: &TestEnv) -> anyhow::Result<()> {
    env.create(&overlay_template().await?).await?;
    create_pool(env, POOL, TEMPLATE, 1).await?;
    wait_pool_ready(env, POOL, 1).await
}

/// A claim of the pool in the test's namespace, waited for as long as a real pod may take.
fn options(env: &TestEnv) -> CreateOptions {
    CreateOptions {
        namespace: env.namespace.clone(),
        ready_timeout: TIMEOUT,
        ..CreateOptions::new(POOL)
    }
}

/// Runs `body` with a claimed sandbox of the staged pool, reached through the router as a host
/// process (with deploy/router's RBAC) by its URL; deletes the claim afterwards.
async fn through_router(
    env: &TestEnv,
    body: impl AsyncFnOnce(&SandboxClient, &Sandbox) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let kubeconfig = router_kubeconfig(env).await?;
    stage_pool(env).await?;
    with_router("router-client", &kubeconfig, &[], async |router| {
        let connection = Connection::Router {
            url: format!("http://{router}"),
        };
        with_sandbox(env, connection, body).await
    })
    .await
}

/// Claims a sandbox over `connection`, runs `body` with it, then deletes the claim.
async fn with_sandbox(
    env: &TestEnv,
    connection: Connection,
    body: impl AsyncFnOnce(&SandboxClient, &Sandbox) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let client = SandboxClient::new(env.client.clone(), connection);
    let sandbox = client.create_sandbox(options(env)).await?;
    let result = body(&client, &sandbox).await;
    let deleted = sandbox.delete().await.context("deleting the claim");
    result.and(deleted)
}

fn default() -> RunOptions {
    RunOptions::default()
}

fn with_timeout(seconds: u64) -> RunOptions {
    RunOptions {
        timeout: Some(Duration::from_secs(seconds)),
        ..RunOptions::default()
    }
}

/// `python3 -c 'print(6*7)'` answers 42.
async fn ensure_python_answers(sandbox: &Sandbox) -> anyhow::Result<()> {
    let result = sandbox.run("python3 -c 'print(6*7)'", &default()).await?;
    let expected = CommandResult {
        stdout: "42\n".into(),
        stderr: String::new(),
        exit_code: 0,
        timed_out: false,
    };
    ensure!(result == expected, "python3 -c 'print(6*7)': {result:?}");
    Ok(())
}

/// A claim from the warm pool (an adopted member, labelled and annotated as the Python SDK does
/// it, with `rust-client` as creator) runs `python3 -c 'print(6*7)'` through the router URL and
/// prints 42; the claim is listed by its label and re-attached by name.
pub async fn claim_from_the_warm_pool_runs_python(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |client, sandbox| {
        ensure!(
            sandbox.name().starts_with(&format!("{POOL}-"))
                && sandbox.name() != sandbox.claim_name(),
            "the claim {} was not served by a pool member: {}",
            sandbox.claim_name(),
            sandbox.name()
        );
        let claim = env.api::<SandboxClaim>().get(sandbox.claim_name()).await?;
        ensure!(
            claim.labels().get(labels::CREATED_BY).map(String::as_str) == Some("rust-client"),
            "created-by: {:?}",
            claim.labels()
        );
        let requested = claim
            .annotations()
            .get(annotations::CLIENT_FIRST_REQUESTED_AT)
            .context("no client-first-requested-at annotation")?;
        requested
            .parse::<Timestamp>()
            .with_context(|| format!("client-first-requested-at {requested:?}"))?;

        ensure_python_answers(sandbox).await?;
        let kernel = sandbox.run("uname -r", &default()).await?;
        ensure!(
            kernel.stdout.contains("gvisor"),
            "the command did not run under gVisor: {kernel:?}"
        );

        let selector = format!("{}=rust-client", labels::CREATED_BY);
        let listed = client
            .list_sandboxes(&env.namespace, Some(selector.as_str()))
            .await?;
        ensure!(
            listed == [sandbox.claim_name()],
            "claims labelled {selector}: {listed:?}"
        );
        let again = client
            .get_sandbox(sandbox.claim_name(), &env.namespace)
            .await?;
        ensure!(
            again.name() == sandbox.name(),
            "re-attached to {} instead of {}",
            again.name(),
            sandbox.name()
        );
        ensure_python_answers(&again).await
    })
    .await
}

/// A failing command is a result: its exit code and stderr; a program that does not exist is 127.
pub async fn a_failing_command_reports_its_exit_code_and_stderr(
    env: TestEnv,
) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        let result = sandbox
            .run("sh -c 'echo partial; echo oops >&2; exit 3'", &default())
            .await?;
        ensure!(
            (
                result.stdout.as_str(),
                result.stderr.as_str(),
                result.exit_code
            ) == ("partial\n", "oops\n", 3)
                && !result.timed_out,
            "exit 3: {result:?}"
        );
        let missing = sandbox.run("no-such-program --flag", &default()).await?;
        ensure!(
            missing.exit_code == 127 && !missing.stderr.is_empty(),
            "a missing program: {missing:?}"
        );
        Ok(())
    })
    .await
}

/// `env` and `cwd` run the command over gRPC (`ProcessService.Execute`, prior-knowledge HTTP/2
/// through the router): the variable is set, the directory is the one asked for, the exit code
/// comes back.
pub async fn env_and_cwd_run_over_grpc(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        sandbox.write("work/marker", "x").await?;
        let options = RunOptions {
            env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            cwd: Some("work".to_owned()),
            ..RunOptions::default()
        };
        let result = sandbox
            .run("echo $GREETING; pwd; ls; exit 4", &options)
            .await?;
        ensure!(
            (result.stdout.as_str(), result.exit_code) == ("hello\n/workspace/work\nmarker\n", 4),
            "over gRPC: {result:?}"
        );
        Ok(())
    })
    .await
}

/// A command past its timeout is killed and reported as timed out (exit 124), on each path: the
/// legacy `/execute`, gRPC `Execute`, and a stream, which ends in `Error::CommandTimeout`.
pub async fn a_timed_out_command_is_killed_and_reported(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        let started = Instant::now();
        let result = sandbox.run("sleep 60", &with_timeout(1)).await?;
        ensure!(
            result.timed_out && result.exit_code == 124 && started.elapsed() < KILL_BOUND,
            "/execute of sleep 60 with a 1 s timeout, after {:?}: {result:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let grpc = RunOptions {
            cwd: Some(".".to_owned()),
            ..with_timeout(1)
        };
        let result = sandbox.run("sleep 60", &grpc).await?;
        ensure!(
            result.timed_out && result.exit_code == 124 && started.elapsed() < KILL_BOUND,
            "gRPC Execute of sleep 60 with a 1 s timeout, after {:?}: {result:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let events: Vec<_> = sandbox
            .run_streaming("echo started; sleep 60", &with_timeout(1))
            .await?
            .collect()
            .await;
        match events.as_slice() {
            [.., Err(Error::CommandTimeout { after })]
                if *after == Duration::from_secs(1) && started.elapsed() < KILL_BOUND => {}
            other => bail!(
                "a stream of sleep 60 with a 1 s timeout, after {:?}: {other:?}",
                started.elapsed()
            ),
        }
        Ok(())
    })
    .await
}

/// Streamed output arrives in order, each line as it is written (the first well before the
/// process ends), and the exit event comes last.
pub async fn streamed_output_arrives_in_order_before_the_exit(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        let command = "for i in 1 2 3; do echo $i; sleep 0.2; done; echo done >&2";
        let mut stream = sandbox.run_streaming(command, &default()).await?;
        let started = Instant::now();
        let mut events = Vec::new();
        while let Some(event) = stream.try_next().await? {
            events.push((started.elapsed(), event));
        }
        let output = Output::of(events.iter().map(|(_, e)| e));
        ensure!(
            output.stdout == b"1\n2\n3\n" && output.stderr == b"done\n" && output.exits == [0],
            "{output:?}"
        );
        ensure!(
            matches!(events.last(), Some((_, OutputEvent::Exit(0)))),
            "the exit is not the last event: {events:?}"
        );
        let exit_at = events.last().map(|(at, _)| *at).unwrap_or_default();
        // The loop sleeps 0.6 s in all: output held back until the end would arrive with the exit.
        let first = events
            .iter()
            .find(|(_, e)| matches!(e, OutputEvent::Stdout(_)))
            .map(|(at, _)| *at)
            .context("no stdout event")?;
        ensure!(
            exit_at.saturating_sub(first) >= Duration::from_millis(300),
            "the first line arrived at {first:?}, the exit at {exit_at:?}: not streamed"
        );
        Ok(())
    })
    .await
}

/// A 4 MiB binary file (every byte value) is written whole and streamed, listed with its size,
/// found by `exists`, read back whole and streamed, and removed; a path above the root, a missing
/// file, a directory read and a file listed fail with their typed errors.
pub async fn files_of_4_mib_round_trip(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        // A byte sequence with every value and no short period (Knuth's multiplicative hash).
        let data: Vec<u8> = (0..FILE_SIZE as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        sandbox.write("blobs/data.bin", data.clone()).await?;
        sandbox
            .write_from("blobs/copy.bin", std::io::Cursor::new(data.clone()))
            .await?;

        ensure!(
            sandbox.exists("blobs/data.bin").await?,
            "data.bin does not exist"
        );
        ensure!(!sandbox.exists("blobs/none.bin").await?, "none.bin exists");
        let listing = sandbox.list("blobs").await?;
        let summary: Vec<_> = listing
            .iter()
            .map(|e| (e.name.as_str(), e.size, e.kind))
            .collect();
        ensure!(
            summary
                == [
                    ("copy.bin", FILE_SIZE as u64, FileKind::File),
                    ("data.bin", FILE_SIZE as u64, FileKind::File)
                ],
            "listing of blobs: {listing:?}"
        );

        let read = sandbox.read("blobs/data.bin").await?;
        ensure!(
            read == data,
            "data.bin read back differs ({} bytes)",
            read.len()
        );
        let streamed: Vec<u8> = sandbox
            .read_stream("blobs/copy.bin")
            .await?
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await?;
        ensure!(
            streamed == data,
            "copy.bin streamed back differs ({} bytes)",
            streamed.len()
        );

        match sandbox.read("../../etc/passwd").await {
            Err(Error::PathRefused { path, .. }) if path == "../../etc/passwd" => {}
            other => bail!("reading above the root: {other:?}"),
        }
        match sandbox.read("blobs/none.bin").await {
            Err(Error::FileNotFound { .. }) => {}
            other => bail!("reading a missing file: {other:?}"),
        }
        match sandbox.read("blobs").await {
            Err(Error::IsADirectory { .. }) => {}
            other => bail!("reading a directory: {other:?}"),
        }
        match sandbox.list("blobs/data.bin").await {
            Err(Error::NotADirectory { .. }) => {}
            other => bail!("listing a file: {other:?}"),
        }
        match sandbox.remove("blobs", false).await {
            Err(Error::Request { status: 409, .. }) => {}
            other => bail!("removing a non-empty directory: {other:?}"),
        }
        sandbox.remove("blobs", true).await?;
        ensure!(
            !sandbox.exists("blobs").await?,
            "blobs survived its removal"
        );
        Ok(())
    })
    .await
}

/// The port-forward connection (to the default install's router running in the cluster, through
/// the Kubernetes API) runs a command, streams one and moves a file.
pub async fn the_port_forward_connection_reaches_the_in_cluster_router(
    env: TestEnv,
) -> anyhow::Result<()> {
    // The router's namespace, ServiceAccount and RBAC, which its Deployment needs.
    router_kubeconfig(&env).await?;
    with_in_cluster_router(async {
        stage_pool(&env).await?;
        with_sandbox(&env, Connection::port_forward(), async |_, sandbox| {
            ensure_python_answers(sandbox).await?;
            ensure_streams(sandbox).await?;
            sandbox.write("notes.txt", "through the tunnel").await?;
            let read = sandbox.read("notes.txt").await?;
            ensure!(read == "through the tunnel", "read back {read:?}");
            Ok(())
        })
        .await
    })
    .await
}

/// A streamed `echo` arrives with a zero exit.
async fn ensure_streams(sandbox: &Sandbox) -> anyhow::Result<()> {
    let events: Vec<OutputEvent> = sandbox
        .run_streaming("echo streamed", &default())
        .await?
        .try_collect()
        .await?;
    let output = Output::of(&events);
    ensure!(
        output.stdout == b"streamed\n" && output.stderr.is_empty() && output.exits == [0],
        "streamed echo: {output:?}"
    );
    Ok(())
}

/// What a stream's events add up to.
#[derive(Debug)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exits: Vec<i32>,
}

impl Output {
    fn of<'a>(events: impl IntoIterator<Item = &'a OutputEvent>) -> Self {
        let mut output = Output {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exits: Vec::new(),
        };
        for event in events {
            match event {
                OutputEvent::Stdout(chunk) => output.stdout.extend_from_slice(chunk),
                OutputEvent::Stderr(chunk) => output.stderr.extend_from_slice(chunk),
                OutputEvent::Exit(code) => output.exits.push(*code),
            }
        }
        output
    }
}

/// The direct connection (the pod IP, no router: this host routes to pod IPs) runs a command,
/// streams one and moves a file.
pub async fn the_direct_connection_reaches_the_pod(env: TestEnv) -> anyhow::Result<()> {
    stage_pool(&env).await?;
    with_sandbox(&env, Connection::Direct, async |_, sandbox| {
        ensure!(sandbox.pod_ip().is_some(), "no pod IP: {sandbox:?}");
        ensure_python_answers(sandbox).await?;
        ensure_streams(sandbox).await?;
        sandbox.write("direct.txt", "to the pod").await?;
        ensure!(
            sandbox.exists("direct.txt").await?,
            "direct.txt does not exist"
        );
        Ok(())
    })
    .await
}

/// Claiming a warm pool that does not exist fails at once with the typed error naming it, and the
/// claim is deleted again.
pub async fn a_missing_warm_pool_fails_with_a_typed_error(env: TestEnv) -> anyhow::Result<()> {
    let client = SandboxClient::new(env.client.clone(), Connection::Direct);
    let started = Instant::now();
    let missing = CreateOptions {
        warm_pool: "no-such-pool".to_owned(),
        ..options(&env)
    };
    match client.create_sandbox(missing).await {
        Err(err @ Error::WarmPoolNotFound { .. }) => {
            let text = err.to_string();
            ensure!(
                text.contains("no-such-pool") && !text.contains('\n'),
                "the error does not name the pool on one line: {text}"
            );
            eprintln!("[client] after {:?}: {text}", started.elapsed());
        }
        other => bail!("claiming a missing warm pool: {other:?}"),
    }
    wait_for_set(
        &env.api::<SandboxClaim>(),
        watcher::Config::default(),
        "the failed claim to be deleted",
        TIMEOUT,
        <[SandboxClaim]>::is_empty,
        |claim: &SandboxClaim| claim.name_any(),
    )
    .await?;
    Ok(())
}

/// Deleting a sandbox deletes its claim (and with it the Sandbox); re-attaching then fails with
/// `ClaimNotFound`, and deleting again is no error.
pub async fn delete_removes_the_claim(env: TestEnv) -> anyhow::Result<()> {
    stage_pool(&env).await?;
    let client = SandboxClient::new(env.client.clone(), Connection::Direct);
    let sandbox = client.create_sandbox(options(&env)).await?;
    let claim = env.api::<SandboxClaim>().get(sandbox.claim_name()).await?;
    let object = env.api::<SandboxObject>().get(sandbox.name()).await?;
    let (claim_name, namespace) = (sandbox.claim_name().to_owned(), env.namespace.clone());
    sandbox.delete().await?;
    wait_deleted(&env.api::<SandboxClaim>(), &claim, TIMEOUT).await?;
    wait_deleted(&env.api::<SandboxObject>(), &object, TIMEOUT).await?;
    match client.get_sandbox(&claim_name, &namespace).await {
        Err(Error::ClaimNotFound { name, .. }) if name == claim_name => {}
        other => bail!("re-attaching to a deleted claim: {other:?}"),
    }
    client.delete_sandbox(&claim_name, &namespace).await?;
    Ok(())
}

/// Suspending removes the sandbox's pod (the router then has nowhere to send a command) and
/// resuming brings a new one that runs commands again.
pub async fn suspend_and_resume(env: TestEnv) -> anyhow::Result<()> {
    through_router(&env, async |_, sandbox| {
        sandbox.suspend().await?;
        ensure!(
            sandbox.pod_ip().is_none(),
            "a suspended sandbox has a pod IP"
        );
        // 503 once the router saw the pod go; 502/504 while it still tries the old pod's IP.
        match sandbox.run("true", &default()).await {
            Err(Error::Request {
                status: 502..=504, ..
            }) => {}
            other => bail!("a command in a suspended sandbox: {other:?}"),
        }
        sandbox.resume().await?;
        ensure!(
            sandbox.pod_ip().is_some(),
            "a resumed sandbox has no pod IP"
        );
        // The router learns of the new pod from its watch, a moment after the Sandbox is Ready.
        let deadline = Instant::now() + ROUTER_CATCH_UP;
        loop {
            match ensure_python_answers(sandbox).await {
                Err(err)
                    if Instant::now() < deadline
                        && matches!(
                            err.downcast_ref::<Error>(),
                            Some(Error::Request { status: 503, .. })
                        ) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => return result,
            }
        }
    })
    .await
}
