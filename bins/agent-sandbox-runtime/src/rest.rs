//! sandboxd's REST API (default port 8080): files, health and metadata under `/v1`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{
    DefaultBodyLimit, FromRequest, Multipart, Path as UrlPath, Query, Request, State as Shared,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::files;
use crate::legacy::write_failure;
use crate::state::{Failure, Shape, State, SurfaceError, method_not_allowed, not_found, rfc3339};

/// sandboxd's failure body: `{"code": "...", "message": "..."}`.
#[derive(Debug)]
pub enum RestShape {}

impl Shape for RestShape {
    fn body(failure: &Failure) -> serde_json::Value {
        json!({ "code": failure.code, "message": failure.message })
    }
}

/// A failure in sandboxd's shape.
pub type RestError = SurfaceError<RestShape>;

/// The sandboxd REST router.
pub fn router(state: Arc<State>) -> Router {
    let files = get(get_file).put(put_file).delete(delete_file);
    let root = get(get_root).put(put_root).delete(delete_root);
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/metadata", get(metadata))
        .route("/v1/files", root.clone())
        .route("/v1/files/", root)
        .route("/v1/files/{*path}", files)
        .fallback(not_found::<RestShape>)
        .method_not_allowed_fallback(method_not_allowed::<RestShape>)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health(Shared(state): Shared<Arc<State>>) -> Response {
    let uptime = state.started.elapsed().as_secs();
    if state.processes.shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down", "uptime_seconds": uptime })),
        )
            .into_response();
    }
    Json(json!({ "status": "ok", "uptime_seconds": uptime })).into_response()
}

async fn metadata(Shared(state): Shared<Arc<State>>) -> Json<serde_json::Value> {
    Json(json!({ "env": state.metadata }))
}

/// What a `Range` header asks of a body of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// The range lies past the end: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a body of `len` bytes. Only one `bytes=` range is honoured;
/// several ranges or a malformed header are ignored (the whole body is sent), as HTTP allows.
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => RangeAnswer::Full,
        },
        // bytes=A-: from A to the end.
        (false, true) => match parse(first) {
            Some(start) if start < len => RangeAnswer::Partial {
                start,
                end: len - 1,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        // bytes=A-B.
        (false, false) => match (parse(first), parse(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Partial {
                        start,
                        end: end.min(len - 1),
                    }
                }
            }
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

async fn get_root(state: Shared<Arc<State>>, headers: HeaderMap) -> Result<Response, RestError> {
    get_file(state, UrlPath(String::new()), headers).await
}

async fn get_file(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let target = state.root.resolve(&path)?;
    let meta = tokio::fs::metadata(&target)
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    if meta.is_dir() {
        return Ok(Json(listing(&state, &path, &target).await?).into_response());
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAnswer::Full, |v| parse_range(v, meta.len()));
    download(&path, &target, &meta, range).await
}

/// The listing of directory `target` (`path` as the client wrote it).
async fn listing(
    state: &State,
    path: &str,
    target: &std::path::Path,
) -> Result<serde_json::Value, Failure> {
    let entries = files::list(&state.root, target)
        .await
        .map_err(|err| Failure::io(path, &err))?;
    let entries: Vec<_> = entries
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "size": e.size,
                "type": if e.is_dir { "directory" } else { "file" },
                "modified_at": rfc3339(e.modified),
                "mode": format!("{:04o}", e.mode & 0o777),
            })
        })
        .collect();
    Ok(json!({ "path": state.root.relative(target), "entries": entries }))
}

/// The file `target` (`path` as the client wrote it), whole or the asked range, streamed.
async fn download(
    path: &str,
    target: &std::path::Path,
    meta: &std::fs::Metadata,
    range: RangeAnswer,
) -> Result<Response, RestError> {
    let mut file = tokio::fs::File::open(target)
        .await
        .map_err(|err| Failure::io(path, &err))?;
    let len = meta.len();
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes");
    if let Ok(modified) = meta.modified() {
        response = response.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
    }
    let response = match range {
        RangeAnswer::Full => response
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from_stream(tokio_util::io::ReaderStream::new(file))),
        RangeAnswer::Partial { start, end } => {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|err| Failure::io(path, &err))?;
            let count = end - start + 1;
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, count)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .body(Body::from_stream(tokio_util::io::ReaderStream::new(
                    file.take(count),
                )))
        }
        RangeAnswer::Unsatisfiable => response
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty()),
    };
    response.map_err(|err| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into())
}

