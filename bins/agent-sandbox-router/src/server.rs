//! Flags, start-up and the listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::auth::TokenReviewer;
use crate::catalog::Catalog;
use crate::guard::Guard;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Settings};

/// Authentication of proxied requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// None: anyone who can reach the router can reach every sandbox (upstream's default).
    None,
    /// `Authorization: Bearer <token>` must pass a TokenReview.
    Tokenreview,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What `--version` prints after the name: the version and commit `cargo xtask images` (or a
/// container build) sets in `AGENT_SANDBOX_VERSION`, else the package version.
const VERSION: &str = match option_env!("AGENT_SANDBOX_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Flags of `agent-sandbox-router`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "agent-sandbox-router",
    version = VERSION,
    about = "Reverse proxy from one Service to Sandbox pods, chosen by X-Sandbox-* headers",
    long_about = "Reverse proxy from one Service (sandbox-router-svc:8080) to Sandbox pods. A request names its \
Sandbox with X-Sandbox-ID (and X-Sandbox-Namespace, default `default`), the port in the pod with \
X-Sandbox-Port (default 8888); the router forwards it to that Sandbox's Ready pod, whose IP it knows from \
watching Sandboxes and their pods. It never forwards to an address that is not such a pod's. \
GET /healthz, /readyz and /metrics without X-Sandbox-ID are the router's own."
)]
pub struct Flags {
    /// Address to serve on (proxy, health and metrics).
    #[arg(long, env = "ROUTER_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub bind_address: SocketAddr,
    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, then in-cluster configuration.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Watch Sandboxes in this namespace only (needs only a Role there); all namespaces by default.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Longest wait, in seconds, for a sandbox's response head (X-Sandbox-Timeout may shorten it);
    /// not applied to the body of a streamed response or to an upgraded connection.
    #[arg(long, env = "PROXY_TIMEOUT_SECONDS", default_value_t = 180.0)]
    pub proxy_timeout: f64,
    /// Limit, in seconds, of one attempt to connect to a sandbox.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Connection attempts after a failed one (connecting only: a request is never sent twice).
    #[arg(long, default_value_t = 3)]
    pub dial_retries: u32,
    /// Authentication: `none` (default) or `tokenreview` (needs RBAC to create TokenReviews).
    #[arg(long, value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,
    /// With --auth=tokenreview: an audience the token must be valid for (repeatable).
    #[arg(long = "auth-audience")]
    pub auth_audiences: Vec<String>,
    /// Seconds to let open requests finish after SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Flags {
    fn settings(&self, guard: Guard) -> anyhow::Result<Settings> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("--{name} must be a positive number of seconds, not {value}")
                })
        };
        Ok(Settings {
            proxy_timeout: seconds("proxy-timeout", self.proxy_timeout)?,
            connect_timeout: seconds("connect-timeout", self.connect_timeout)?,
            dial_retries: self.dial_retries,
            guard,
        })
    }
}

/// Connects to the cluster, starts the watches and serves until `shutdown` completes.
pub async fn run(flags: Flags, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = agent_sandbox_kube::cluster_config(flags.kubeconfig.as_deref()).await?;
    let api_server = api_server_addresses(&config.cluster_url).await;
    let client = kube::Client::try_from(config).context("cannot build the Kubernetes client")?;
    let settings = flags.settings(Guard::new(api_server.iter().copied()))?;
    let metrics = Arc::new(Metrics::new());
    let auth = (flags.auth == AuthMode::Tokenreview).then(|| {
        TokenReviewer::new(
            client.clone(),
            flags.auth_audiences.clone(),
            metrics.clone(),
        )
    });
    let catalog = Arc::new(Catalog::new());
    let listener = TcpListener::bind(flags.bind_address)
        .await
        .with_context(|| format!("cannot listen on {}", flags.bind_address))?;
    tracing::info!(
        address = %listener.local_addr().unwrap_or(flags.bind_address),
        namespace = flags.namespace.as_deref().unwrap_or("(all)"),
        auth = match flags.auth {
            AuthMode::None => "none",
            AuthMode::Tokenreview => "tokenreview",
        },
        api_server = ?api_server,
        "serving"
    );
    let watches = tokio::spawn(crate::watch::run(
        client,
        flags.namespace.clone(),
        catalog.clone(),
    ));
    let proxy = Arc::new(Proxy::new(catalog, settings, metrics, auth));
    let result = serve(
        listener,
        proxy,
        shutdown,
        Duration::from_secs(flags.shutdown_timeout),
    )
    .await;
    watches.abort();
    result
}

/// The addresses of the API server, to refuse them as targets: the literal IP of the cluster URL,
/// or what its host name resolves to now.
async fn api_server_addresses(url: &hyper::Uri) -> Vec<IpAddr> {
    let Some(host) = url.host() else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    match tokio::net::lookup_host((host, url.port_u16().unwrap_or(443))).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(error) => {
            tracing::warn!("cannot resolve the API server host {host}: {error}");
            Vec::new()
        }
    }
}

/// Serves `proxy` on `listener` (HTTP/1.1 with upgrades, and prior-knowledge HTTP/2) until
/// `shutdown` completes; then stops accepting and lets open connections finish for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: say so, and give the system a moment
                    // instead of spinning on the same error.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(client = %peer, "connection ended: {error}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; exiting anyway");
    }
    Ok(())
}
