//! HTTP to the router or the pod: request bodies (whole or streamed), sending with the route's
//! headers, and reading an error answer into a typed [`Error`].

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::io::AsyncRead;

use crate::error::{Error, Result, chain, one_line};

/// A request body: whole, empty or streamed from a reader.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The pooled client every request goes through.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// How much of an error answer is read: its message is at the start, and a broken runtime must
/// not make the client buffer without bound.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A new pooled HTTP/1.1 client.
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from `reader` (sent chunked, never held whole).
pub(crate) fn streamed(reader: impl AsyncRead + Send + 'static) -> Body {
    use futures::TryStreamExt;
    StreamBody::new(tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data)).boxed_unsync()
}

/// Where one request goes: a base URL (`http://host:port`) and the headers that name the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// Scheme and authority.
    pub base: String,
    /// Header name and value pairs.
    pub headers: Vec<(&'static str, String)>,
}

/// What an answer is about, to name it in errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct About<'a> {
    /// Namespace of the Sandbox.
    pub namespace: &'a str,
    /// Name of the Sandbox.
    pub sandbox: &'a str,
    /// The file path of a file operation.
    pub path: Option<&'a str>,
}

/// One request.
pub(crate) struct Call<'a> {
    /// Method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// Body.
    pub body: Body,
}

/// Sends `call` along `route`; a non-2xx answer becomes an error (see [`answer_error`]).
pub(crate) async fn send(
    client: &HttpClient,
    route: &Route,
    call: Call<'_>,
    about: About<'_>,
) -> Result<Response<Incoming>> {
    let url = format!("{}{}", route.base, call.path);
    let mut request = Request::builder().method(call.method).uri(&url);
    for (name, value) in &route.headers {
        request = request.header(*name, value);
    }
    if let Some(content_type) = call.content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let request = request
        .body(call.body)
        .map_err(|err| Error::InvalidArgument(format!("request to {url}: {err}")))?;
    let response = client
        .request(request)
        .await
        .map_err(|err| Error::Connection {
            target: route.base.clone(),
            message: chain(&err),
        })?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    // A body that breaks off mid-way still names the status; what arrived is the message.
    let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    Err(answer_error(about, status, &body))
}

/// The whole body of a successful answer.
pub(crate) async fn read_body(response: Response<Incoming>, route: &Route) -> Result<Bytes> {
    response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| Error::Connection {
            target: route.base.clone(),
            message: chain(&err),
        })
}

/// Whether `response` carries JSON (the runtime's directory listings and answers do; file contents
/// are `application/octet-stream`).
pub(crate) fn is_json(response: &Response<Incoming>) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The two error shapes: the router's and the legacy runtime's `{"detail": …}`, sandboxd's
/// `{"code", "message"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Coded { code: String, message: String },
    Detail { detail: serde_json::Value },
}