/// Query of `PUT /v1/files/{path}`.
#[derive(Debug, Deserialize)]
pub struct PutQuery {
    /// Permission bits, `0NNN` in octal.
    pub mode: Option<String>,
}

/// Parses a `mode` query value: exactly `0` followed by three octal digits.
pub fn parse_mode(value: &str) -> Result<u32, String> {
    let bytes = value.as_bytes();
    if bytes.len() == 4 && bytes[0] == b'0' && bytes[1..].iter().all(|b| (b'0'..=b'7').contains(b))
    {
        u32::from_str_radix(value, 8).map_err(|err| err.to_string())
    } else {
        Err(format!(
            "mode must look like 0644 (a 0 and three octal digits), not {value:?}"
        ))
    }
}

async fn put_root(Shared(_state): Shared<Arc<State>>) -> RestError {
    RestError::from(Failure::invalid(
        "the root directory cannot be written as a file",
    ))
}

async fn put_file(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
    query: Result<Query<PutQuery>, QueryRejection>,
    request: Request,
) -> Result<StatusCode, RestError> {
    let Query(query) = query.map_err(|r| Failure::new(r.status(), r.body_text()))?;
    let mode = query
        .mode
        .as_deref()
        .map(parse_mode)
        .transpose()
        .map_err(Failure::invalid)?;
    let target = state.root.resolve(&path)?;
    if target == state.root.path() {
        return Err(Failure::invalid("the root directory cannot be written as a file").into());
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|err| Failure::invalid(format!("bad multipart body: {err}")))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|err| Failure::invalid(format!("bad multipart body: {err}")))?
        {
            if field.name() == Some("file") {
                files::write_atomic(&target, field, mode)
                    .await
                    .map_err(|err| write_failure(&path, err))?;
                return Ok(StatusCode::NO_CONTENT);
            }
        }
        return Err(Failure::invalid("the multipart body has no \"file\" part").into());
    }
    files::write_atomic(&target, request.into_body().into_data_stream(), mode)
        .await
        .map_err(|err| write_failure(&path, err))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `DELETE /v1/files/{path}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    /// Remove a non-empty directory and everything below it.
    #[serde(default)]
    pub recursive: bool,
}

async fn delete_root(
    state: Shared<Arc<State>>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<StatusCode, RestError> {
    delete_file(state, UrlPath(String::new()), query).await
}

async fn delete_file(
    Shared(state): Shared<Arc<State>>,
    UrlPath(path): UrlPath<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<StatusCode, RestError> {
    let Query(query) = query.map_err(|r| Failure::new(r.status(), r.body_text()))?;
    let target = files::resolve_entry(&state.root, &path)?;
    files::delete(&state.root, &target, query.recursive)
        .await
        .map_err(|err| Failure::io(&path, &err))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-3", 10), Partial { start: 0, end: 3 });
        assert_eq!(parse_range("bytes=5-", 10), Partial { start: 5, end: 9 });
        assert_eq!(parse_range("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(parse_range("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=8-100", 10), Partial { start: 8, end: 9 });
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=3-1", 10), Full);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Full);
        assert_eq!(parse_range("items=0-1", 10), Full);
        assert_eq!(parse_range("bytes=x-1", 10), Full);
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        for bad in ["644", "0844", "00644", "0x64", "", "+644"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// A partial answer always lies inside the body.
        #[test]
        fn partial_is_inside(value in "bytes=[0-9]{0,4}-[0-9]{0,4}", len in 0u64..5000) {
            if let RangeAnswer::Partial { start, end } = parse_range(&value, len) {
                prop_assert!(start <= end && end < len);
            }
        }

        /// Only `0` plus three octal digits is accepted, and it round-trips.
        #[test]
        fn mode_round_trip(mode in 0u32..0o1000) {
            let text = format!("{mode:04o}");
            prop_assert_eq!(parse_mode(&text), Ok(mode));
        }
    }
}
