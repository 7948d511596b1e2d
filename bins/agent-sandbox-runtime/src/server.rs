//! Flags, listeners and the shutdown order.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustix::process::Signal;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::exec::Limits;
use crate::state::State;

/// What `--version` prints after the name: the version and commit `cargo xtask images` (or a
/// container build) sets in `AGENT_SANDBOX_VERSION`, else the package version.
const VERSION: &str = match option_env!("AGENT_SANDBOX_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Flags of `agent-sandbox-runtime`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "agent-sandbox-runtime",
    version = VERSION,
    about = "The in-sandbox daemon: upstream's legacy python-runtime API, sandboxd's REST API and process gRPC service",
    long_about = "The in-sandbox daemon. It serves upstream's legacy python-runtime API (what the SDKs use by \
default: /execute, /upload, /download, /list, /exists) and sandboxd's REST API (/v1/files, /v1/health, \
/v1/metadata) and sandboxd's process.v1.ProcessService gRPC service, so it is a drop-in for both upstream templates.\n\nAll listeners bind all addresses by \
default: the router reaches a sandbox at its pod IP on whatever port X-Sandbox-Port names, so a loopback \
address would make the sandbox unreachable through the router. Who may connect is the managed \
NetworkPolicy's business; bind 127.0.0.1 when only processes inside the pod should reach a surface."
)]
pub struct Flags {
    /// Address of the legacy python-runtime API.
    #[arg(long, env = "RUNTIME_LEGACY_LISTEN", default_value = "0.0.0.0:8888")]
    pub legacy_listen: SocketAddr,
    /// Address of sandboxd's REST API (must differ from the legacy address).
    #[arg(long, env = "RUNTIME_REST_LISTEN", default_value = "0.0.0.0:8080")]
    pub rest_listen: SocketAddr,
    /// Address of the `process.v1.ProcessService` gRPC service.
    #[arg(long, env = "RUNTIME_GRPC_LISTEN", default_value = "0.0.0.0:9090")]
    pub grpc_listen: SocketAddr,
    /// Every path is confined to this directory (created if missing; empty is refused), and
    /// commands run in it.
    #[arg(long, env = "RUNTIME_ROOT_DIR", default_value = "/workspace")]
    pub root_dir: PathBuf,
    /// Default and largest timeout of a command, in seconds; its whole process group is killed then.
    #[arg(long, env = "SANDBOX_EXEC_TIMEOUT_SECONDS", default_value_t = 300)]
    pub exec_timeout: u64,
    /// Most bytes kept of a command's stdout, and separately of its stderr; past it the command
    /// is killed and the request fails with 413.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_output_bytes: usize,
    /// Environment variables with this prefix are shown by /v1/metadata (secret-looking names never).
    #[arg(long, default_value = "SANDBOX_")]
    pub metadata_env_prefix: String,
    /// Seconds to let requests finish after SIGTERM, once running commands were ended.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `agent_sandbox_runtime=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

impl Flags {
    /// The command limits these flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_secs(self.exec_timeout.max(1)),
            max_output: self.max_output_bytes,
            drain_grace: Duration::from_secs(5),
        }
    }
}

/// Binds the three listeners and serves until `shutdown` completes, then ends running commands
/// (SIGTERM to every process group, SIGKILL two seconds later) and lets requests finish for at
/// most `--shutdown-timeout`. Health endpoints answer 503 from the moment `shutdown` completes.
pub async fn run(flags: Flags, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    check_distinct(&flags)?;
    let state = Arc::new(
        State::new(&flags.root_dir, flags.limits(), &flags.metadata_env_prefix)
            .with_context(|| format!("cannot use root directory {}", flags.root_dir.display()))?,
    );
    let listeners = Listeners::bind(&flags).await?;
    tracing::info!(
        legacy = %flags.legacy_listen,
        rest = %flags.rest_listen,
        grpc = %flags.grpc_listen,
        root = %state.root.path().display(),
        "serving"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let servers = listeners.serve(&state, &stop_rx);

    shutdown.await;
    tracing::info!(running = state.processes.live(), "shutting down");
    end_commands(&state).await;
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(flags.shutdown_timeout), servers).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("requests still open after --shutdown-timeout; exiting anyway");
            Ok(())
        }
    }
}

/// Refuses the same address for two surfaces (port 0 may repeat: each bind picks its own port).
fn check_distinct(flags: &Flags) -> anyhow::Result<()> {
    let addrs = [flags.legacy_listen, flags.rest_listen, flags.grpc_listen];
    if let Some(twice) = addrs
        .iter()
        .enumerate()
        .find(|(i, a)| a.port() != 0 && addrs[i + 1..].contains(a))
    {
        anyhow::bail!(
            "--legacy-listen, --rest-listen and --grpc-listen must differ; {} is given twice",
            twice.1
        );
    }
    Ok(())
}

/// SIGTERM to every running command's process group, SIGKILL to what is left two seconds later.
async fn end_commands(state: &State) {
    state.processes.shut_down(Signal::TERM);
    let grace = tokio::time::Instant::now() + Duration::from_secs(2);
    while state.processes.live() > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.processes.signal_all(Signal::KILL);
}

/// The bound listeners of the three surfaces.
struct Listeners {
    legacy: TcpListener,
    rest: TcpListener,
    grpc: TcpListener,
}

impl Listeners {
    async fn bind(flags: &Flags) -> anyhow::Result<Self> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ({what})"))
        };
        Ok(Self {
            legacy: bind(flags.legacy_listen, "legacy API").await?,
            rest: bind(flags.rest_listen, "REST API").await?,
            grpc: bind(flags.grpc_listen, "gRPC").await?,
        })
    }

    /// Starts serving every surface at once; the future returned completes when all of them have
    /// stopped, which they do once `stop` turns true and their open requests are done.
    fn serve(
        self,
        state: &Arc<State>,
        stop: &watch::Receiver<bool>,
    ) -> impl Future<Output = anyhow::Result<()>> + use<> {
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let legacy = tokio::spawn(
            axum::serve(self.legacy, crate::legacy::router(state.clone()))
                .with_graceful_shutdown(stopped(stop.clone()))
                .into_future(),
        );
        let rest = tokio::spawn(
            axum::serve(self.rest, crate::rest::router(state.clone()))
                .with_graceful_shutdown(stopped(stop.clone()))
                .into_future(),
        );
        let grpc = tokio::spawn(
            tonic::transport::Server::builder().serve_with_incoming_shutdown(
                crate::grpc::ProcessService::new(state.clone()).into_server(),
                tonic::transport::server::TcpIncoming::from(self.grpc),
                stopped(stop.clone()),
            ),
        );
        async {
            let (a, b, c) = tokio::join!(legacy, rest, grpc);
            a.context("legacy server task")?.context("legacy server")?;
            b.context("REST server task")?.context("REST server")?;
            c.context("gRPC server task")?.context("gRPC server")?;
            anyhow::Ok(())
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
