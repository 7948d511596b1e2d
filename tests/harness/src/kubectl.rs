//! Our kubectl as a process, for what kube-rs is not built to do here: running a command in a
//! container of a real Pod (`kubectl exec`; the client has no websocket support in this workspace),
//! and proving that kubectl itself works with our resources (`wait`, `scale`, `get` columns).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::cluster;

/// The kubectl of the local cluster: `$AGENT_SANDBOX_KUBE_BIN/kubectl` (`cargo xtask cluster env`), else
/// `kubectl` from `PATH` (`cargo xtask test` puts the cluster's one first).
pub fn binary() -> PathBuf {
    std::env::var_os("AGENT_SANDBOX_KUBE_BIN")
        .map(|dir| PathBuf::from(dir).join("kubectl"))
        .unwrap_or_else(|| "kubectl".into())
}

/// What a command run in a container printed, and how it exited.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// The exit code kubectl passed on from the command (-1 if kubectl was killed by a signal). A
    /// failure of kubectl itself also exits non-zero; its stderr then says so.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the command's and kubectl's).
    pub stderr: String,
}

impl ExecOutput {
    /// The trimmed stdout of a command that exited 0; otherwise an error naming `what`, the exit code
    /// and both outputs.
    pub fn success(&self, what: &str) -> anyhow::Result<String> {
        if self.code != 0 {
            bail!(
                "{what} exited with {}; stdout: {:?}; stderr: {:?}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self.stdout.trim().to_owned())
    }
}

/// Runs our kubectl with `args` against the tests' cluster and returns what it printed and how it
/// exited, for a test to judge.
pub async fn output(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new(binary())
        .arg("--kubeconfig")
        .arg(cluster::kubeconfig_path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running kubectl {}", args.join(" ")))
}

/// Runs our kubectl with `args` against the tests' cluster; an error with its stderr unless it
/// exited 0.
pub async fn ok(args: &[&str]) -> anyhow::Result<()> {
    let out = output(args).await?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `command` in `container` (or the Pod's default container) of Pod `namespace/pod` with
/// `kubectl exec` against the tests' cluster, killing kubectl after `timeout`.
pub async fn exec(
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
    timeout: Duration,
) -> anyhow::Result<ExecOutput> {
    let mut kubectl = Command::new(binary());
    kubectl
        .arg("--kubeconfig")
        .arg(cluster::kubeconfig_path())
        .args(["exec", "--namespace", namespace, pod]);
    if let Some(container) = container {
        kubectl.args(["--container", container]);
    }
    kubectl
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let shown = format!("kubectl exec {namespace}/{pod} -- {}", command.join(" "));
    let output = tokio::time::timeout(timeout, kubectl.output())
        .await
        .with_context(|| format!("{shown}: no answer within {}s", timeout.as_secs()))?
        .with_context(|| format!("running {shown}"))?;
    Ok(ExecOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_the_trimmed_stdout_and_a_failure_names_code_and_stderr() {
        let ok = ExecOutput {
            code: 0,
            stdout: "42\n".into(),
            stderr: String::new(),
        };
        assert_eq!(ok.success("print").ok().as_deref(), Some("42"));
        let failed = ExecOutput {
            code: 1,
            stdout: String::new(),
            stderr: "command terminated with exit code 1".into(),
        };
        let message = format!("{:#}", failed.success("print").unwrap_err());
        assert!(message.contains("print exited with 1"), "{message}");
        assert!(message.contains("exit code 1"), "{message}");
    }
}
