//! Our helm as a process: the local cluster's (a program of the same multi-call binary as kubectl,
//! next to it), for the chart's render tests and the Helm install e2e. A missing helm is an error
//! naming where it was looked for, never a skipped test.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use anyhow::{Context, bail, ensure};
use tokio::process::Command;

use crate::{kubectl, workspace_root};

/// The helm of the local cluster: next to [`kubectl::binary`] (`$AGENT_SANDBOX_KUBE_BIN/helm`, else
/// `helm` on `PATH`, where `cargo xtask test` puts the cluster's bin directory first).
pub fn binary() -> PathBuf {
    kubectl::binary().with_file_name("helm")
}

/// Runs helm with `args` from the workspace root and returns what it printed and how it exited.
pub async fn output(args: &[&str]) -> anyhow::Result<Output> {
    let binary = binary();
    let is_path = binary.components().count() > 1;
    if is_path && !binary.exists() {
        bail!(
            "helm not found at {}: `cargo xtask cluster up` builds it next to kubectl",
            binary.display()
        );
    }
    let result = Command::new(&binary)
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .await;
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
            "helm not found on PATH (nor AGENT_SANDBOX_KUBE_BIN set): `cargo xtask cluster up` builds \
             it next to kubectl, `cargo xtask cluster env` prints AGENT_SANDBOX_KUBE_BIN"
        ),
        other => other.with_context(|| format!("running helm {}", args.join(" "))),
    }
}

/// Runs helm with `args`; its stdout, or an error with what it printed unless it exited 0 (`helm
/// lint` reports on stdout, the others on stderr).
pub async fn ok(args: &[&str]) -> anyhow::Result<String> {
    let output = output(args).await?;
    ensure!(
        output.status.success(),
        "helm {} failed: {} {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8(output.stdout)?)
}
