//! The real router binary, started as a host process for a suite (as the controller is), on a free
//! loopback port, and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::workspace_root;

/// Environment variable naming the router binary (`cargo xtask test` builds it and sets this).
pub const BINARY_ENV: &str = "AGENT_SANDBOX_ROUTER_BIN";

/// How long the router may take to bind and then to list Sandboxes and pods.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The router binary to run: `$AGENT_SANDBOX_ROUTER_BIN`, else target/debug/agent-sandbox-router.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/agent-sandbox-router"));
    if !path.exists() {
        bail!(
            "the router binary {} does not exist: build it with `cargo build -p agent-sandbox-router` \
             (`cargo xtask test` does) or point {BINARY_ENV} at one",
            path.display()
        );
    }
    Ok(path)
}

/// A running router; killed when dropped. Its log (JSON lines) goes to
/// `target/e2e-logs/<name>.log`.
pub struct Router {
    child: Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Router {
    /// Starts the router against `kubeconfig` on 127.0.0.1 (a port the kernel picks), and returns
    /// once it serves and reports ready (its watches listed everything).
    pub async fn start(name: &str, kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let dir = workspace_root().join("target/e2e-logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join(format!("{name}.log"));
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
            Ok(Ok(addr)) => Self { child, addr, log },
            _ => {
                let _ = child.kill().await;
                bail!(
                    "the router did not report its address within {START_TIMEOUT:?}; log:\n{}",
                    tail_of(&log, 40)
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
            if let Some(status) = self.child.try_wait()? {
                bail!("the router exited with {status}; log:\n{}", self.tail(40));
            }
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

    /// Fails if the process has exited (with the tail of its log).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .context("checking the router process")?
        {
            bail!(
                "the router exited with {status}; last log lines:\n{}",
                self.tail(40)
            );
        }
        Ok(())
    }

    /// Stops the router with SIGTERM (as the kubelet would) and waits for it to exit; kills it if
    /// it has not exited after ten seconds.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(exited) if exited.as_ref().is_ok_and(|s| s.success()) => Ok(()),
            Ok(exited) => bail!(
                "the router exited with {exited:?} on SIGTERM; last log lines:\n{}",
                self.tail(20)
            ),
            Err(_) => {
                self.child.kill().await.context("killing the router")?;
                bail!(
                    "the router did not exit within 10s of SIGTERM; last log lines:\n{}",
                    self.tail(20)
                )
            }
        }
    }

    /// The last `lines` lines of the router's log.
    pub fn tail(&self, lines: usize) -> String {
        tail_of(&self.log, lines)
    }
}

fn tail_of(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
