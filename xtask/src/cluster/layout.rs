//! Where the local cluster keeps its files, and the loopback ports it listens on.

use std::path::{Path, PathBuf};

use crate::workspace;

/// The Kubernetes release the control plane is built from (see tests/cluster/go.mod).
pub const KUBE_VERSION: &str = "v1.36.3";

/// Loopback ports of the components; all bind 127.0.0.1 only. `AGENT_SANDBOX_PORT_OFFSET=N` adds N to
/// each, so that two checkouts can run a cluster each.
pub mod ports {
    fn offset(port: u16) -> u16 {
        let extra = std::env::var("AGENT_SANDBOX_PORT_OFFSET")
            .ok()
            .and_then(|v| v.trim().parse::<u16>().ok())
            .unwrap_or(0);
        port.saturating_add(extra)
    }

    /// etcd client URL.
    pub fn etcd_client() -> u16 {
        offset(23790)
    }
    /// etcd peer URL (single member, but etcd always listens on one).
    pub fn etcd_peer() -> u16 {
        offset(23800)
    }
    /// kube-apiserver secure port.
    pub fn apiserver() -> u16 {
        offset(26443)
    }
    /// kube-controller-manager secure (health/metrics) port.
    pub fn controller_manager() -> u16 {
        offset(20257)
    }
    /// kube-scheduler secure (health/metrics) port.
    pub fn scheduler() -> u16 {
        offset(20259)
    }
    /// kwok health/metrics port (plain HTTP).
    pub fn kwok() -> u16 {
        offset(20247)
    }
    /// The real node's kubelet API (exec, logs) on 127.0.0.1.
    pub fn kubelet() -> u16 {
        offset(20250)
    }
    /// The kubelet's plain-HTTP /healthz.
    pub fn kubelet_healthz() -> u16 {
        offset(20248)
    }
    /// kube-proxy's plain-HTTP /healthz.
    pub fn kube_proxy_healthz() -> u16 {
        offset(20256)
    }
    /// kube-proxy's metrics.
    pub fn kube_proxy_metrics() -> u16 {
        offset(20249)
    }
    /// CoreDNS's /health.
    pub fn coredns_health() -> u16 {
        offset(20180)
    }
    /// CoreDNS's /ready.
    pub fn coredns_ready() -> u16 {
        offset(20181)
    }
    /// containerd's CRI streaming server (exec, attach, port-forward), which the kubelet proxies.
    pub fn containerd_streaming() -> u16 {
        offset(20010)
    }
    /// The router `cargo xtask demo` runs as a host process (what the README's Python snippet
    /// connects to).
    pub fn demo_router() -> u16 {
        offset(28080)
    }
}

/// The Service ClusterIP range of the API server and kube-proxy.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The `kubernetes` Service's ClusterIP (the first of [`SERVICE_CIDR`]): in-cluster clients dial it.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// The static bearer token of the cluster's admin user (group system:masters).
pub const ADMIN_TOKEN: &str = "agent-sandbox-local-admin-token";

/// Paths of the cluster's state under target/cluster/.
pub struct Layout {
    /// target/cluster/: everything `down` removes.
    pub dir: PathBuf,
}

impl Layout {
    /// The layout of this workspace's cluster.
    pub fn new() -> Self {
        Self {
            dir: workspace::root().join("target").join("cluster"),
        }
    }

    /// Admin kubeconfig used by every client and component.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Certificates, keys and the token file.
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// A file under pki/.
    pub fn pki_file(&self, name: &str) -> PathBuf {
        self.pki().join(name)
    }

    /// etcd's data directory.
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd-data")
    }

    /// Log file of a component.
    pub fn log(&self, component: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{component}.log"))
    }

    /// PID file of a component.
    pub fn pid(&self, component: &str) -> PathBuf {
        self.dir.join("pids").join(format!("{component}.pid"))
    }

    /// Generated configuration files (scheduler config, kwok stages, bootstrap manifests).
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.dir.join("config").join(name)
    }

    /// Creates the directories the components write to.
    pub fn create_dirs(&self) -> anyhow::Result<()> {
        for sub in ["pki", "logs", "pids", "config"] {
            create_dir(&self.dir.join(sub))?;
        }
        Ok(())
    }
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}
