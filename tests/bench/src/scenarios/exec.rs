//! `exec`: what an agent waits for on the local cluster's real node. A warm pool of gVisor sandboxes
//! running the runtime image, the router as a host process, then claims one at a time, each on a
//! full pool: claim created → claim Ready → the first command's output back through the router,
//! once per client: our own minimal HTTP (a watch as the SDK does, then `POST /execute`: the
//! floor), our Rust client (`agent-sandbox-client`) and upstream's Python SDK (`k8s-agent-sandbox`,
//! pinned, unchanged), in one run on the same pool. Then the router's cost per request: the same
//! request, one at a time on a kept-alive connection, through the router and to the pod directly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::cluster;
use agent_sandbox_testkit::fixtures;
use agent_sandbox_testkit::router::Router;
use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::context::Bench;
use crate::controller::ControllerSpec;
use crate::measure::{Observed, Window};
use crate::report::{Phase, RunReport};
use crate::stats::{Latency, round};

/// The runtime image `cargo xtask cluster up` imports into the real node's containerd.
const RUNTIME_IMAGE: &str = "localhost/agent-sandbox/runtime:local";
const TEMPLATE: &str = "exec-template";
const POOL: &str = "exec-pool";

/// How long one claim may take to be Ready, a pool to refill, a Sandbox to go (real gVisor pods).
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// Flags of `exec`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Claims, one at a time, each made on a full pool (so each is served warm).
    #[arg(long, default_value_t = 100)]
    pub claims: usize,
    /// Warm pool size (each member is a gVisor sandbox holding memory on this machine).
    #[arg(long, default_value_t = 2)]
    pub pool: usize,
    /// The first command of each claim, sent to the runtime's legacy `POST /execute`.
    #[arg(long, default_value = "echo ready")]
    pub command: String,
    /// Sequential `GET /` requests on each path for the router's cost per request.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// The clients whose claim → first output is measured, each over `claims` claims.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Client::Raw, Client::Rust, Client::Python])]
    pub clients: Vec<Client>,
}

/// Who claims and runs the first command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// Our own minimal HTTP: a claim watched as upstream's SDK does, then `POST /execute`.
    Raw,
    /// `agent-sandbox-client` (a router URL connection): `create_sandbox`, then `run`.
    Rust,
    /// Upstream's Python SDK (`$AGENT_SANDBOX_SDK_PYTHON`, which `cargo xtask bench exec` sets):
    /// `create_sandbox`, then `commands.run`.
    Python,
}

impl Client {
    /// The phase name of its claims.
    fn phase(self) -> &'static str {
        match self {
            Self::Raw => "claim-exec",
            Self::Rust => "claim-exec-rust-client",
            Self::Python => "claim-exec-python-sdk",
        }
    }
}

/// Runs `exec` once against `spec`.
pub async fn run(bench: &Bench, spec: &ControllerSpec, args: &Args) -> anyhow::Result<RunReport> {
    let (controller, _) = bench.start_controller(spec, "exec").await?;
    let namespace = bench.namespace("exec").await?;
    let phases = async {
        fill_pool(bench, &namespace, args.pool).await?;
        let mut router = Router::start("bench-exec-router", &cluster::kubeconfig_path(), &[])
            .await
            .context(
                "starting the router (cargo xtask bench builds it: AGENT_SANDBOX_ROUTER_BIN)",
            )?;
        let measured = async {
            let mut phases = Vec::new();
            for &client in &args.clients {
                let mut claimer = Claimer::start(bench, client, &namespace, router.addr(), args)?;
                phases.push(
                    claims_phase(bench, &controller, &namespace, &mut claimer, client, args)
                        .await?,
                );
            }
            phases.push(overhead_phase(bench, &controller, &namespace, router.addr(), args).await?);
            anyhow::Ok(phases)
        }
        .await;
        let stopped = router.stop().await;
        if measured.is_err() {
            eprintln!("[bench] router log (tail):\n{}", router.tail(30));
        }
        let phases = measured?;
        stopped?;
        anyhow::Ok(phases)
    }
    .await;
    bench.delete_namespace(&namespace, STEP_TIMEOUT).await?;
    controller.stop().await?;
    Ok(RunReport {
        controller: spec.label.clone(),
        command: spec.command.clone(),
        phases: phases?,
    })
}

