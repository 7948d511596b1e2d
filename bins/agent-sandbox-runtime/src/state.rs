//! What both HTTP surfaces share: the root, the running processes, the limits, and the error
//! type (each surface gives it its wire shape).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::marker::PhantomData;

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::confine::{ConfineError, Root};
use crate::exec::{Limits, Processes};

/// The daemon's shared state.
#[derive(Debug)]
pub struct State {
    /// The directory every path is confined to and commands run in.
    pub root: Root,
    /// The process groups started and not yet reaped.
    pub processes: Arc<Processes>,
    /// Default limits for a command (the timeout is also the most a request may ask for).
    pub limits: Limits,
    /// The filtered environment `/v1/metadata` shows, computed once.
    pub metadata: BTreeMap<String, String>,
    /// When the daemon started.
    pub started: Instant,
}

impl State {
    /// Builds the state: opens (creates) the root and filters the environment once.
    pub fn new(root_dir: &Path, limits: Limits, metadata_prefix: &str) -> io::Result<Self> {
        Ok(Self {
            root: Root::open(root_dir)?,
            processes: Arc::new(Processes::default()),
            limits,
            metadata: crate::metadata::filter_env(std::env::vars(), metadata_prefix),
            started: Instant::now(),
        })
    }
}

/// A failed request: an HTTP status, a machine-readable code and one line for people.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// sandboxd's error code (`PERMISSION_DENIED`, `NOT_FOUND`, …).
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl Failure {
    /// A failure with this status; the code follows from the status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::FORBIDDEN => "PERMISSION_DENIED",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
            StatusCode::PAYLOAD_TOO_LARGE => "RESOURCE_EXHAUSTED",
            s if s.is_client_error() => "INVALID_ARGUMENT",
            _ => "INTERNAL",
        };
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 for a path no route serves.
    pub fn no_route(uri: &axum::http::Uri) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
    }

    /// 405 for a method a route does not serve.
    pub fn method_not_allowed(method: &axum::http::Method, uri: &axum::http::Uri) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {}", uri.path()),
        )
    }

    /// 400 `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Maps a file-system error on the client path `path` to a status.
    pub fn io(path: &str, err: &io::Error) -> Self {
        let status = match err.kind() {
            io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
            io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory => StatusCode::BAD_REQUEST,
            io::ErrorKind::DirectoryNotEmpty => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let what = match err.kind() {
            io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            _ => err.to_string(),
        };
        Self::new(status, format!("{path:?}: {what}"))
    }

    /// Logs the failure as one line (warnings for server faults, debug for client mistakes).
    pub fn log(&self) {
        if self.status.is_server_error() {
            tracing::warn!(
                status = self.status.as_u16(),
                code = self.code,
                "{}",
                self.message
            );
        } else {
            tracing::debug!(
                status = self.status.as_u16(),
                code = self.code,
                "{}",
                self.message
            );
        }
    }
}

/// How one HTTP surface writes a [`Failure`] as its JSON body.
pub trait Shape {
    /// The body answering `failure`.
    fn body(failure: &Failure) -> serde_json::Value;
}

/// A [`Failure`] answered in the body shape `S`: the error type of one surface's handlers.
#[derive(Debug)]
pub struct SurfaceError<S> {
    /// What failed.
    pub failure: Failure,
    shape: PhantomData<S>,
}

impl<S, E: Into<Failure>> From<E> for SurfaceError<S> {
    fn from(err: E) -> Self {
        Self {
            failure: err.into(),
            shape: PhantomData,
        }
    }
}

impl<S: Shape> IntoResponse for SurfaceError<S> {
    fn into_response(self) -> Response {
        self.failure.log();
        (self.failure.status, Json(S::body(&self.failure))).into_response()
    }
}

/// The fallback of a surface's router: 404 for a path no route serves.
pub async fn not_found<S>(uri: Uri) -> SurfaceError<S> {
    Failure::no_route(&uri).into()
}

/// The fallback of a surface's router for a method a route does not serve: 405.
pub async fn method_not_allowed<S>(method: Method, uri: Uri) -> SurfaceError<S> {
    Failure::method_not_allowed(&method, &uri).into()
}

impl From<ConfineError> for Failure {
    fn from(err: ConfineError) -> Self {
        let status = match err {
            ConfineError::Escape(_) | ConfineError::Dangling(_) => StatusCode::FORBIDDEN,
            ConfineError::Invalid(_) => StatusCode::BAD_REQUEST,
            ConfineError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, err.to_string())
    }
}

/// Seconds since the epoch as a float (the legacy listing's `mod_time`).
pub fn epoch_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// RFC 3339 in UTC with whole seconds, e.g. `2026-11-30T17:02:22Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian), era-based.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_058_142), "2026-11-30T17:02:22Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn failure_codes() {
        assert_eq!(
            Failure::new(StatusCode::FORBIDDEN, "x").code,
            "PERMISSION_DENIED"
        );
        assert_eq!(Failure::invalid("x").code, "INVALID_ARGUMENT");
        let f: Failure = ConfineError::Escape("../x".into()).into();
        assert_eq!(f.status, StatusCode::FORBIDDEN);
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(Failure::io("a", &missing).status, StatusCode::NOT_FOUND);
    }
}
