//! # agent-sandbox-client: Agent Sandbox from Rust
//!
//! Claims a sandbox from a warm pool, runs commands in it and moves files in and out, the way
//! upstream's Python SDK (`k8s-agent-sandbox`) does, on the same wire: a `SandboxClaim` through the
//! Kubernetes API, then HTTP and gRPC to the sandbox's runtime through the router
//! (`sandbox-router-svc`, `X-Sandbox-*` headers) or straight to its pod.
//!
//! ```no_run
//! use agent_sandbox_client::{Connection, CreateOptions, RunOptions, SandboxClient};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let kube = kube::Client::try_default().await?;
//! // Port-forward to the router in agent-sandbox-system, as the Python SDK does by default.
//! let client = SandboxClient::new(kube, Connection::default());
//! let sandbox = client.create_sandbox(CreateOptions::new("python-pool")).await?;
//!
//! let result = sandbox.run("python3 -c 'print(6*7)'", &RunOptions::default()).await?;
//! assert_eq!((result.stdout.as_str(), result.exit_code), ("42\n", 0));
//!
//! sandbox.write("data/input.csv", &b"a,b\n1,2\n"[..]).await?;
//! let csv = sandbox.read("data/input.csv").await?;
//! assert_eq!(&csv[..], b"a,b\n1,2\n");
//!
//! sandbox.delete().await?; // the claim, and with it the sandbox
//! # Ok(())
//! # }
//! ```
//!
//! * [`SandboxClient`]: [`create_sandbox`](SandboxClient::create_sandbox) (claim and wait for
//!   Ready, failing fast with typed errors), [`get_sandbox`](SandboxClient::get_sandbox),
//!   [`list_sandboxes`](SandboxClient::list_sandboxes),
//!   [`delete_sandbox`](SandboxClient::delete_sandbox).
//! * [`Sandbox`]: [`run`](Sandbox::run), [`run_streaming`](Sandbox::run_streaming) (output as it
//!   is written), [`write`](Sandbox::write) / [`write_from`](Sandbox::write_from),
//!   [`read`](Sandbox::read) / [`read_stream`](Sandbox::read_stream), [`list`](Sandbox::list),
//!   [`exists`](Sandbox::exists), [`remove`](Sandbox::remove), [`suspend`](Sandbox::suspend) /
//!   [`resume`](Sandbox::resume), [`delete`](Sandbox::delete).
//! * [`Connection`]: a router URL, a port-forward to the router in the cluster, or the pod IP.
//! * [`Error`]: one variant per failure a caller may act on, each one line when displayed.
//!
//! Which runtime surface each call uses: `run` without `env`/`cwd` is the legacy
//! `POST /execute` (port 8888); with them it is `process.v1.ProcessService/Execute` (gRPC, 9090),
//! and `run_streaming` is `ProcessService/Start`. Files go to sandboxd's REST API (`/v1/files`,
//! 8080), except `exists`, which asks the legacy `/exists` (see [`Sandbox::exists`]). See
//! `docs/client.md` for the mapping to the Python SDK.

mod claim;
mod client;
mod command;
mod connection;
mod error;
mod files;
mod http;
mod portforward;
mod sandbox;
mod watch;

pub use claim::{
    CLAIM_NAME_PREFIX, CREATED_BY, CreateOptions, DEFAULT_NAMESPACE, DEFAULT_READY_TIMEOUT,
};
pub use client::{RESOLVE_TIMEOUT, SandboxClient};
pub use command::{CommandResult, OutputEvent, OutputStream, RunOptions, TIMED_OUT_EXIT_CODE};
pub use connection::{Connection, GRPC_PORT, LEGACY_PORT, REST_PORT, ROUTER_NAMESPACE, headers};
pub use error::{Error, Result};
pub use files::{FileEntry, FileKind};
pub use portforward::{ROUTER_SERVICE, ROUTER_SERVICE_PORT};
pub use sandbox::{ByteStream, MODE_TIMEOUT, Sandbox};
