//! The client's errors: one enum, each variant one line when displayed, mirroring the Python SDK's
//! exceptions where it has one (noted on each variant).

use std::time::Duration;

/// The result of every fallible call of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. `Display` is one line meant for a person; match on the variant to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No SandboxClaim of that name (the SDK's `SandboxNotFoundError`).
    #[error("sandbox claim {namespace}/{name} not found")]
    ClaimNotFound {
        /// Namespace of the claim.
        namespace: String,
        /// Name of the claim.
        name: String,
    },
    /// The Sandbox does not exist, or the router knows no Sandbox of that name (the SDK's
    /// `SandboxNotFoundError`).
    #[error("sandbox {namespace}/{name} not found")]
    SandboxNotFound {
        /// Namespace of the Sandbox.
        namespace: String,
        /// Name of the Sandbox.
        name: String,
    },
    /// The claim names a SandboxWarmPool that does not exist (the SDK's
    /// `SandboxWarmPoolNotFoundError`).
    #[error("warm pool {namespace}/{name} not found: {message}")]
    WarmPoolNotFound {
        /// Namespace of the claim and the pool.
        namespace: String,
        /// The pool the claim named.
        name: String,
        /// The claim controller's message.
        message: String,
    },
    /// The warm pool's SandboxTemplate does not exist (the SDK's `SandboxTemplateNotFoundError`).
    #[error("the template of warm pool {namespace}/{pool} not found: {message}")]
    TemplateNotFound {
        /// Namespace of the claim and the pool.
        namespace: String,
        /// The pool the claim named.
        pool: String,
        /// The claim controller's message (it names the template).
        message: String,
    },
    /// The claim reported a Ready=False reason the controller does not retry, such as
    /// `InvalidMetadata` or `ClaimExpired` (the SDK's `SandboxClaimFailedError`).
    #[error("sandbox claim {namespace}/{name} failed with {reason}: {message}")]
    ClaimFailed {
        /// Namespace of the claim.
        namespace: String,
        /// Name of the claim.
        name: String,
        /// The Ready condition's reason.
        reason: String,
        /// The Ready condition's message.
        message: String,
    },
    /// The claim was deleted (or began terminating) while the client waited for it.
    #[error("sandbox claim {namespace}/{name} was deleted while waiting for it")]
    ClaimDeleted {
        /// Namespace of the claim.
        namespace: String,
        /// Name of the claim.
        name: String,
    },
    /// An object did not reach the awaited state in time (the SDK's `TimeoutError`).
    #[error("timed out after {timeout:?} waiting for {what} (last seen: {last})")]
    WaitTimeout {
        /// What was awaited, e.g. "sandbox claim default/x to be Ready".
        what: String,
        /// The bound that passed.
        timeout: Duration,
        /// The last state seen, e.g. the Ready condition's reason and message.
        last: String,
    },
    /// The sandbox cannot take requests now, e.g. it has no pod IP for a direct connection (the
    /// SDK's `SandboxNotReadyError`).
    #[error("sandbox {namespace}/{name} is not ready: {message}")]
    NotReady {
        /// Namespace of the Sandbox.
        namespace: String,
        /// Name of the Sandbox.
        name: String,
        /// Why.
        message: String,
    },
    /// The router or the sandbox's runtime answered with an error status (the SDK's
    /// `SandboxRequestError`); `detail` is the answer's `detail` (or `code: message`).
    #[error("the sandbox answered {status}: {detail}")]
    Request {
        /// The HTTP status code.
        status: u16,
        /// What the answer said.
        detail: String,
    },
    /// The runtime refused a path outside its root (403): `..` above it, an absolute path elsewhere,
    /// or a symbolic link pointing out.
    #[error("path {path:?} refused by the sandbox: {message}")]
    PathRefused {
        /// The path as given.
        path: String,
        /// The runtime's message.
        message: String,
    },
    /// No file or directory at that path in the sandbox.
    #[error("{path:?} not found in the sandbox")]
    FileNotFound {
        /// The path as given.
        path: String,
    },
    /// `list` was given a path that is a file.
    #[error("{path:?} is not a directory")]
    NotADirectory {
        /// The path as given.
        path: String,
    },
    /// `read` was given a path that is a directory.
    #[error("{path:?} is a directory")]
    IsADirectory {
        /// The path as given.
        path: String,
    },
    /// A command did not finish within its [`RunOptions::timeout`](crate::RunOptions::timeout):
    /// a streamed one is ended (the runtime then kills its process group), a `run` got no answer
    /// in time. (When the runtime answers that it killed the command, `run` reports that in its
    /// result instead: [`CommandResult::timed_out`](crate::CommandResult::timed_out).)
    #[error("the command did not finish within its timeout of {after:?}")]
    CommandTimeout {
        /// The timeout.
        after: Duration,
    },
    /// No connection to the router or the pod, or it broke mid-request.
    #[error("cannot reach {target}: {message}")]
    Connection {
        /// The address tried.
        target: String,
        /// The cause, outermost first.
        message: String,
    },
    /// The port-forward to the router could not be set up (the SDK's `SandboxPortForwardError`).
    #[error("port-forward to the router: {message}")]
    PortForward {
        /// Why.
        message: String,
    },
    /// The runtime's process service answered a gRPC error.
    #[error("process service answered {code:?}: {message}")]
    Process {
        /// The gRPC status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes API, {action}: {message}")]
    Kube {
        /// What the client was doing, e.g. "creating a SandboxClaim in default".
        action: String,
        /// The API server's code, reason and message, or the transport error.
        message: String,
    },
    /// An argument the client refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An answer this client cannot read (not the JSON the runtime sends).
    #[error("unexpected answer from the sandbox: {0}")]
    Protocol(String),
}

