//! The router in-process on 127.0.0.1:0 in front of real local servers: our runtime's legacy HTTP
//! API and its gRPC service, a WebSocket echo server, and small hyper servers that show what
//! arrived. The catalog is filled by hand instead of by the watches (the test seam), with loopback
//! targets allowed. Nothing sleeps to synchronise and nothing about time is asserted.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_sandbox_router::catalog::{Catalog, ObjectKey, PodRecord, SandboxRecord};
use agent_sandbox_router::guard::Guard;
use agent_sandbox_router::metrics::Metrics;
use agent_sandbox_router::proxy::{Proxy, Settings};
use agent_sandbox_router::server::serve;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

type TestBody = BoxBody<Bytes, Infallible>;

/// The router under test and the catalog it reads.
struct Router {
    addr: SocketAddr,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Router {
    async fn start() -> Self {
        let catalog = Arc::new(Catalog::new());
        // Both lists "arrived", empty: the watches' job, done by hand.
        catalog.replace_sandboxes([]);
        catalog.replace_pods([]);
        let metrics = Arc::new(Metrics::new());
        let settings = Settings {
            proxy_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            dial_retries: 2,
            guard: Guard::default().allowing_loopback_for_tests(),
        };
        let proxy = Arc::new(Proxy::new(catalog.clone(), settings, metrics.clone(), None));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            proxy,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        Self {
            addr,
            catalog,
            metrics,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Registers Sandbox `ns/name` with one Ready pod at `ip`.
    fn add(&self, name: &str, ip: &str) {
        let uid = format!("uid-{name}");
        self.catalog.upsert_sandbox(
            ObjectKey::new("ns", name),
            SandboxRecord { uid: uid.clone() },
        );
        self.catalog.upsert_pod(
            ObjectKey::new("ns", name),
            PodRecord {
                sandbox_uid: uid,
                ips: vec![ip.parse().unwrap()],
                ready: true,
                host_network: false,
                terminating: false,
            },
        );
    }

    /// Sends a request with `headers` through the router.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response<Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.client
            .request(
                request
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    fn metric(&self, line_start: &str) -> Option<String> {
        self.metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(line_start))
            .map(str::to_owned)
    }
}

/// Headers naming Sandbox `ns/name` on `port`.
fn to(name: &str, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("x-sandbox-id", name.to_owned()),
        ("x-sandbox-namespace", "ns".to_owned()),
        ("x-sandbox-port", port.to_string()),
    ]
}

fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn json_body(response: Response<Incoming>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
}

/// Serves `handler` on a fresh port of `ip` (HTTP/1.1 and h2c).
async fn backend<F, Fut>(ip: &str, handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A backend that answers with what it received: method, path, headers and body.
async fn inspector() -> SocketAddr {
    backend("127.0.0.1", |req: Request<Incoming>| async move {
        let method = req.method().to_string();
        let path = req.uri().to_string();
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let answer = json!({"method": method, "path": path, "headers": headers,
            "body": String::from_utf8_lossy(&body)});
        Response::new(Full::new(Bytes::from(answer.to_string())).boxed())
    })
    .await
}

#[tokio::test]
async fn forwards_to_the_runtimes_execute_and_returns_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let limits = agent_sandbox_runtime::exec::Limits {
        timeout: Duration::from_secs(30),
        max_output: 64 * 1024,
        drain_grace: Duration::from_secs(2),
    };
    let state = Arc::new(
        agent_sandbox_runtime::state::State::new(&dir.path().join("root"), limits, "SANDBOX_")
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(axum::serve(listener, agent_sandbox_runtime::legacy::router(state)).into_future());
    let router = Router::start().await;
    router.add("runtime", "127.0.0.1");

    let response = router
        .send(
            Method::POST,
            "/execute",
            &[
                ("x-sandbox-id", "runtime"),
                ("x-sandbox-namespace", "ns"),
                ("x-sandbox-port", &port.to_string()),
                ("content-type", "application/json"),
            ],
            r#"{"command": "echo hello from the sandbox"}"#,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_body(response).await;
    assert_eq!(answer["stdout"], "hello from the sandbox\n");
    assert_eq!(answer["exit_code"], 0);
    assert_eq!(
        router.metric("sandbox_router_requests_total{code=\"200\"}"),
        Some("sandbox_router_requests_total{code=\"200\"} 1".to_owned())
    );
}

#[tokio::test]
async fn method_path_query_and_body_arrive_without_credentials() {
    let backend = inspector().await;
    let router = Router::start().await;
    router.add("sb", "127.0.0.1");
    let mut headers = to("sb", backend.port());
    headers.extend([
        ("authorization", "Bearer caller-secret".to_owned()),
        ("x-forwarded-for", "6.6.6.6".to_owned()),
        ("x-custom", "kept".to_owned()),
    ]);
    let response = router
        .send(Method::PUT, "/a/b?x=1&y=two", &pairs(&headers), "payload")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = json_body(response).await;
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/a/b?x=1&y=two");
    assert_eq!(seen["body"], "payload");
    let h = &seen["headers"];
    assert_eq!(h.get("authorization"), None, "{h}");
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["x-sandbox-id"], "sb");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], router.addr.to_string());
    assert_eq!(h["host"], format!("127.0.0.1:{}", backend.port()));
}

#[tokio::test]
async fn the_default_namespace_and_port_follow_upstream() {
    // Port 8888 on loopback may be taken on a developer's machine, so only the namespace default is
    // exercised end to end; the port default is a unit test of the header parser.
    let backend = inspector().await;
    let router = Router::start().await;
    router.catalog.upsert_sandbox(
        ObjectKey::new("default", "sb"),
        SandboxRecord { uid: "u".into() },
    );
    router.catalog.upsert_pod(
        ObjectKey::new("default", "sb"),
        PodRecord {
            sandbox_uid: "u".into(),
            ips: vec!["127.0.0.1".parse().unwrap()],
            ready: true,
            host_network: false,
            terminating: false,
        },
    );
    let port = backend.port().to_string();
    let response = router
        .send(
            Method::GET,
            "/",
            &[("x-sandbox-id", "sb"), ("x-sandbox-port", &port)],
            "",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The UID header must match the Sandbox's.
    let response = router
        .send(
            Method::GET,
            "/",
            &[
                ("x-sandbox-id", "sb"),
                ("x-sandbox-port", &port),
                ("x-sandbox-uid", "0123-abcd"),
            ],
            "",
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn contract_errors_are_json_details_with_their_status() {
    let router = Router::start().await;
    let missing = router.send(Method::POST, "/execute", &[], "{}").await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.headers()["content-type"], "application/json");
    assert_eq!(
        json_body(missing).await,
        json!({"detail": "X-Sandbox-ID header is required"})
    );
    let bad_port = router
        .send(
            Method::GET,
            "/",
            &[("x-sandbox-id", "sb"), ("x-sandbox-port", "99999")],
            "",
        )
        .await;
    assert_eq!(bad_port.status(), StatusCode::BAD_REQUEST);

    let unknown = router
        .send(Method::GET, "/", &[("x-sandbox-id", "nobody")], "")
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_body(unknown).await,
        json!({"detail": "sandbox default/nobody not found"})
    );

    router.catalog.upsert_sandbox(
        ObjectKey::new("ns", "starting"),
        SandboxRecord { uid: "u".into() },
    );
    let starting = router
        .send(Method::GET, "/", &pairs(&to("starting", 8888)), "")
        .await;
    assert_eq!(starting.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_body(starting).await["detail"],
        "sandbox ns/starting has no running pod"
    );
}

#[tokio::test]
async fn a_named_ip_that_is_not_the_sandboxs_pod_is_refused_and_never_contacted() {
    // A server the router must never reach, on another loopback address.
    let contacted = Arc::new(AtomicUsize::new(0));
    let seen = contacted.clone();
    let trap = backend("127.0.0.2", move |_req| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Response::new(Empty::new().boxed()) }
    })
    .await;
    let backend = inspector().await;
    let router = Router::start().await;
    router.add("sb", "127.0.0.1");
    for ip in ["127.0.0.2", "10.88.0.1", "169.254.169.254"] {
        let mut headers = to("sb", trap.port());
        headers.push(("x-sandbox-pod-ip", ip.to_owned()));
        let response = router.send(Method::GET, "/", &pairs(&headers), "").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{ip}");
        let detail = json_body(response).await["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            detail.contains("is not an IP of sandbox ns/sb's pod"),
            "{detail}"
        );
    }
    assert_eq!(contacted.load(Ordering::SeqCst), 0);

