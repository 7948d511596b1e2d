//! Why a pass failed, kept typed from the API call to the retry policy and the metrics.

use std::collections::BTreeSet;
use std::fmt;

/// What kind of failure, as the retry policy reads it and as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// An optimistic-lock conflict or a name already taken (409).
    Conflict,
    /// The object is gone (404).
    NotFound,
    /// Refused (401, 403): RBAC, or an exhausted ResourceQuota, which Kubernetes reports as 403.
    Forbidden,
    /// The API server rejected the object itself (400, 422): only a change of the object fixes it.
    Invalid,
    /// The API server failed or throttled (5xx, 429, any other status).
    Server,
    /// No answer: connection, TLS, timeout, or a response that could not be read.
    Transport,
    /// The caches have not completed their first list.
    NotSynced,
    /// The plan cannot go on: another object is in the way (a foreign owner, a taken name).
    Blocked,
}

/// What to do after a failed pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retry {
    /// Nothing but a change of the object can help: wait for one.
    AwaitChange,
    /// A race with a cache or another writer: look again soon, without growing the backoff.
    Soon,
    /// Back off exponentially per object.
    Backoff,
}

impl ErrorKind {
    /// The kind of a client error.
    pub fn of(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                409 => Self::Conflict,
                404 => Self::NotFound,
                401 | 403 => Self::Forbidden,
                400 | 422 => Self::Invalid,
                _ => Self::Server,
            },
            _ => Self::Transport,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::NotFound => "not-found",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::Server => "server",
            Self::Transport => "transport",
            Self::NotSynced => "not-synced",
            Self::Blocked => "blocked",
        }
    }

    /// What the retry policy does about it.
    pub fn retry(self) -> Retry {
        match self {
            Self::Conflict | Self::NotFound => Retry::Soon,
            Self::Invalid => Retry::AwaitChange,
            Self::Forbidden | Self::Server | Self::Transport | Self::NotSynced | Self::Blocked => {
                Retry::Backoff
            }
        }
    }
}

/// The text of a client error: the API server's own message when it answered (e.g. `pods "x" is
/// forbidden: exceeded quota ...`), not the client's rendering of the whole response.
pub fn failure_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// True for a 404 from the API server.
pub fn is_not_found(error: &kube::Error) -> bool {
    ErrorKind::of(error) == ErrorKind::NotFound
}

/// A failed pass: one line for the log, and the typed causes the retry policy and metrics read.
#[derive(Debug)]
pub struct Error {
    message: String,
    /// The API errors behind the failure (the first is the [`std::error::Error::source`]).
    api: Vec<kube::Error>,
    /// The kinds of the failures that are not API errors.
    other: BTreeSet<ErrorKind>,
}

impl Error {
    /// An API call failed while doing `action`.
    pub fn api(action: impl fmt::Display, error: kube::Error) -> Self {
        Self {
            message: format!("{action}: {}", failure_message(&error)),
            api: vec![error],
            other: BTreeSet::new(),
        }
    }

    /// The caches have not completed their first list.
    pub fn not_synced() -> Self {
        Self::of_kind(ErrorKind::NotSynced, "caches have not synced yet".into())
    }

    /// The plan cannot go on (its own message).
    pub fn blocked(message: String) -> Self {
        Self::of_kind(ErrorKind::Blocked, message)
    }

    /// A pass's summary `message` of failures caused by `api` errors (blocked when there are none).
    pub fn summary(message: String, api: Vec<kube::Error>) -> Self {
        let other = if api.is_empty() {
            BTreeSet::from([ErrorKind::Blocked])
        } else {
            BTreeSet::new()
        };
        Self {
            message,
            api,
            other,
        }
    }

    fn of_kind(kind: ErrorKind, message: String) -> Self {
        Self {
            message,
            api: Vec::new(),
            other: BTreeSet::from([kind]),
        }
    }

