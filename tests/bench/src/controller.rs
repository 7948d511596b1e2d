//! The controller under test: any binary implementing the CRDs, started from a command template, with its
//! metrics and health endpoints on ports the bench picks, so it can be scraped and sampled from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::prom::Scrape;
use crate::sysinfo::{ProcSample, sample};

/// Placeholders a `--controller-cmd` may use; each is replaced before the command runs.
pub const PLACEHOLDERS: &str =
    "{kubeconfig} {metrics_addr} {health_addr} {metrics_port} {health_port}";

/// The command line of our controller with the flags the bench needs.
pub fn default_command(binary: &Path) -> String {
    format!(
        "'{}' --kubeconfig {{kubeconfig}} --leader-elect=false --enable-webhook=false --extensions \
         --metrics-bind-address {{metrics_addr}} --health-probe-bind-address {{health_addr}}",
        binary.display()
    )
}

/// A controller command and the name it is reported under.
#[derive(Debug, Clone)]
pub struct ControllerSpec {
    /// Short name in tables and JSON (`ours`, `other`, or the binary's file name).
    pub label: String,
    /// Shell command template (run with `sh -c "exec …"`).
    pub command: String,
}

/// A running controller process; killed if dropped without [`RunningController::stop`].
pub struct RunningController {
    child: Child,
    pid: u32,
    metrics: String,
    health: String,
    log: PathBuf,
}

impl RunningController {
    /// Starts `spec` against `kubeconfig` (also exported as `KUBECONFIG`), logging to `log`.
    pub fn start(spec: &ControllerSpec, kubeconfig: &Path, log: &Path) -> anyhow::Result<Self> {
        let (metrics_port, health_port) = (free_port()?, free_port()?);
        let metrics = format!("127.0.0.1:{metrics_port}");
        let health = format!("127.0.0.1:{health_port}");
        let command = spec
            .command
            .replace("{kubeconfig}", &kubeconfig.display().to_string())
            .replace("{metrics_addr}", &metrics)
            .replace("{health_addr}", &health)
            .replace("{metrics_port}", &metrics_port.to_string())
            .replace("{health_port}", &health_port.to_string());
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = file.try_clone().context("duplicating the log handle")?;
        // `exec` makes the controller itself the child, so /proc/<pid> is the controller's.
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting controller `{command}`"))?;
        let pid = child.id().context("the controller exited at once")?;
        Ok(Self {
            child,
            pid,
            metrics,
            health,
            log: log.to_path_buf(),
        })
    }

    /// Waits until `/readyz` answers 200 (every cache listed), polling every 10 ms up to `timeout`;
    /// returns how long that took. Fails at once if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().context("checking the controller")? {
                bail!(
                    "the controller exited with {status} before it was ready; last log lines:\n{}",
                    self.tail(30)
                );
            }
            if matches!(http_get(&self.health, "/readyz").await, Ok((200, _))) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!(
                    "the controller was not ready (GET http://{}/readyz) within {}s; last log lines:\n{}",
                    self.health,
                    timeout.as_secs(),
                    self.tail(30)
                );
            }
        }
    }

    /// Scrapes `/metrics`; an empty scrape if the controller serves none there.
    pub async fn metrics(&self) -> Scrape {
        match http_get(&self.metrics, "/metrics").await {
            Ok((200, body)) => Scrape::parse(&body),
            _ => Scrape::default(),
        }
    }

    /// CPU seconds and memory from /proc.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        sample(self.pid)
    }

    /// Fails (with the log tail) if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("checking the controller")? {
            bail!(
                "the controller exited with {status}; last log lines:\n{}",
                self.tail(30)
            );
        }
        Ok(())
    }

    /// SIGTERM, then wait up to 30 s (SIGKILL after that).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status.context("waiting for the controller")?;
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("killing the controller")?;
                bail!("the controller did not exit within 30s of SIGTERM; killed it")
            }
        }
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET (the server closes the connection, so the body is everything after the headers).
async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .context("HTTP GET timed out")??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((status, body.to_string()))
}
