//! A binary of ours run as a host process for a suite: where its binary is, where its log goes, and
//! how it is checked on and stopped. The controller and the router are both run this way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::workspace::workspace_root;

/// How long a process may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The binary of `package`: `$<env>`, else `target/debug/<package>`.
pub fn binary(env: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug").join(package));
    if !path.exists() {
        bail!(
            "the binary {} does not exist: build it with `cargo build -p {package}` \
             (`cargo xtask test` does) or point {env} at one",
            path.display()
        );
    }
    Ok(path)
}

/// `target/e2e-logs/<name>.log`, its directory created.
pub fn log_path(name: &str) -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/e2e-logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(format!("{name}.log")))
}

/// The last `lines` lines of the log at `path`.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running process of ours; killed when dropped.
pub struct Process {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Tracks `child`, called `what` in errors, logging to `log`.
    pub fn new(what: &'static str, child: Child, log: PathBuf) -> Self {
        Self { what, child, log }
    }

    /// Fails if the process has exited (with the tail of its log).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .with_context(|| format!("checking the {} process", self.what))?
        {
            bail!(
                "the {} exited with {status}; last log lines:\n{}",
                self.what,
                self.tail(40)
            );
        }
        Ok(())
    }

    /// Stops the process gracefully (SIGTERM, as the kubelet would) and waits for it to exit; kills
    /// it if it has not exited after ten seconds.
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
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(exited) => {
                let exited = exited.with_context(|| format!("waiting for the {}", self.what))?;
                if !exited.success() {
                    bail!(
                        "the {} exited with {exited} on SIGTERM; last log lines:\n{}",
                        self.what,
                        self.tail(20)
                    );
                }
                Ok(())
            }
            Err(_) => {
                self.child
                    .kill()
                    .await
                    .with_context(|| format!("killing the {}", self.what))?;
                bail!(
                    "the {} did not exit within {STOP_GRACE:?} of SIGTERM; last log lines:\n{}",
                    self.what,
                    self.tail(20)
                )
            }
        }
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        tail_of(&self.log, lines)
    }
}
