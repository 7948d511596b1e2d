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

/// Everything the controller process needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cluster DNS domain for `status.serviceFQDN`.
    pub cluster_domain: String,
    /// Maximum concurrent Sandbox reconciles.
    pub concurrent_workers: u16,
    /// Watch only Pods and Services carrying the name-hash label.
    pub scoped_child_caches: bool,
    /// Address of `/metrics` (port 0 picks one).
    pub metrics_address: SocketAddr,
    /// Address of `/healthz` and `/readyz` (port 0 picks one).
    pub health_address: SocketAddr,
    /// `None` runs without leader election.
    pub leader_election: Option<LeaderElection>,
    /// This replica's identity (lease holder, event reporting instance).
    pub identity: String,
    /// `None` runs the Sandbox controller only; `Some` adds the SandboxTemplate, SandboxWarmPool and
    /// SandboxClaim controllers.
    pub extensions: Option<ExtensionSettings>,
}
