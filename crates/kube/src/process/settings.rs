//! Everything the controller process needs to run, as the binary's flags describe it.

use std::net::SocketAddr;

use crate::controllers::extensions::ExtensionSettings;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
}

/// What the controllers themselves need, whoever runs them: the controller process, or a binary of
/// your own through [`crate::Controllers`].
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Cluster DNS domain for `status.serviceFQDN`.
    pub cluster_domain: String,
    /// Maximum concurrent Sandbox reconciles.
    pub concurrent_workers: u16,
    /// Watch only Pods and Services carrying the name-hash label.
    pub scoped_child_caches: bool,
    /// This replica's identity (lease holder, event reporting instance).
    pub identity: String,
    /// `None` runs the Sandbox controller only; `Some` adds the SandboxTemplate, SandboxWarmPool and
    /// SandboxClaim controllers.
    pub extensions: Option<ExtensionSettings>,
}

impl Default for ControllerSettings {
    /// The binary's defaults: `cluster.local`, 100 Sandbox workers, unscoped caches, the extension
    /// controllers on with their defaults, and [`replica_identity`].
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".to_owned(),
            concurrent_workers: 100,
            scoped_child_caches: false,
            identity: replica_identity(),
            extensions: Some(ExtensionSettings::default()),
        }
    }
}

/// This replica's identity: the Pod name (`POD_NAME`, else the host name) plus a per-process
/// suffix, so two processes on one host never share a lease identity.
pub fn replica_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent-sandbox-controller".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{}-{nanos:08x}", std::process::id())
}

/// Everything the controller process needs to run: the controllers' settings, where it serves its
/// probes and metrics, and its leader election.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What the controllers need.
    pub controllers: ControllerSettings,
    /// Address of `/metrics` (port 0 picks one).
    pub metrics_address: SocketAddr,
    /// Address of `/healthz` and `/readyz` (port 0 picks one).
    pub health_address: SocketAddr,
    /// `None` runs without leader election.
    pub leader_election: Option<LeaderElection>,
}