    /// All of `errors` as one (messages joined in order); `None` when there are none.
    pub fn join(errors: impl IntoIterator<Item = Error>) -> Option<Self> {
        errors.into_iter().reduce(|mut all, error| {
            all.message.push_str("; ");
            all.message.push_str(&error.message);
            all.api.extend(error.api);
            all.other.extend(error.other);
            all
        })
    }

    /// Every kind of failure in it, each once.
    pub fn kinds(&self) -> BTreeSet<ErrorKind> {
        self.api
            .iter()
            .map(ErrorKind::of)
            .chain(self.other.iter().copied())
            .collect()
    }

    /// What to do next: the most insistent retry any of its failures asks for.
    pub fn retry(&self) -> Retry {
        self.kinds()
            .into_iter()
            .map(ErrorKind::retry)
            .max()
            .unwrap_or(Retry::Backoff)
    }

    /// True when retrying without a change of the object can succeed.
    pub fn is_transient(&self) -> bool {
        self.retry() != Retry::AwaitChange
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.api
            .first()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, reason).with_code(code),
        ))
    }

    #[test]
    fn api_errors_show_the_servers_message() {
        let status = kube::core::Status::failure("pods \"x\" already exists", "AlreadyExists")
            .with_code(409);
        assert_eq!(
            failure_message(&kube::Error::Api(Box::new(status))),
            "pods \"x\" already exists"
        );
    }

    #[test]
    fn status_codes_map_to_kinds_and_labels() {
        let cases = [
            (409, ErrorKind::Conflict, "conflict"),
            (404, ErrorKind::NotFound, "not-found"),
            (403, ErrorKind::Forbidden, "forbidden"),
            (401, ErrorKind::Forbidden, "forbidden"),
            (422, ErrorKind::Invalid, "invalid"),
            (400, ErrorKind::Invalid, "invalid"),
            (500, ErrorKind::Server, "server"),
            (429, ErrorKind::Server, "server"),
        ];
        for (code, kind, label) in cases {
            assert_eq!(ErrorKind::of(&status(code, "R", "m")), kind, "{code}");
            assert_eq!(kind.label(), label);
        }
        let transport = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(ErrorKind::of(&transport), ErrorKind::Transport);
    }

    #[test]
    fn conflicts_retry_soon_invalid_objects_wait_and_the_rest_back_off() {
        assert_eq!(
            Error::api("creating", status(409, "Conflict", "m")).retry(),
            Retry::Soon
        );
        let invalid = Error::api("creating", status(422, "Invalid", "m"));
        assert_eq!(invalid.retry(), Retry::AwaitChange);
        assert!(!invalid.is_transient());
        let unavailable = Error::api("creating", status(503, "ServiceUnavailable", "m"));
        assert_eq!(unavailable.retry(), Retry::Backoff);
        assert!(unavailable.is_transient());
        assert_eq!(Error::not_synced().retry(), Retry::Backoff);
        assert_eq!(Error::blocked("taken".into()).retry(), Retry::Backoff);
    }

    #[test]
    fn a_joined_error_keeps_every_kind_and_retries_as_its_most_insistent_part() {
        let joined = Error::join([
            Error::api("creating pod", status(422, "Invalid", "bad spec")),
            Error::api("patching service", status(409, "Conflict", "stale")),
        ])
        .expect("two errors");
        assert_eq!(
            joined.to_string(),
            "creating pod: bad spec; patching service: stale"
        );
        assert_eq!(
            joined.kinds(),
            BTreeSet::from([ErrorKind::Conflict, ErrorKind::Invalid])
        );
        assert_eq!(joined.retry(), Retry::Soon);
        assert!(std::error::Error::source(&joined).is_some());
        assert!(Error::join([]).is_none());
    }

    #[test]
    fn a_summary_without_api_errors_is_blocked() {
        let summary = Error::summary("pod p is not ours".into(), Vec::new());
        assert_eq!(summary.kinds(), BTreeSet::from([ErrorKind::Blocked]));
        let caused = Error::summary("failed".into(), vec![status(500, "InternalError", "m")]);
        assert_eq!(caused.kinds(), BTreeSet::from([ErrorKind::Server]));
    }
}
