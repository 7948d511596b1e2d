//! The shared control plane: found through `KUBECONFIG` or target/cluster/kubeconfig, started once per
//! test run (with `cargo xtask cluster up`) when nothing answers there.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::OnceCell;

use crate::workspace::workspace_root;

/// The kubeconfig of the local cluster that `cargo xtask cluster up` writes.
pub fn default_kubeconfig() -> PathBuf {
    workspace_root()
        .join("target")
        .join("cluster")
        .join("kubeconfig")
}

/// The kubeconfig the tests use: `KUBECONFIG` if set, else the local cluster's.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(default_kubeconfig, PathBuf::from)
}

/// Whether the tests run against the local cluster of this checkout (so its logs are ours to dump).
pub fn is_local_cluster() -> bool {
    kubeconfig_path() == default_kubeconfig()
}

static READY: OnceCell<PathBuf> = OnceCell::const_new();

/// A fresh client for the shared cluster, starting the cluster first if this is the first call of the
/// run and nothing answers. Each test gets its own client (clients are bound to a tokio runtime).
pub async fn client() -> anyhow::Result<Client> {
    let path = READY.get_or_try_init(ensure_running).await?;
    client_for(path).await
}

/// The client configuration of the shared cluster (admin), e.g. to derive one with other credentials.
pub async fn config() -> anyhow::Result<Config> {
    let path = READY.get_or_try_init(ensure_running).await?;
    config_for(path).await
}

async fn client_for(path: &PathBuf) -> anyhow::Result<Client> {
    Client::try_from(config_for(path).await?).context("building a Kubernetes client")
}

async fn config_for(path: &PathBuf) -> anyhow::Result<Config> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(config)
}

async fn answers(path: &PathBuf) -> bool {
    if !path.exists() {
        return false;
    }
    let Ok(client) = client_for(path).await else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await,
        Ok(Ok(_))
    )
}

async fn ensure_running() -> anyhow::Result<PathBuf> {
    let path = kubeconfig_path();
    if answers(&path).await {
        return Ok(path);
    }
    if !is_local_cluster() {
        bail!(
            "KUBECONFIG={} does not reach a working API server; unset KUBECONFIG to use (and start) \
             the local cluster, or start that cluster",
            path.display()
        );
    }
    eprintln!("[testkit] no local cluster answers; starting one with `cargo xtask cluster up`");
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A target dir of its own: the outer `cargo test` may still hold the main one's lock.
    let status = tokio::task::spawn_blocking(move || {
        Command::new(cargo)
            .current_dir(&root)
            .args(["run", "--quiet", "--package", "xtask", "--target-dir"])
            .arg(root.join("target").join("testkit-xtask"))
            .args(["--", "cluster", "up"])
            .status()
    })
    .await?
    .context("running `cargo xtask cluster up`")?;
    if !status.success() {
        bail!("`cargo xtask cluster up` failed ({status}); see its output above");
    }
    if !answers(&path).await {
        bail!(
            "the cluster was started but {} does not answer",
            path.display()
        );
    }
    Ok(path)
}