/// The template (runtime image under gVisor, Ready once its legacy API answers) and a pool of it.
async fn fill_pool(bench: &Bench, namespace: &str, replicas: usize) -> anyhow::Result<()> {
    let template = fixtures::template(
        TEMPLATE,
        json!({"podTemplate": {"spec": {
            "runtimeClassName": "gvisor",
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "python", "image": RUNTIME_IMAGE, "imagePullPolicy": "Never",
                "ports": [{"containerPort": 8888, "name": "legacy"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8888}, "periodSeconds": 1},
            }],
        }}}),
    )?;
    Api::<SandboxTemplate>::namespaced(bench.client.clone(), namespace)
        .create(&PostParams::default(), &template)
        .await
        .context("creating the SandboxTemplate")?;
    let pool = fixtures::warm_pool(
        POOL,
        TEMPLATE,
        i32::try_from(replicas).context("pool size")?,
        json!({}),
    )?;
    Api::<SandboxWarmPool>::namespaced(bench.client.clone(), namespace)
        .create(&PostParams::default(), &pool)
        .await
        .context("creating the SandboxWarmPool")?;
    wait_pool_full(bench, namespace, replicas).await
}

/// Polls (bounded) until the pool reports `replicas` Ready members.
async fn wait_pool_full(bench: &Bench, namespace: &str, replicas: usize) -> anyhow::Result<()> {
    let pools = Api::<SandboxWarmPool>::namespaced(bench.client.clone(), namespace);
    let want = i32::try_from(replicas).context("pool size")?;
    poll(STEP_TIMEOUT, "the warm pool to be full", || async {
        let pool = pools.get(POOL).await?;
        Ok(pool.status.is_some_and(|s| s.ready_replicas == want))
    })
    .await
}