impl Error {
    /// A [`Error::Kube`] for `err` during `action`: the API server's status as
    /// `<code> <reason>: <message>` (kube's own `Display` appends a debug dump of it).
    pub(crate) fn kube(action: impl Into<String>, err: &kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            message: kube_message(err),
        }
    }
}

/// `err` on one line: an API server status as `<code> <reason>: <message>`, anything else with
/// its sources.
pub(crate) fn kube_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status_message(status),
        other => chain(other),
    }
}

/// An API server status as `<code> <reason>: <message>`.
pub(crate) fn status_message(status: &kube::core::Status) -> String {
    one_line(&format!(
        "{} {}: {}",
        status.code, status.reason, status.message
    ))
}

/// True when `err` is the API server's 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// `err` and its sources, outermost first, joined by `": "`; a source whose text its parent already
/// shows is left out.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    one_line(&text)
}

/// `text` on one line: runs of whitespace (newlines included) become one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_api_errors_read_as_code_reason_message() {
        let status = kube::core::Status::failure("sandboxclaims \"x\" is forbidden", "Forbidden")
            .with_code(403);
        let err = Error::kube(
            "creating a SandboxClaim",
            &kube::Error::Api(Box::new(status)),
        );
        assert_eq!(
            err.to_string(),
            "Kubernetes API, creating a SandboxClaim: 403 Forbidden: sandboxclaims \"x\" is forbidden"
        );
    }

    #[test]
    fn chains_skip_repeated_sources_and_stay_on_one_line() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("tcp connect error:\n refused"));
        assert_eq!(
            chain(&err),
            "client error (Connect): tcp connect error: refused"
        );
    }

    #[test]
    fn every_variant_displays_on_one_line() {
        let errors = [
            Error::WaitTimeout {
                what: "sandbox claim default/x to be Ready".into(),
                timeout: Duration::from_secs(180),
                last: "Ready=False SandboxNotReady: Sandbox is not ready".into(),
            },
            Error::Request {
                status: 502,
                detail: "Could not connect".into(),
            },
            Error::Process {
                code: tonic::Code::NotFound,
                message: "no such program".into(),
            },
        ];
        for err in errors {
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        assert_eq!(
            Error::CommandTimeout {
                after: Duration::from_millis(1500)
            }
            .to_string(),
            "the command did not finish within its timeout of 1.5s"
        );
    }
}
