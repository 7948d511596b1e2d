//! The real router binary, started as a host process for a suite (as the controller is), on a free
//! loopback port, and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::process::{self, Process};

/// Environment variable naming the router binary (`cargo xtask test` builds it and sets this).
pub const BINARY_ENV: &str = "AGENT_SANDBOX_ROUTER_BIN";

/// How long the router may take to bind and then to list Sandboxes and pods.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The router binary to run: `$AGENT_SANDBOX_ROUTER_BIN`, else target/debug/agent-sandbox-router.
pub fn binary() -> anyhow::Result<PathBuf> {
    process::binary(BINARY_ENV, "agent-sandbox-router")
}

/// A running router; killed when dropped. Its log (JSON lines) goes to
/// `target/e2e-logs/<name>.log`.
pub struct Router {
    process: Process,
    addr: std::net::SocketAddr,
}

impl Router {
    /// Starts the router against `kubeconfig` on 127.0.0.1 (a port the kernel picks), and returns
    /// once it serves and reports ready (its watches listed everything).
    pub async fn start(name: &str, kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let log = process::log_path(name)?;
        let mut file = tokio::fs::File::create(&log)
            .await
            .with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(binary()?)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--bind-address=127.0.0.1:0", "--log-format=json"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the router")?;
        // The log is read as it is written: the "serving" line names the bound address; every
        // line is copied to the log file.
        let stderr = child.stderr.take().context("the router's stderr")?;
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = serving_address(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                let _ = file.flush().await;
            }
        });
        let mut router = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
            Ok(Ok(addr)) => Self {
                process: Process::new("router", child, log),
                addr,
            },
            _ => {
                let _ = child.kill().await;
                bail!(
                    "the router did not report its address within {START_TIMEOUT:?}; log:\n{}",
                    process::tail_of(&log, 40)
                );
            }
        };
        router.wait_ready().await?;
        Ok(router)
    }

    /// The address it serves on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Polls `/readyz` (with a bound) until the router's caches synced.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            self.process.ensure_running()?;
            if readyz(self.addr).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the router was not ready within {START_TIMEOUT:?}; log:\n{}",
                    self.tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `body` with the address of a router started as [`Router::start`] does; afterwards the
/// router must still be running, and it is stopped. Its log's tail is printed when either failed.
pub async fn with_router<T>(
    name: &str,
    kubeconfig: &Path,
    extra_args: &[&str],
    body: impl AsyncFnOnce(std::net::SocketAddr) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut router = Router::start(name, kubeconfig, extra_args).await?;
    let result = body(router.addr()).await;
    let running = router.ensure_running();
    let stopped = router.stop().await;
    if result.is_err() || running.is_err() {
        eprintln!("router log (tail):\n{}", router.tail(40));
    }
    let value = result?;
    running?;
    stopped?;
    Ok(value)
}

/// Checked on and stopped as a [`Process`] (`ensure_running`, `stop`, `tail`).
impl std::ops::Deref for Router {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Router {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// The `address` of the router's `serving` log line (JSON).
fn serving_address(line: &str) -> Option<std::net::SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "serving" {
        return None;
    }
    value.get("address")?.as_str()?.parse().ok()
}

/// One `GET /readyz` over a fresh connection: true for a 200 answer.
async fn readyz(addr: std::net::SocketAddr) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}
