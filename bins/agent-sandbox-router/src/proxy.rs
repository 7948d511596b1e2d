//! Handling one request: the router's own endpoints, or authentication, the header contract, the
//! target from the catalog, and forwarding with streaming, upgrades and HTTP/2 passed through.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::auth::TokenReviewer;
use crate::catalog::Catalog;
use crate::dial::Dialer;
use crate::guard::Guard;
use crate::headers::{self, SANDBOX_ID};
use crate::metrics::{CodeLabels, Metrics};

/// The body of every response the router sends: the sandbox's, streamed, or its own JSON.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the proxy ones.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Idle connections kept per sandbox address: enough for bursts from one client.
const IDLE_PER_HOST: usize = 32;

/// How the proxy forwards.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest wait for a sandbox's response head; `X-Sandbox-Timeout` may only shorten it.
    pub proxy_timeout: Duration,
    /// Limit of one connection attempt.
    pub connect_timeout: Duration,
    /// Connection attempts after the first.
    pub dial_retries: u32,
    /// Addresses never connected to.
    pub guard: Guard,
}

/// The proxy: shared by every connection.
pub struct Proxy {
    catalog: Arc<Catalog>,
    settings: Settings,
    metrics: Arc<Metrics>,
    auth: Option<TokenReviewer>,
    http1: Client<Dialer, Incoming>,
    http2: Client<Dialer, Incoming>,
}

/// A request the router answers itself, with a JSON `{"detail": …}` body.
struct Failure {
    status: StatusCode,
    detail: String,
    sandbox: Option<String>,
}

impl Failure {
    fn new(status: StatusCode, detail: impl ToString) -> Self {
        Self {
            status,
            detail: detail.to_string(),
            sandbox: None,
        }
    }

    fn about(mut self, sandbox: String) -> Self {
        self.sandbox = Some(sandbox);
        self
    }
}

impl Proxy {
    /// A proxy that looks targets up in `catalog`. In the binary the watches fill the catalog;
    /// the in-process tests fill it by hand (the test seam), with a guard from
    /// [`Guard::allowing_loopback_for_tests`].
    pub fn new(
        catalog: Arc<Catalog>,
        settings: Settings,
        metrics: Arc<Metrics>,
        auth: Option<TokenReviewer>,
    ) -> Self {
        let dialer = Dialer {
            connect_timeout: settings.connect_timeout,
            retries: settings.dial_retries,
            metrics: metrics.clone(),
        };
        let http1 = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .build(dialer.clone());
        // Prior-knowledge HTTP/2 (h2c): what gRPC clients speak to a plain-text server.
        let http2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(dialer);
        Self {
            catalog,
            settings,
            metrics,
            auth,
            http1,
            http2,
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        if !req.headers().contains_key(SANDBOX_ID)
            && let Some(response) = self.own_endpoint(&req)
        {
            return response;
        }
        let started = Instant::now();
        self.metrics.inflight.inc();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (response, upgraded) = match self.forward(req, peer).await {
            Ok(forwarded) => forwarded,
            Err(failure) => {
                log_failure(&failure, &method, &path, peer);
                (json(failure.status, &failure.detail), false)
            }
        };
        // An upgraded connection stays in flight until its tunnel closes (see `tunnel`).
        if !upgraded {
            self.metrics.inflight.dec();
        }
        self.metrics
            .requests
            .get_or_create(&CodeLabels {
                code: response.status().as_u16(),
            })
            .inc();
        self.metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        response
    }

    /// `/healthz`, `/readyz` and `/metrics`, for requests without `X-Sandbox-ID` (with it, those
    /// paths belong to the sandbox).
    fn own_endpoint(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        match req.uri().path() {
            "/healthz" => Some(ok_status()),
            "/readyz" if self.catalog.synced() => Some(ok_status()),
            "/readyz" => Some(json(
                StatusCode::SERVICE_UNAVAILABLE,
                "the Sandbox and Pod caches have not synced yet",
            )),
            "/metrics" => Some(
                Response::builder()
                    .header(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .body(full(self.metrics.encode()))
                    .unwrap_or_else(|_| json(StatusCode::INTERNAL_SERVER_ERROR, "metrics")),
            ),
            _ => None,
        }
    }

    /// Forwards the request; the response and whether the connection was upgraded.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(Response<Body>, bool), Failure> {
        let (route, target) = self.route(&req).await?;
        let sandbox = format!("{}/{}", route.namespace, route.name);
        let upgrade = upgrade_protocol(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let http2 = req.version() == Version::HTTP_2;
        let outbound = outbound(req, target, upgrade.as_ref(), peer)?;
        let mut response = self
            .send(outbound, http2, &route)
            .await
            .map_err(|failure| failure.about(sandbox.clone()))?;
        if let Some(client_upgrade) = client_upgrade
            && response.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(
                client_upgrade,
                upstream_upgrade,
                self.metrics.clone(),
                sandbox,
            ));
            let (parts, _) = response.into_parts();
            return Ok((Response::from_parts(parts, empty()), true));
        }
        strip_hop_by_hop(response.headers_mut());
        Ok((response.map(BodyExt::boxed), false))
    }

