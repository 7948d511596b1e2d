//! Why the webhook could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::certs;
use crate::tls;

/// The API server's message for an API error, else the client error's own line.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// A webhook that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A Kubernetes API call failed. Shown as one line with the API server's own message; the error
    /// is not a `source`, so a chain printer does not repeat it (with kube's debug dump of the status).
    #[error("{action}: {}", api_message(.cause))]
    Api {
        /// What was being done.
        action: String,
        /// The cause.
        cause: kube::Error,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_one_line_with_the_servers_message() {
        let status = kube::core::Status::failure(
            "namespaces \"agent-sandbox-system\" not found",
            "NotFound",
        )
        .with_code(404);
        let error = WebhookError::Api {
            action: "writing Secret agent-sandbox-system/agent-sandbox-webhook-certs".into(),
            cause: kube::Error::Api(Box::new(status)),
        };
        let shown = anyhow_like(&error);
        assert_eq!(
            shown,
            "writing Secret agent-sandbox-system/agent-sandbox-webhook-certs: \
             namespaces \"agent-sandbox-system\" not found"
        );
    }

    /// What a chain printer (anyhow's `{:#}`) shows: the error, then each source.
    fn anyhow_like(error: &dyn std::error::Error) -> String {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            line.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        line
    }
}
