//! Kubernetes adapter of the Agent Sandbox controllers. Decisions live in `agent-sandbox-core` and
//! `agent-sandbox-warmpool`; this crate observes, writes and reports. Three layers, each importing
//! only from the ones below it:
//!
//! * [`process`]: the controller process — servers, leadership, the controllers, shutdown;
//! * [`controllers`]: the Sandbox, SandboxTemplate, SandboxWarmPool and SandboxClaim controllers, each
//!   triggers → pass → writes;
//! * [`runtime`] and [`metrics`]: what every controller is built on — typed errors and the retry
//!   policy, the write helper, watches and their caches, Events, the control loop, the registry.
//!
//! To run the controllers inside a binary of your own, see [`Controllers`] and docs/embedding.md;
//! [`run`] is the whole controller process (probes, metrics, leader election, controllers) that
//! `agent-sandbox-controller` runs.

pub mod controllers;
pub mod metrics;
pub mod process;
pub mod runtime;

pub use controllers::extensions::ExtensionSettings;
pub use process::config::{ConfigError, cluster_config};
pub use process::embedded::Controllers;
pub use process::error::Error;
pub use process::run::run;
pub use process::servers::Readiness;
pub use process::settings::{ControllerSettings, LeaderElection, Settings, replica_identity};
pub use process::signal::shutdown_signal;