    /// Authenticates the caller (when configured), reads the routing headers and resolves the
    /// Sandbox's pod address through the SSRF guard.
    async fn route(
        &self,
        req: &Request<Incoming>,
    ) -> Result<(headers::Route, SocketAddr), Failure> {
        if let Some(auth) = &self.auth {
            auth.authenticate(req.headers())
                .await
                .map_err(|e| Failure::new(e.status(), e))?;
        }
        let route =
            headers::parse(req.headers()).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e))?;
        let ip = self
            .catalog
            .resolve(&route, &self.settings.guard)
            .map_err(|e| {
                Failure::new(e.status(), &e).about(format!("{}/{}", route.namespace, route.name))
            })?;
        let target = SocketAddr::new(ip, route.port);
        Ok((route, target))
    }

    /// Sends `outbound` within the route's timeout; a failure says whether the dial, the
    /// connection or the clock gave out.
    async fn send(
        &self,
        outbound: Request<Incoming>,
        http2: bool,
        route: &headers::Route,
    ) -> Result<Response<Incoming>, Failure> {
        let timeout = route.timeout.map_or(self.settings.proxy_timeout, |t| {
            t.min(self.settings.proxy_timeout)
        });
        let client = if http2 { &self.http2 } else { &self.http1 };
        match tokio::time::timeout(timeout, client.request(outbound)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) if error.is_connect() => {
                self.metrics.upstream_error("dial");
                Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "Could not connect to the backend sandbox: {} ({})",
                        route.name,
                        chain(&error)
                    ),
                ))
            }
            Ok(Err(error)) => {
                self.metrics.upstream_error("protocol");
                Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the sandbox's connection failed: {}", chain(&error)),
                ))
            }
            Err(_) => {
                self.metrics.upstream_error("timeout");
                Err(Failure::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the sandbox did not answer within {:.1}s",
                        timeout.as_secs_f64()
                    ),
                ))
            }
        }
    }
}

/// The request as the sandbox gets it: addressed to `target`, HTTP/1.1 unless it came as HTTP/2,
/// with hop-by-hop headers and `Authorization` dropped and `X-Forwarded-*` set.
fn outbound(
    req: Request<Incoming>,
    target: SocketAddr,
    upgrade: Option<&HeaderValue>,
    peer: SocketAddr,
) -> Result<Request<Incoming>, Failure> {
    let uri: Uri = format!(
        "http://{target}{}",
        req.uri().path_and_query().map_or("/", |pq| pq.as_str())
    )
    .parse()
    .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("invalid path: {e}")))?;
    let forwarded_host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    if parts.version != Version::HTTP_2 {
        parts.version = Version::HTTP_11;
    }
    prepare_headers(&mut parts.headers, upgrade, peer.ip(), forwarded_host);
    Ok(Request::from_parts(parts, body))
}