    // The pod's own IP in the header is fine.
    let mut headers = to("sb", backend.port());
    headers.push(("x-sandbox-pod-ip", "127.0.0.1".to_owned()));
    let response = router.send(Method::GET, "/", &pairs(&headers), "").await;
    assert_eq!(response.status(), StatusCode::OK);

    // A pod whose status names a metadata-service address is refused too.
    router.add("odd", "169.254.169.254");
    let response = router
        .send(Method::GET, "/", &pairs(&to("odd", 80)), "")
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unreachable_pod_is_a_bad_gateway_after_retrying_the_connection() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let router = Router::start().await;
    router.add("gone", "127.0.0.1");
    let response = router
        .send(Method::POST, "/execute", &pairs(&to("gone", closed)), "{}")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let detail = json_body(response).await["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.starts_with("Could not connect to the backend sandbox: gone"),
        "{detail}"
    );
    assert_eq!(
        router.metric("sandbox_router_upstream_retries_total"),
        Some("sandbox_router_upstream_retries_total 2".to_owned())
    );
    assert_eq!(
        router.metric("sandbox_router_upstream_errors_total{reason=\"dial\"}"),
        Some("sandbox_router_upstream_errors_total{reason=\"dial\"} 1".to_owned())
    );
}

#[tokio::test]
async fn a_request_that_reached_the_sandbox_is_never_sent_again() {
    // A server that reads one request and hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0; 64 * 1024];
            let mut read = Vec::new();
            while !read.ends_with(b"body-end") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read.extend_from_slice(&buf[..n]),
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let router = Router::start().await;
    router.add("flaky", "127.0.0.1");
    let response = router
        .send(
            Method::POST,
            "/execute",
            &pairs(&to("flaky", port)),
            "body-end",
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn x_sandbox_timeout_bounds_the_wait_for_the_answer() {
    let router = Router::start().await;
    // Answers never: the handler waits forever.
    let silent = backend("127.0.0.1", |_req| async {
        std::future::pending::<()>().await;
        Response::new(Empty::new().boxed())
    })
    .await;
    router.add("slow", "127.0.0.1");
    let mut headers = to("slow", silent.port());
    headers.push(("x-sandbox-timeout", "0.2".to_owned()));
    let response = router.send(Method::GET, "/", &pairs(&headers), "").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        json_body(response).await["detail"],
        "the sandbox did not answer within 0.2s"
    );
}

#[tokio::test]
async fn streamed_responses_arrive_chunk_by_chunk() {
    // The backend sends "first", then waits until the test has received it before "second": the
    // test can only finish if the router passes each chunk on as it comes.
    let (received_tx, received_rx) = tokio::sync::mpsc::channel::<()>(1);
    let received_rx = Arc::new(tokio::sync::Mutex::new(received_rx));
    let backend = backend("127.0.0.1", move |_req| {
        let received_rx = received_rx.clone();
        async move {
            let chunks = futures::stream::unfold(0, move |step| {
                let received_rx = received_rx.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, Infallible>(Frame::data(Bytes::from("first"))), 1)),
                        1 => {
                            received_rx.lock().await.recv().await;
                            Some((Ok(Frame::data(Bytes::from("second"))), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
    })
    .await;
    let router = Router::start().await;
    router.add("stream", "127.0.0.1");
    let response = router
        .send(
            Method::GET,
            "/events",
            &pairs(&to("stream", backend.port())),
            "",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = next_data(&mut body).await;
    assert_eq!(first, "first");
    received_tx.send(()).await.unwrap();
    let second = next_data(&mut body).await;
    assert_eq!(second, "second");
}

async fn next_data(body: &mut Incoming) -> String {
    loop {
        let frame = body.frame().await.expect("body ended").unwrap();
        if let Ok(data) = frame.into_data() {
            return String::from_utf8(data.to_vec()).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_upgrades_pass_through_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() {
                        let text = message.into_text().unwrap();
                        ws.send(format!("echo: {text}").into()).await.unwrap();
                    }
                }
            });
        }
    });
    let router = Router::start().await;
    router.add("ws", "127.0.0.1");
    let stream = TcpStream::connect(router.addr).await.unwrap();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/socket",
            router.addr
        ))
        .unwrap();
    for (k, v) in to("ws", port) {
        request.headers_mut().insert(k, v.parse().unwrap());
    }
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["one", "two"] {
        ws.send(text.into()).await.unwrap();
        let answer = ws.next().await.unwrap().unwrap();
        assert_eq!(
            answer.into_text().unwrap().as_str(),
            format!("echo: {text}")
        );
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn grpc_over_h2c_reaches_the_runtimes_process_service() {
    use agent_sandbox_runtime::grpc::ProcessService;
    use agent_sandbox_runtime::grpc::proto::process_service_client::ProcessServiceClient;
    use agent_sandbox_runtime::grpc::proto::{ExecuteRequest, ProcessConfig};

    let dir = tempfile::tempdir().unwrap();
    let limits = agent_sandbox_runtime::exec::Limits {
        timeout: Duration::from_secs(30),
        max_output: 64 * 1024,
        drain_grace: Duration::from_secs(2),
    };
    let state = Arc::new(
        agent_sandbox_runtime::state::State::new(&dir.path().join("root"), limits, "SANDBOX_")
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
        ProcessService::new(state).into_server(),
        tonic::transport::server::TcpIncoming::from(listener),
    ));
    let router = Router::start().await;
    router.add("grpc", "127.0.0.1");
    let mut client = ProcessServiceClient::connect(format!("http://{}", router.addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(ExecuteRequest {
        config: Some(ProcessConfig {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 3".into(),
            ],
            env_vars: Default::default(),
            cwd: None,
        }),
    });
    for (k, v) in to("grpc", port) {
        request.metadata_mut().insert(k, v.parse().unwrap());
    }
    let answer = client.execute(request).await.unwrap().into_inner();
    assert_eq!(answer.stdout, b"out\n");
    assert_eq!(answer.stderr, b"err\n");
    assert_eq!(answer.exit_code, 3);

    // A gRPC error status travels in trailers; it must arrive intact.
    let mut unknown = tonic::Request::new(ExecuteRequest {
        config: Some(ProcessConfig {
            command: vec!["no-such-program-xyz".into()],
            env_vars: Default::default(),
            cwd: None,
        }),
    });
    for (k, v) in to("grpc", port) {
        unknown.metadata_mut().insert(k, v.parse().unwrap());
    }
    let status = client.execute(unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn health_readiness_and_metrics_are_the_routers_own() {
    let catalog = Arc::new(Catalog::new());
    let proxy = Arc::new(Proxy::new(
        catalog.clone(),
        Settings {
            proxy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            dial_retries: 0,
            guard: Guard::default(),
        },
        Arc::new(Metrics::new()),
        None,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        proxy,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| client.get(format!("http://{addr}{path}").parse().unwrap());
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(json_body(health).await, json!({"status": "ok"}));
    // Not ready until both lists arrived.
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    catalog.replace_sandboxes([]);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    catalog.replace_pods([]);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(
        text.contains("# TYPE sandbox_router_request_duration_seconds histogram"),
        "{text}"
    );
}
