//! The legacy python-runtime API (default port 8888), the one the SDKs use by default.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::argv;
use crate::exec::{self, ExecError, Limits};
use crate::files;
use crate::state::{
    Failure, Shape, State, SurfaceError, epoch_seconds, method_not_allowed, not_found,
};

/// The largest `/execute` request body accepted.
pub const MAX_EXECUTE_BODY: usize = 1024 * 1024;

/// The legacy failure body: `{"detail": "..."}`.
#[derive(Debug)]
pub enum LegacyShape {}

impl Shape for LegacyShape {
    fn body(failure: &Failure) -> serde_json::Value {
        json!({ "detail": failure.message })
    }
}

/// A failure in the legacy shape.
pub type LegacyError = SurfaceError<LegacyShape>;

/// The legacy router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(health))
        .route(
            "/execute",
            post(execute).layer(DefaultBodyLimit::max(MAX_EXECUTE_BODY)),
        )
        .route("/upload", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/download/{*path}", get(download))
        .route("/list", get(list_root))
        .route("/list/", get(list_root))
        .route("/list/{*path}", get(list))
        .route("/exists/{*path}", get(exists))
        .fallback(not_found::<LegacyShape>)
        .method_not_allowed_fallback(method_not_allowed::<LegacyShape>)
        .with_state(state)
}

async fn health(Shared(state): Shared<Arc<State>>) -> Response {
    if state.processes.shutting_down() {
        return LegacyError::from(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the runtime is shutting down",
        ))
        .into_response();
    }
    Json(json!({ "status": "ok", "message": "agent-sandbox-runtime is running" })).into_response()
}

/// The body of `POST /execute`.
#[derive(Debug, Deserialize)]
pub struct ExecuteRequest {
    /// The command line.
    pub command: String,
    /// An optional limit in seconds, at most the daemon's `--exec-timeout`: what the Python SDK
    /// (1.0.8) sends for `commands.run(..., command_timeout=N)`.
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// The same limit under the name this runtime accepted first; `timeout_seconds` wins when
    /// both are given.
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// The answer of `POST /execute`: the fields the SDKs read.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecuteResponse {
    /// What the command wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// What it wrote to stderr, plus a note if it timed out.
    pub stderr: String,
    /// Its exit code: 124 after a timeout, 127 when the program does not exist, 126 when it
    /// cannot be run, 128 + N when signal N ended it.
    pub exit_code: i32,
    /// Whether the limit ended it (the Python SDK's `ExecutionResult.timed_out`; without the field
    /// the SDK would report `false` for a killed command).
    pub timed_out: bool,
}

/// A validated `/execute` request.
#[derive(Debug, PartialEq)]
pub struct ExecutePlan {
    /// What to run.
    pub argv: Vec<String>,
    /// How long it may run.
    pub timeout: Duration,
}

/// Validates an `/execute` body: JSON with a non-empty `command` that splits cleanly, and an
/// optional positive `timeout` no larger than `max_timeout`.
pub fn validate_execute(body: &[u8], max_timeout: Duration) -> Result<ExecutePlan, String> {
    let request: ExecuteRequest = serde_json::from_slice(body)
        .map_err(|err| format!("the body must be JSON like {{\"command\": \"ls -la\"}}: {err}"))?;
    let plan = argv::split(&request.command).map_err(|err| err.to_string())?;
    let timeout = match request.timeout_seconds.or(request.timeout) {
        None => max_timeout,
        Some(secs) if secs.is_finite() && secs > 0.0 => {
            let asked = Duration::from_secs_f64(secs.min(max_timeout.as_secs_f64()));
            asked.min(max_timeout).max(Duration::from_millis(1))
        }
        Some(secs) => {
            return Err(format!(
                "timeout must be a positive number of seconds, not {secs}"
            ));
        }
    };
    Ok(ExecutePlan {
        argv: plan.argv(),
        timeout,
    })
}

/// Runs a validated plan in the root and shapes the answer; shared with the sandboxd side's tests
/// so both surfaces give the same answer.
pub async fn run_plan(state: &State, plan: &ExecutePlan) -> Result<ExecuteResponse, Failure> {
    let limits = Limits {
        timeout: plan.timeout,
        ..state.limits.clone()
    };
    let outcome = exec::run(
        &state.processes,
        &plan.argv,
        state.root.path(),
        &[],
        &limits,
    )
    .await;
    match outcome {
        Ok(output) => {
            let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if output.exit == exec::Exit::TimedOut {
                stderr.push_str(&exec::timeout_note(plan.timeout, &output.stderr));
            }
            Ok(ExecuteResponse {
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr,
                exit_code: output.exit.code(),
                timed_out: output.exit == exec::Exit::TimedOut,
            })
        }
        Err(err @ ExecError::NotFound(_)) => Ok(ExecuteResponse {
            stdout: String::new(),
            stderr: format!("{err}\n"),
            exit_code: 127,
            timed_out: false,
        }),
        Err(err @ (ExecError::PermissionDenied(_) | ExecError::Spawn { .. })) => {
            Ok(ExecuteResponse {
                stdout: String::new(),
                stderr: format!("{err}\n"),
                exit_code: 126,
                timed_out: false,
            })
        }
        Err(err @ ExecError::OutputTooLarge { .. }) => {
            Err(Failure::new(StatusCode::PAYLOAD_TOO_LARGE, err.to_string()))
        }
        Err(err @ ExecError::ShuttingDown) => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            err.to_string(),
        )),
    }
}