/// The error an answer of `status` with `body` means:
///
/// * 403 on a file path: the runtime refused the path ([`Error::PathRefused`]);
/// * 404 in sandboxd's shape on a file path: no such file ([`Error::FileNotFound`]);
/// * 404 in the `{"detail"}` shape: the router knows no such Sandbox ([`Error::SandboxNotFound`]);
///   the runtime answers a missing file in sandboxd's shape, and the legacy endpoints this client
///   uses never answer 404;
/// * anything else: [`Error::Request`] with the detail (or `code: message`, or the body's text).
pub(crate) fn answer_error(about: About<'_>, status: StatusCode, body: &[u8]) -> Error {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let coded = matches!(parsed, Some(ErrorBody::Coded { .. }));
    let message = match parsed {
        Some(ErrorBody::Coded { code, message }) => format!("{code}: {message}"),
        Some(ErrorBody::Detail {
            detail: serde_json::Value::String(detail),
        }) => detail,
        Some(ErrorBody::Detail { detail }) => detail.to_string(),
        None if body.is_empty() => status.canonical_reason().unwrap_or("no message").to_owned(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let message = one_line(&message);
    match (status, about.path) {
        (StatusCode::FORBIDDEN, Some(path)) => Error::PathRefused {
            path: path.to_owned(),
            message,
        },
        (StatusCode::NOT_FOUND, Some(path)) if coded => Error::FileNotFound {
            path: path.to_owned(),
        },
        (StatusCode::NOT_FOUND, _) if !coded => Error::SandboxNotFound {
            namespace: about.namespace.to_owned(),
            name: about.sandbox.to_owned(),
        },
        _ => Error::Request {
            status: status.as_u16(),
            detail: message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOX: About<'static> = About {
        namespace: "agents",
        sandbox: "pool-x7k2q",
        path: None,
    };
    const FILE: About<'static> = About {
        path: Some("../etc/passwd"),
        ..SANDBOX
    };

    fn error(about: About<'_>, status: u16, body: &str) -> Error {
        answer_error(
            about,
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
    }

    #[test]
    fn router_answers_keep_their_detail() {
        let err = error(
            SANDBOX,
            404,
            r#"{"detail": "sandbox agents/pool-x7k2q not found"}"#,
        );
        assert!(
            matches!(&err, Error::SandboxNotFound { namespace, name } if namespace == "agents" && name == "pool-x7k2q"),
            "{err}"
        );
        let err = error(
            SANDBOX,
            503,
            r#"{"detail": "sandbox agents/pool-x7k2q has no Ready pod"}"#,
        );
        assert_eq!(
            err.to_string(),
            "the sandbox answered 503: sandbox agents/pool-x7k2q has no Ready pod"
        );
        let err = error(
            SANDBOX,
            400,
            r#"{"detail": "invalid X-Sandbox-Port \"0\":\n out of range"}"#,
        );
        assert_eq!(
            err.to_string(),
            "the sandbox answered 400: invalid X-Sandbox-Port \"0\": out of range"
        );
    }

    #[test]
    fn runtime_answers_become_file_errors() {
        let err = error(
            FILE,
            403,
            r#"{"code": "PERMISSION_DENIED", "message": "\"../etc/passwd\" is outside the root"}"#,
        );
        assert_eq!(
            err.to_string(),
            "path \"../etc/passwd\" refused by the sandbox: PERMISSION_DENIED: \"../etc/passwd\" is outside the root"
        );
        // The legacy API refuses in its own shape.
        let err = error(FILE, 403, r#"{"detail": "outside the root"}"#);
        assert!(matches!(err, Error::PathRefused { .. }), "{err}");
        let err = error(
            FILE,
            404,
            r#"{"code": "NOT_FOUND", "message": "no such file"}"#,
        );
        assert!(matches!(err, Error::FileNotFound { path } if path == "../etc/passwd"));
        let err = error(
            FILE,
            409,
            r#"{"code": "CONFLICT", "message": "directory not empty"}"#,
        );
        assert_eq!(
            err.to_string(),
            "the sandbox answered 409: CONFLICT: directory not empty"
        );
    }

    #[test]
    fn other_answers_say_what_they_can() {
        let err = error(SANDBOX, 413, r#"{"detail": "stdout passed 16 MiB"}"#);
        assert_eq!(
            err.to_string(),
            "the sandbox answered 413: stdout passed 16 MiB"
        );
        // FastAPI-style validation details are lists.
        let err = error(SANDBOX, 422, r#"{"detail": [{"msg": "field required"}]}"#);
        assert_eq!(
            err.to_string(),
            r#"the sandbox answered 422: [{"msg":"field required"}]"#
        );
        assert_eq!(
            error(SANDBOX, 502, "").to_string(),
            "the sandbox answered 502: Bad Gateway"
        );
        assert_eq!(
            error(SANDBOX, 500, "upstream\nbroke").to_string(),
            "the sandbox answered 500: upstream broke"
        );
    }
}
