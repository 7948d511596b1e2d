//! The router in front of a real sandbox: a Sandbox running the runtime image under gVisor on the
//! real node, the router binary as a host process with its own ServiceAccount's RBAC, and plain
//! HTTP/1.1 requests to it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_sandbox_testkit::controller::{SYSTEM_NAMESPACE, service_account_kubeconfig};
use agent_sandbox_testkit::router::with_router;
use agent_sandbox_testkit::{TestEnv, cluster, http, manifests, workspace_root};
use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::real_node_support::{
    CONTAINER, create_sandbox, ensure_on_real_node, pod_ip, pod_template, sandbox_pod,
    wait_sandbox_ready,
};

/// The runtime image `cargo xtask images` builds: our daemon on Debian's python3.
pub const RUNTIME: &str = "localhost/agent-sandbox/runtime:local";

/// The router's ServiceAccount in deploy/router.
const ROUTER_ACCOUNT: &str = "sandbox-router";

/// Requests timed for the overhead figure (printed, never asserted).
const TIMED_REQUESTS: usize = 200;

/// An HTTP answer: status and body.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {} with a body that is not JSON: {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Answer> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .with_context(|| format!("connecting to {addr} timed out"))?
    .with_context(|| format!("connecting to {addr}"))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .with_context(|| format!("{method} {path} to {addr}: no complete answer within 60s"))??;
    parse(&raw).with_context(|| format!("{method} {path} to {addr}"))
}

fn parse(raw: &[u8]) -> anyhow::Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let mut body = raw[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Answer { status, body })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Headers naming Sandbox `namespace/name` (port: upstream's default 8888).
fn sandbox_headers<'a>(namespace: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("X-Sandbox-ID", name), ("X-Sandbox-Namespace", namespace)]
}

/// Installs deploy/router's ServiceAccount and RBAC and writes a kubeconfig for that account, so
/// the router below runs with exactly the permissions the install grants it.
pub async fn router_kubeconfig(env: &TestEnv) -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root();
    manifests::apply_file(
        &env.client,
        &root.join("deploy/controller/namespace.yaml"),
        SYSTEM_NAMESPACE,
    )
    .await?;
    for file in ["service-account.yaml", "rbac.yaml"] {
        manifests::apply_file(
            &env.client,
            &root.join("deploy/router").join(file),
            SYSTEM_NAMESPACE,
        )
        .await?;
    }
    let path = root.join("target/e2e-logs/router.kubeconfig");
    service_account_kubeconfig(
        &env.client,
        &cluster::kubeconfig_path(),
        SYSTEM_NAMESPACE,
        ROUTER_ACCOUNT,
        &path,
    )
    .await?;
    Ok(path)
}

/// A Sandbox running the runtime image under gVisor, Ready once its legacy API answers; then,
/// through the router (its own process, its own RBAC): `/execute` runs a command in the sandbox
/// and returns its output, an unknown Sandbox is 404, and `X-Sandbox-Pod-IP` naming the node or
/// loopback is refused while naming the pod's own IP works. Prints the router's overhead per
/// request (median of sequential requests on a kept-alive connection, router vs the pod directly;
/// never asserted).
pub async fn execute_through_the_router_and_refuse_the_rest(env: TestEnv) -> anyhow::Result<()> {
    let kubeconfig = router_kubeconfig(&env).await?;
    let container = json!({
        "name": CONTAINER, "image": RUNTIME, "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8888, "name": "legacy"}],
        // Ready only once the daemon answers, so the router never sees a pod that cannot serve.
        "readinessProbe": {"httpGet": {"path": "/", "port": 8888}, "periodSeconds": 1},
    });
    create_sandbox(
        &env,
        "runtime",
        pod_template("gvisor", json!([container]), json!({})),
        json!({}),
    )
    .await?;
    let sandbox = wait_sandbox_ready(&env, "runtime").await?;
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "gvisor")?;
    let ip = pod_ip(&pod).context("the Ready pod has no IP")?;

    with_router("router-e2e", &kubeconfig, &[], async |router| {
        scenario(&env, router, &ip).await
    })
    .await
}