async fn execute(
    Shared(state): Shared<Arc<State>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ExecuteResponse>, LegacyError> {
    let body = body.map_err(|r| Failure::new(r.status(), r.body_text()))?;
    let plan = validate_execute(&body, state.limits.timeout)
        .map_err(|message| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, message))?;
    tracing::debug!(argv = ?plan.argv, "execute");
    Ok(Json(run_plan(&state, &plan).await?))
}

async fn upload(
    Shared(state): Shared<Arc<State>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<serde_json::Value>, LegacyError> {
    let mut multipart = multipart.map_err(|r| Failure::new(r.status(), r.body_text()))?;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|err| Failure::invalid(format!("bad multipart body: {err}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field
            .file_name()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the file part needs a filename (the destination path)",
                )
            })?;
        let target = state.root.resolve(&name)?;
        if target == state.root.path() {
            return Err(Failure::invalid("the destination path names the root directory").into());
        }
        let size = files::write_atomic(&target, field, None)
            .await
            .map_err(|err| write_failure(&name, err))?;
        let path = state.root.relative(&target);
        return Ok(Json(json!({
            "message": format!("File '{name}' uploaded successfully"),
            "path": path,
            "size": size,
        })));
    }
    Err(Failure::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "the multipart body has no \"file\" part",
    )
    .into())
}

/// Maps a failed write to a failure.
pub fn write_failure(name: &str, err: files::WriteError) -> Failure {
    match err {
        files::WriteError::Io(err) => Failure::io(name, &err),
        files::WriteError::Body(message) => Failure::invalid(message),
    }
}

async fn download(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
) -> Result<Response, LegacyError> {
    let target = state.root.resolve(&path)?;
    let file = tokio::fs::File::open(&target)
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    let meta = file
        .metadata()
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    if meta.is_dir() {
        return Err(Failure::invalid(format!("{path:?} is a directory")).into());
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], "_"))
        .unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}

/// One entry of `GET /list/{path}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListEntry {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Modification time, seconds since the epoch.
    pub mod_time: f64,
}

async fn list_root(state: Shared<Arc<State>>) -> Result<Json<Vec<ListEntry>>, LegacyError> {
    list(state, UrlPath(String::new())).await
}

async fn list(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
) -> Result<Json<Vec<ListEntry>>, LegacyError> {
    let dir = state.root.resolve(&path)?;
    let meta = tokio::fs::metadata(&dir)
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    if !meta.is_dir() {
        return Err(Failure::invalid(format!("{path:?} is not a directory")).into());
    }
    let entries = files::list(&state.root, &dir)
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| ListEntry {
                name: e.name,
                size: e.size,
                kind: if e.is_dir { "directory" } else { "file" }.to_owned(),
                mod_time: epoch_seconds(e.modified),
            })
            .collect(),
    ))
}

async fn exists(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
) -> Result<Json<serde_json::Value>, LegacyError> {
    let target = state.root.resolve(&path)?;
    let exists = tokio::fs::try_exists(&target).await.unwrap_or(false);
    Ok(Json(json!({ "path": path, "exists": exists })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn execute_validation() {
        let plan = validate_execute(br#"{"command": "echo 'a b'"}"#, MAX).unwrap();
        assert_eq!(plan.argv, ["echo", "a b"]);
        assert_eq!(plan.timeout, MAX);
        let plan = validate_execute(
            br#"{"command": "ls | wc", "timeout": 2.5, "extra": 1}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(plan.argv, ["/bin/sh", "-c", "ls | wc"]);
        assert_eq!(plan.timeout, Duration::from_millis(2500));
        assert_eq!(
            validate_execute(br#"{"command": "x", "timeout": 9999}"#, MAX)
                .unwrap()
                .timeout,
            MAX
        );
        // The Python SDK's field, which wins over the older name.
        let plan = validate_execute(
            br#"{"command": "sleep 9", "timeout_seconds": 2, "timeout": 7}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(plan.timeout, Duration::from_secs(2));
        assert!(validate_execute(br#"{"command": "x", "timeout_seconds": 0}"#, MAX).is_err());
        assert!(validate_execute(br#"{"command": ""}"#, MAX).is_err());
        assert!(validate_execute(br#"{"command": "x", "timeout": 0}"#, MAX).is_err());
        assert!(validate_execute(br#"{"command": "x", "timeout": -1}"#, MAX).is_err());
        assert!(validate_execute(br#"{"cmd": "x"}"#, MAX).is_err());
        assert!(validate_execute(b"not json", MAX).is_err());
        assert!(validate_execute(br#"{"command": 3}"#, MAX).is_err());
    }

    proptest! {
        /// Any body either validates to a runnable plan within the bound or is refused; no panic.
        #[test]
        fn validation_is_total(command in "\\PC{0,20}", timeout in proptest::option::of(-10.0f64..1000.0)) {
            let body = serde_json::to_vec(&json!({ "command": command, "timeout": timeout })).unwrap();
            if let Ok(plan) = validate_execute(&body, MAX) {
                prop_assert!(!plan.argv.is_empty());
                prop_assert!(plan.timeout <= MAX && plan.timeout > Duration::ZERO);
            }
        }
    }
}
