//! `agent-sandbox-testkit`: what every end-to-end suite of agent-sandbox-rs shares.
//!
//! * [`controller`]: the real controller binary as a process; [`router`]: the router binary as one;
//!   [`process`]: what both share (binary lookup, log, stop);
//! * [`cluster`]: find (or start, via `cargo xtask cluster up`) the local control plane once per run;
//! * [`TestEnv`]: a unique namespace per test, deleted afterwards, with component logs dumped on failure;
//! * [`crds`]: install our CRDs from deploy/crds;
//! * [`wait`]: watch-based waits with a timeout (never sleeps);
//! * [`kubectl`]: `kubectl exec` into a real Pod's container, with a timeout.

pub mod cluster;
pub mod controller;
pub mod crds;
mod env;
pub mod etcd;
pub mod fixtures;
pub mod helm;
pub mod http;
pub mod kubectl;
pub mod logs;
pub mod manifests;
pub mod process;
pub mod router;
pub mod wait;
mod workspace;

pub use env::{NAMESPACE_LABEL, TestEnv, create_labelled_namespace};
pub use workspace::workspace_root;

/// Annotation that makes kwok end a Running pod: value `Succeeded` (exit 0) or `Failed` (exit 1).
/// Must match the stages written by `cargo xtask cluster up` (xtask/src/cluster/manifests.rs).
pub const FINISH_ANNOTATION: &str = "agent-sandbox.test/finish";
