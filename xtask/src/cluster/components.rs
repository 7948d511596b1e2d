//! The command line of each control-plane component.

use std::path::Path;

use super::build::Binaries;
use super::layout::{Layout, SERVICE_CIDR, ports};

/// One process of the control plane.
pub struct Component {
    /// Name used for its log and PID files.
    pub name: &'static str,
    /// Program inside the multi-call binary.
    pub program: &'static str,
    /// Command-line arguments.
    pub args: Vec<String>,
}

fn arg(flag: &str, value: impl AsRef<str>) -> String {
    format!("--{flag}={}", value.as_ref())
}

fn path_arg(flag: &str, value: &Path) -> String {
    arg(flag, value.display().to_string())
}

/// etcd: single member, loopback only, fsync off (the data is thrown away anyway).
pub fn etcd(layout: &Layout) -> Component {
    let client = format!("http://127.0.0.1:{}", ports::etcd_client());
    let peer = format!("http://127.0.0.1:{}", ports::etcd_peer());
    Component {
        name: "etcd",
        program: "etcd",
        args: vec![
            arg("name", "local"),
            path_arg("data-dir", &layout.etcd_data()),
            arg("listen-client-urls", &client),
            arg("advertise-client-urls", &client),
            arg("listen-peer-urls", &peer),
            arg("initial-advertise-peer-urls", &peer),
            arg("initial-cluster", format!("local={peer}")),
            arg("unsafe-no-fsync", "true"),
            arg("quota-backend-bytes", "8589934592"),
            arg("log-level", "warn"),
        ],
    }
}

/// kube-apiserver: RBAC, static admin token, service-account keys, raised in-flight limits.
pub fn apiserver(layout: &Layout) -> Component {
    let pki = |name: &str| layout.pki_file(name);
    Component {
        name: "kube-apiserver",
        program: "kube-apiserver",
        args: vec![
            arg(
                "etcd-servers",
                format!("http://127.0.0.1:{}", ports::etcd_client()),
            ),
            arg("bind-address", "127.0.0.1"),
            arg("advertise-address", "127.0.0.1"),
            arg("secure-port", ports::apiserver().to_string()),
            path_arg("cert-dir", &layout.pki()),
            path_arg("tls-cert-file", &pki("apiserver.crt")),
            path_arg("tls-private-key-file", &pki("apiserver.key")),
            path_arg("client-ca-file", &pki("ca.crt")),
            path_arg("token-auth-file", &pki("tokens.csv")),
            arg("authorization-mode", "RBAC"),
            arg(
                "service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
            ),
            path_arg("service-account-key-file", &pki("sa.pub")),
            path_arg("service-account-signing-key-file", &pki("sa.key")),
            arg("service-cluster-ip-range", SERVICE_CIDR),
            arg("endpoint-reconciler-type", "none"),
            // The real node's name is not in any DNS; its InternalIP is the address to dial.
            arg("kubelet-preferred-address-types", "InternalIP"),
            arg("allow-privileged", "true"),
            arg("max-requests-inflight", "2000"),
            arg("max-mutating-requests-inflight", "1000"),
            arg("profiling", "false"),
            arg("v", "1"),
        ],
    }
}

/// kube-controller-manager: every default controller (garbage collector, namespace, service account
/// and token, PV binder, ...) plus the test-only host-path provisioner behind the default StorageClass.
pub fn controller_manager(layout: &Layout) -> Component {
    let kubeconfig = layout.kubeconfig();
    Component {
        name: "kube-controller-manager",
        program: "kube-controller-manager",
        args: vec![
            path_arg("kubeconfig", &kubeconfig),
            path_arg("authentication-kubeconfig", &kubeconfig),
            path_arg("authorization-kubeconfig", &kubeconfig),
            arg("bind-address", "127.0.0.1"),
            arg("secure-port", ports::controller_manager().to_string()),
            path_arg("cert-dir", &layout.dir.join("controller-manager-certs")),
            arg("leader-elect", "false"),
            arg("controllers", "*"),
            path_arg(
                "service-account-private-key-file",
                &layout.pki_file("sa.key"),
            ),
            path_arg("root-ca-file", &layout.pki_file("ca.crt")),
            arg("enable-hostpath-provisioner", "true"),
            arg("kube-api-qps", "1000"),
            arg("kube-api-burst", "2000"),
            arg("v", "1"),
        ],
    }
}

/// kube-scheduler, configured by a file (client QPS, no leader election).
pub fn scheduler(layout: &Layout) -> Component {
    let kubeconfig = layout.kubeconfig();
    Component {
        name: "kube-scheduler",
        program: "kube-scheduler",
        args: vec![
            path_arg("config", &layout.config_file("scheduler.yaml")),
            path_arg("authentication-kubeconfig", &kubeconfig),
            path_arg("authorization-kubeconfig", &kubeconfig),
            arg("bind-address", "127.0.0.1"),
            arg("secure-port", ports::scheduler().to_string()),
            path_arg("cert-dir", &layout.dir.join("scheduler-certs")),
            arg("v", "1"),
        ],
    }
}

/// The scheduler's configuration file.
pub fn scheduler_config(layout: &Layout) -> String {
    format!(
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {}
  qps: 1000
  burst: 2000
leaderElection:
  leaderElect: false
",
        layout.kubeconfig().display()
    )
}

/// kwok: drives the fake nodes (annotated `kwok.x-k8s.io/node=fake`) and their pods through our stages.
pub fn kwok(layout: &Layout) -> Component {
    Component {
        name: "kwok",
        program: "kwok",
        args: vec![
            path_arg("kubeconfig", &layout.kubeconfig()),
            path_arg("config", &layout.config_file("kwok.yaml")),
            arg("manage-all-nodes", "false"),
            arg(
                "manage-nodes-with-annotation-selector",
                "kwok.x-k8s.io/node=fake",
            ),
            arg("cidr", "10.244.0.0/16"),
            arg("node-ip", "10.0.0.1"),
            arg("node-lease-duration-seconds", "40"),
            arg("server-address", format!("127.0.0.1:{}", ports::kwok())),
        ],
    }
}

/// Every component in start order.
pub fn all(layout: &Layout) -> Vec<Component> {
    vec![
        etcd(layout),
        apiserver(layout),
        controller_manager(layout),
        scheduler(layout),
        kwok(layout),
    ]
}

/// Full path of the program a component runs.
pub fn program_path(bins: &Binaries, component: &Component) -> std::path::PathBuf {
    bins.program(component.program)
}
