//! Why the webhook could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::certs;
use crate::tls;

/// A webhook that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The cause.
        source: kube::Error,
    },
    /// Certificates could not be made.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// Serving failed to start.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A file could not be written or found.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Other replicas kept changing the Secret.
    #[error("{0}")]
    Contended(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}
