//! The HTTP endpoints: `/healthz` and `/readyz` on the probe address, `/metrics` on the metrics
//! address, served from start to stop whether this replica leads or not.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use tokio::task::JoinHandle;

use prometheus_client::registry::Registry;

use crate::metrics::encode;
use crate::process::error::Error;
use crate::process::signal::Signal;

/// Whether the process is ready to serve: a standby replica is ready, a leader once its caches synced.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Sets the readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// The readiness.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(ready): State<Readiness>) -> (StatusCode, &'static str) {
    if ready.get() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    match encode(&registry) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The probe routes.
pub fn probe_router(ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ready)
}

/// The metrics route.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry)
}

/// Binds `address` (port 0 picks a free port) and reports the address actually bound.
pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The probe and metrics servers, running.
pub struct Servers {
    tasks: [JoinHandle<std::io::Result<()>>; 2],
}

impl Servers {
    /// Binds both addresses and serves until `stop` is raised.
    pub async fn start(
        (metrics_address, health_address): (SocketAddr, SocketAddr),
        registry: Arc<Registry>,
        ready: Readiness,
        stop: &Signal,
    ) -> Result<Self, Error> {
        let bind = |address| async move {
            bind(address)
                .await
                .map_err(|source| Error::Bind { address, source })
        };
        let (metrics_listener, metrics_address) = bind(metrics_address).await?;
        let (health_listener, health_address) = bind(health_address).await?;
        tracing::info!(%metrics_address, %health_address, "serving metrics and probes");
        Ok(Self {
            tasks: [
                tokio::spawn(serve(
                    metrics_listener,
                    metrics_router(registry),
                    stop.raised(),
                )),
                tokio::spawn(serve(health_listener, probe_router(ready), stop.raised())),
            ],
        })
    }

    /// Waits until both have stopped (after the stop signal).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_status(router: Router, path: &str) -> (u16, String) {
        let Ok((listener, address)) = bind("127.0.0.1:0".parse().expect("literal address")).await
        else {
            panic!("bind failed");
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));
        let response = http_get(address, path).await;
        let _ = stop.send(());
        let _ = server.await;
        response
    }

    /// A minimal HTTP/1.0 GET, enough to test the routes without an HTTP client dependency.
    async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to test server");
        let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn healthz_is_always_ok_and_readyz_follows_readiness() {
        let ready = Readiness::default();
        assert_eq!(
            get_status(probe_router(ready.clone()), "/healthz").await.0,
            200
        );
        assert_eq!(
            get_status(probe_router(ready.clone()), "/readyz").await.0,
            503
        );
        ready.set(true);
        assert_eq!(get_status(probe_router(ready), "/readyz").await.0, 200);
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_the_registry() {
        let store = kube::runtime::reflector::store::Writer::default().as_reader();
        let mut registry = Registry::default();
        crate::metrics::Metrics::register(&mut registry, store);
        let (status, body) = get_status(metrics_router(Arc::new(registry)), "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("agent_sandbox_build_info"), "{body}");
    }
}
