//! Where a binary of ours finds its cluster: `--kubeconfig` when given, else the environment
//! (`KUBECONFIG`, `~/.kube/config`, or the in-cluster ServiceAccount).

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeconfigError};

/// Why no cluster configuration could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named kubeconfig could not be read or parsed.
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: KubeconfigError,
    },
    /// The named kubeconfig does not describe a usable cluster.
    #[error("invalid kubeconfig {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: KubeconfigError,
    },
    /// Nothing in the environment names a cluster.
    #[error(
        "no cluster configuration: pass --kubeconfig, set KUBECONFIG, or run in a cluster ({0})"
    )]
    Infer(InferConfigError),
}

/// The cluster configuration from `kubeconfig`, or inferred from the environment without one.
pub async fn cluster_config(kubeconfig: Option<&Path>) -> Result<kube::Config, ConfigError> {
    let Some(path) = kubeconfig else {
        return kube::Config::infer().await.map_err(ConfigError::Infer);
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .map_err(|source| ConfigError::Invalid {
            path: path.to_owned(),
            source,
        })
}