/// Polls `done` every 50 ms until it holds, failing after `timeout` with `what`.
async fn poll<F, Fut>(timeout: Duration, what: &str, done: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Times of one claim.
struct ClaimTimes {
    /// Claim created → claim Ready.
    ready: Duration,
    /// Claim created → the first command's output.
    output: Duration,
}

/// A client ready to claim: for the Python SDK, its process (one claim per line on its stdin).
enum Claimer {
    Raw(SocketAddr),
    Rust(agent_sandbox_client::SandboxClient),
    Python(Box<PythonSdk>),
}

impl Claimer {
    fn start(
        bench: &Bench,
        client: Client,
        namespace: &str,
        router: SocketAddr,
        args: &Args,
    ) -> anyhow::Result<Self> {
        Ok(match client {
            Client::Raw => Self::Raw(router),
            Client::Rust => Self::Rust(agent_sandbox_client::SandboxClient::new(
                bench.client.clone(),
                agent_sandbox_client::Connection::Router {
                    url: format!("http://{router}"),
                },
            )),
            Client::Python => Self::Python(Box::new(PythonSdk::start(
                namespace,
                router,
                &args.command,
            )?)),
        })
    }

    /// One claim of the pool and its first command: the claim's and the Sandbox's names, and the
    /// times from just before the claim was created.
    async fn claim_once(
        &mut self,
        claims: &Api<SandboxClaim>,
        i: usize,
        namespace: &str,
        command: &str,
    ) -> anyhow::Result<(String, String, ClaimTimes)> {
        match self {
            Self::Raw(router) => {
                let name = format!("exec-{i}");
                let (sandbox, times) = claim_and_run(claims, &name, namespace, *router, command)
                    .await
                    .with_context(|| format!("claim {name}"))?;
                Ok((name, sandbox, times))
            }
            Self::Rust(client) => {
                let options = agent_sandbox_client::CreateOptions {
                    namespace: namespace.to_owned(),
                    claim_name: Some(format!("rust-{i}")),
                    ready_timeout: STEP_TIMEOUT,
                    ..agent_sandbox_client::CreateOptions::new(POOL)
                };
                let started = Instant::now();
                let sandbox = client.create_sandbox(options).await?;
                let ready = started.elapsed();
                let result = sandbox
                    .run(command, &agent_sandbox_client::RunOptions::default())
                    .await?;
                let output = started.elapsed();
                ensure!(
                    result.exit_code == 0 && !result.stdout.is_empty(),
                    "`{command}` through the Rust client: {result:?}"
                );
                Ok((
                    sandbox.claim_name().to_owned(),
                    sandbox.name().to_owned(),
                    ClaimTimes { ready, output },
                ))
            }
            Self::Python(sdk) => sdk.claim_once().await,
        }
    }
}

/// Upstream's Python SDK in a process of its own, claiming once per line it reads (so this side
/// decides when: after the pool refilled), timing each claim itself.
struct PythonSdk {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// Reads one line per claim; answers with one JSON line of what the SDK saw. The SDK's client is
/// made once (as an agent would), so its set-up is not in any claim's time.
const PYTHON_CLAIMER: &str = r#"
import json, sys, time
from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig
namespace, pool, router, command = sys.argv[1:5]
client = SandboxClient(connection_config=SandboxDirectConnectionConfig(api_url=router))
for _ in sys.stdin:
    started = time.monotonic()
    sandbox = client.create_sandbox(pool, namespace=namespace)
    ready = time.monotonic() - started
    result = sandbox.commands.run(command)
    output = time.monotonic() - started
    print(json.dumps({"claim": sandbox.claim_name, "sandbox": sandbox.sandbox_id, "ready": ready,
                      "output": output, "exit_code": result.exit_code, "stdout": result.stdout}),
          flush=True)
"#;

impl PythonSdk {
    fn start(namespace: &str, router: SocketAddr, command: &str) -> anyhow::Result<Self> {
        let python = std::env::var_os("AGENT_SANDBOX_SDK_PYTHON").context(
            "AGENT_SANDBOX_SDK_PYTHON is not set: run through `cargo xtask bench exec` (it makes the \
             SDK's venv), or pass --clients raw,rust",
        )?;
        let mut child = tokio::process::Command::new(python)
            .args(["-u", "-c", PYTHON_CLAIMER, namespace, POOL])
            .arg(format!("http://{router}"))
            .arg(command)
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting upstream's Python SDK")?;
        let stdin = child.stdin.take().context("the SDK's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the SDK's stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    async fn claim_once(&mut self) -> anyhow::Result<(String, String, ClaimTimes)> {
        self.stdin.write_all(b"claim\n").await?;
        let line = tokio::time::timeout(STEP_TIMEOUT, self.stdout.next_line())
            .await
            .context("the Python SDK did not claim in time")??;
        let Some(line) = line else {
            let status = self.child.wait().await?;
            bail!("the Python SDK exited ({status}); its error is above");
        };
        let seen: Value = serde_json::from_str(&line).context("the SDK's answer")?;
        ensure!(
            seen["exit_code"] == 0 && seen["stdout"].as_str().is_some_and(|s| !s.is_empty()),
            "the first command through the Python SDK: {seen}"
        );
        let seconds = |key: &str| Duration::from_secs_f64(seen[key].as_f64().unwrap_or_default());
        Ok((
            seen["claim"].as_str().unwrap_or_default().to_owned(),
            seen["sandbox"].as_str().unwrap_or_default().to_owned(),
            ClaimTimes {
                ready: seconds("ready"),
                output: seconds("output"),
            },
        ))
    }
}

/// `args.claims` claims one at a time by `claimer`, each on a full pool; the claim and its Sandbox
/// are deleted (and gone) before the next, so no teardown overlaps a measurement.
async fn claims_phase(
    bench: &Bench,
    controller: &crate::controller::RunningController,
    namespace: &str,
    claimer: &mut Claimer,
    client: Client,
    args: &Args,
) -> anyhow::Result<Phase> {
    let claims = Api::<SandboxClaim>::namespaced(bench.client.clone(), namespace);
    let sandboxes = Api::<Sandbox>::namespaced(bench.client.clone(), namespace);
    let window = Window::start(&bench.client, Some(controller), bench.isolated).await?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(args.claims);
    for i in 0..args.claims {
        wait_pool_full(bench, namespace, args.pool).await?;
        let (name, sandbox, t) = claimer
            .claim_once(&claims, i, namespace, &args.command)
            .await?;
        times.push(t);
        claims
            .delete(&name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting claim {name}"))?;
        poll(
            STEP_TIMEOUT,
            "the claimed Sandbox to be deleted",
            || async { Ok(sandboxes.get_opt(&sandbox).await?.is_none()) },
        )
        .await?;
    }
    let last = Instant::now();
    let output: Vec<Duration> = times.iter().map(|t| t.output).collect();
    let ready: Vec<Duration> = times.iter().map(|t| t.ready).collect();
    let run: Vec<Duration> = times.iter().map(|t| t.output - t.ready).collect();
    let mut phase = window
        .finish(
            &bench.client,
            controller,
            Observed {
                name: client.phase(),
                objects: times.len(),
                latencies: &output,
                first: started,
                last,
            },
        )
        .await?;
    let (ready, run) = (Latency::of(&ready), Latency::of(&run));
    for (key, value) in [
        ("claim_ready_p50_ms", ready.p50_ms),
        ("claim_ready_p99_ms", ready.p99_ms),
        ("first_command_p50_ms", run.p50_ms),
        ("first_command_p99_ms", run.p99_ms),
        ("pool", args.pool as f64),
    ] {
        phase.extra.insert(key.into(), value);
    }
    Ok(phase)
}

/// Creates claim `name` on the pool, watches it (from the create's resourceVersion, by name, as
/// upstream's SDK does) until it is Ready and names its Sandbox, then runs `command` there through
/// the router. Returns the Sandbox's name and the times.
async fn claim_and_run(
    claims: &Api<SandboxClaim>,
    name: &str,
    namespace: &str,
    router: SocketAddr,
    command: &str,
) -> anyhow::Result<(String, ClaimTimes)> {
    let claim = fixtures::claim(name, POOL, json!({}))?;
    let started = Instant::now();
    let created = claims.create(&PostParams::default(), &claim).await?;
    let version = created.resource_version().unwrap_or_default();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(STEP_TIMEOUT.as_secs() as u32);
    let mut events = claims.watch(&params, &version).await?.boxed();
    let sandbox = loop {
        match events.try_next().await? {
            Some(WatchEvent::Added(c) | WatchEvent::Modified(c)) => {
                if let Some(sandbox) = ready_sandbox(&c) {
                    break sandbox;
                }
            }
            Some(WatchEvent::Deleted(_)) => bail!("the claim was deleted while waiting"),
            Some(WatchEvent::Error(e)) => bail!("watch error: {e:?}"),
            Some(WatchEvent::Bookmark(_)) => {}
            None => bail!("the claim was not Ready within {STEP_TIMEOUT:?}"),
        }
    };
    let ready = started.elapsed();
    let answer = execute(router, namespace, &sandbox, command).await?;
    let output = started.elapsed();
    ensure!(
        answer["exit_code"] == 0 && answer["stdout"].as_str().is_some_and(|s| !s.is_empty()),
        "`{command}` in {sandbox}: {answer}"
    );
    Ok((sandbox, ClaimTimes { ready, output }))
}

/// The Sandbox of a claim that is Ready, if it is.
fn ready_sandbox(claim: &SandboxClaim) -> Option<String> {
    let status = claim.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| fixtures::bound(claim)).flatten()
}

/// `POST /execute` through the router on a fresh connection (as a client's first request to a
/// new sandbox is); the JSON answer.
async fn execute(
    router: SocketAddr,
    namespace: &str,
    sandbox: &str,
    command: &str,
) -> anyhow::Result<Value> {
    let mut connection = Connection::open(router).await?;
    let body = json!({ "command": command }).to_string();
    let headers = [
        ("X-Sandbox-ID", sandbox),
        ("X-Sandbox-Namespace", namespace),
        ("Content-Type", "application/json"),
    ];
    let (status, answer) = connection
        .request("POST", "/execute", &headers, &body)
        .await?;
    ensure!(
        status == 200,
        "POST /execute through the router: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    serde_json::from_slice(&answer).context("the /execute answer is not JSON")
}

/// The router's cost: `args.requests` `GET /` to one pool member through the router and as many
/// to its pod directly, alternating, each path on its own kept-alive connection (the router keeps
/// its connection to the pod alive too). Client latency is the router path's; `extra` has the
/// direct path's and the differences.
async fn overhead_phase(
    bench: &Bench,
    controller: &crate::controller::RunningController,
    namespace: &str,
    router: SocketAddr,
    args: &Args,
) -> anyhow::Result<Phase> {
    wait_pool_full(bench, namespace, args.pool).await?;
    let sandboxes = Api::<Sandbox>::namespaced(bench.client.clone(), namespace);
    let member = sandboxes
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find_map(|s| {
            let ip = s.status.as_ref()?.pod_ips.first()?.clone();
            Some((s.name_any(), ip))
        })
        .context("no pool member with a pod IP")?;
    let (name, ip) = member;
    let direct: SocketAddr = format!("{ip}:8888").parse().context("the pod IP")?;
    let headers = [
        ("X-Sandbox-ID", name.as_str()),
        ("X-Sandbox-Namespace", namespace),
    ];
    let mut via_router = Connection::open(router).await?;
    let mut to_pod = Connection::open(direct).await?;
    let window = Window::start(&bench.client, Some(controller), bench.isolated).await?;
    let started = Instant::now();
    let (mut routed, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..args.requests {
        routed.push(via_router.timed_get(&headers).await?);
        straight.push(to_pod.timed_get(&[]).await?);
    }
    let last = Instant::now();
    let mut phase = window
        .finish(
            &bench.client,
            controller,
            Observed {
                name: "router-overhead",
                objects: routed.len(),
                latencies: &routed,
                first: started,
                last,
            },
        )
        .await?;
    let (r, d) = (Latency::of(&routed), Latency::of(&straight));
    for (key, value) in [
        ("direct_p50_ms", d.p50_ms),
        ("direct_p99_ms", d.p99_ms),
        ("overhead_p50_ms", round(r.p50_ms - d.p50_ms)),
        ("overhead_p99_ms", round(r.p99_ms - d.p99_ms)),
    ] {
        phase.extra.insert(key.into(), value);
    }
    Ok(phase)
}

/// One HTTP/1.1 connection, kept alive between requests; answers must carry `Content-Length`
/// (the runtime's and the router's do).
struct Connection {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            addr,
        })
    }

    /// One `GET /` with `headers`; how long until its whole answer was read. Fails unless 200.
    async fn timed_get(&mut self, headers: &[(&str, &str)]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (status, _) = self.request("GET", "/", headers, "").await?;
        let took = started.elapsed();
        ensure!(status == 200, "GET / via {}: {status}", self.addr);
        Ok(took)
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let answer = tokio::time::timeout(STEP_TIMEOUT, self.read_answer())
            .await
            .with_context(|| format!("{method} {path} via {}: no answer", self.addr))??;
        Ok(answer)
    }

    async fn read_answer(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        agent_sandbox_testkit::http::read_answer(&mut self.stream).await
    }
}