async fn scenario(env: &TestEnv, router: SocketAddr, pod_ip: &str) -> anyhow::Result<()> {
    let ns = env.namespace.as_str();
    let mut headers = sandbox_headers(ns, "runtime");
    headers.push(("Content-Type", "application/json"));
    let answer = http(
        router,
        "POST",
        "/execute",
        &headers,
        r#"{"command": "uname -r"}"#,
    )
    .await?;
    let result = answer.json()?;
    ensure!(
        answer.status == 200 && result["exit_code"] == 0,
        "POST /execute through the router: {} {result}",
        answer.status
    );
    let kernel = result["stdout"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("[router] POST /execute `uname -r` through the router: {kernel:?}");
    ensure!(
        kernel.contains("gvisor"),
        "the command did not run under gVisor: {result}"
    );
    let answer = http(
        router,
        "POST",
        "/execute",
        &headers,
        r#"{"command": "python3 -c 'print(6 * 7)'"}"#,
    )
    .await?;
    let result = answer.json()?;
    ensure!(
        result["stdout"] == "42\n",
        "python3 through the router: {} {result}",
        answer.status
    );

    let answer = http(
        router,
        "GET",
        "/",
        &sandbox_headers(ns, "no-such-sandbox"),
        "",
    )
    .await?;
    ensure!(
        answer.status == 404
            && answer.json()?
                == json!({"detail": format!("sandbox {ns}/no-such-sandbox not found")}),
        "unknown sandbox: {} {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );

    // The node's bridge address (the kubelet, CoreDNS) and loopback (the API server here) are not
    // this Sandbox's pod: refused without a connection.
    for foreign in ["10.88.0.1", "127.0.0.1"] {
        let mut headers = sandbox_headers(ns, "runtime");
        headers.push(("X-Sandbox-Pod-IP", foreign));
        let answer = http(router, "GET", "/", &headers, "").await?;
        let detail = answer.json()?["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ensure!(
            answer.status == 403 && detail.contains("is not an IP of sandbox"),
            "X-Sandbox-Pod-IP {foreign}: {} {detail:?}",
            answer.status
        );
    }
    let mut own = sandbox_headers(ns, "runtime");
    own.push(("X-Sandbox-Pod-IP", pod_ip));
    let answer = http(router, "GET", "/", &own, "").await?;
    ensure!(
        answer.status == 200,
        "X-Sandbox-Pod-IP {pod_ip} (the pod's own): {}",
        answer.status
    );

    let direct: SocketAddr = format!("{pod_ip}:8888").parse()?;
    let via_router = median_latency(router, &sandbox_headers(ns, "runtime")).await?;
    let to_pod = median_latency(direct, &[]).await?;
    eprintln!(
        "[router] GET / median over {TIMED_REQUESTS} sequential requests on one kept-alive \
         connection: through the router {:.3} ms, to the pod directly {:.3} ms, difference {:+.3} ms",
        ms(via_router),
        ms(to_pod),
        ms(via_router) - ms(to_pod)
    );
    Ok(())
}

/// Median time of `GET /` over one kept-alive connection (so neither path pays a TCP handshake
/// per request; the router keeps its own connection to the pod alive too).
async fn median_latency(addr: SocketAddr, headers: &[(&str, &str)]) -> anyhow::Result<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut stream = tokio::io::BufReader::new(stream);
    let mut request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut times = Vec::with_capacity(TIMED_REQUESTS);
    for _ in 0..TIMED_REQUESTS {
        let started = Instant::now();
        stream.get_mut().write_all(request.as_bytes()).await?;
        let (status, _) = http::read_answer(&mut stream).await?;
        times.push(started.elapsed());
        ensure!(status == 200, "GET / via {addr}: {status}");
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