/// Copies bytes both ways between the client's and the sandbox's upgraded connections until
/// either side closes. No timeout applies: a WebSocket may stay open as long as both ends want.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    metrics: Arc<Metrics>,
    sandbox: String,
) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%sandbox, %error, "upgraded connection ended with an error");
            }
        }
        Err(error) => tracing::warn!(%sandbox, "upgrade failed: {}", chain(&error)),
    }
    metrics.inflight.dec();
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 || !has_token(req.headers(), "upgrade") {
        return None;
    }
    req.headers().get(header::UPGRADE).cloned()
}

/// True when the `Connection` header lists `token`.
fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The headers sent to the sandbox: hop-by-hop headers removed (the upgrade pair put back for an
/// upgrade), `TE: trailers` kept (gRPC needs it), the caller's credentials and `Host` dropped,
/// and `X-Forwarded-For/-Host/-Proto` set by the router.
fn prepare_headers(
    headers: &mut HeaderMap,
    upgrade: Option<&HeaderValue>,
    client: IpAddr,
    host: Option<HeaderValue>,
) {
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    // Sandboxes never see the caller's credentials (they are for the router, if anything).
    headers.remove(header::AUTHORIZATION);
    // The sandbox is addressed by IP; the name the client used travels as X-Forwarded-Host.
    headers.remove(header::HOST);
    // The router is the edge: what a client claims about earlier hops is not passed on.
    headers.remove("x-forwarded-for");
    headers.remove("x-forwarded-host");
    headers.remove("forwarded");
    if let Ok(value) = HeaderValue::from_str(&client.to_canonical().to_string()) {
        headers.insert("x-forwarded-for", value);
    }
    if let Some(host) = host {
        headers.insert("x-forwarded-host", host);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
}

/// One log line per failed request: client mistakes at info, refusals and failures at warn.
fn log_failure(failure: &Failure, method: &Method, path: &str, peer: SocketAddr) {
    let sandbox = failure.sandbox.as_deref().unwrap_or("-");
    let status = failure.status.as_u16();
    if failure.status.is_server_error() || failure.status == StatusCode::FORBIDDEN {
        tracing::warn!(status, %sandbox, %method, path, client = %peer, "{}", failure.detail);
    } else {
        tracing::info!(status, %sandbox, %method, path, client = %peer, "{}", failure.detail);
    }
}

/// An error and its causes on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn ok_status() -> Response<Body> {
    json_value(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `{"detail": …}` with `status`, upstream's error shape.
fn json(status: StatusCode, detail: &str) -> Response<Body> {
    json_value(status, &serde_json::json!({ "detail": detail }))
}

fn json_value(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn credentials_hop_headers_and_claimed_origins_are_not_forwarded() {
        let mut headers = map(&[
            ("authorization", "Bearer secret"),
            ("host", "router.example"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop only"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-sandbox-id", "sb"),
            ("content-type", "application/json"),
        ]);
        prepare_headers(
            &mut headers,
            None,
            "10.0.0.9".parse().unwrap(),
            Some(HeaderValue::from_static("router.example")),
        );
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-sandbox-id"
            ]
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9");
        assert_eq!(headers["x-forwarded-host"], "router.example");
    }

    #[test]
    fn upgrades_and_trailers_survive() {
        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
        ]);
        let upgrade = HeaderValue::from_static("websocket");
        prepare_headers(
            &mut headers,
            Some(&upgrade),
            "::ffff:10.0.0.9".parse().unwrap(),
            None,
        );
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9");

        let mut gzip = map(&[("te", "gzip")]);
        prepare_headers(&mut gzip, None, "10.0.0.9".parse().unwrap(), None);
        assert!(!gzip.contains_key("te"));
    }

    #[test]
    fn only_http11_requests_with_both_headers_upgrade() {
        let request = |version, pairs: &[(&str, &str)]| {
            let mut req = Request::new(());
            *req.version_mut() = version;
            *req.headers_mut() = map(pairs);
            req
        };
        let both = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            upgrade_protocol(&request(Version::HTTP_11, &both)),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(upgrade_protocol(&request(Version::HTTP_2, &both)), None);
        assert_eq!(
            upgrade_protocol(&request(Version::HTTP_11, &[("upgrade", "websocket")])),
            None
        );
    }
}
