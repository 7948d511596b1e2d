//! The real node's files: where it keeps its state, and the configuration of containerd, gVisor, the
//! CNI bridge, the kubelet, kube-proxy and CoreDNS.

use std::path::{Path, PathBuf};

use super::build::NodeBinaries;
use crate::cluster::layout::{Layout, SERVICE_CIDR, ports};

/// The real node's name.
pub const NODE_NAME: &str = "node-0";

/// Label and taint key of the real node: only pods that tolerate the taint run there, and the
/// `gvisor` and `runc` RuntimeClasses add that toleration (and a node selector) to every pod that
/// names them. kwok nodes stay untainted, so pods that name no runtime class stay fake.
pub const REAL_NODE_KEY: &str = "agent-sandbox.test/real-node";

/// The pods' network: a Linux bridge on this machine, never routed anywhere else.
pub const BRIDGE: &str = "asbr0";
/// The pods' addresses.
pub const POD_CIDR: &str = "10.88.0.0/16";
/// The bridge's own address: the pods' gateway and the address CoreDNS answers on.
pub const GATEWAY: &str = "10.88.0.1";
/// The prefix length of [`POD_CIDR`], for the bridge address.
pub const POD_PREFIX: u8 = 16;

/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Where the node keeps its state.
pub struct NodeLayout {
    /// target/cluster/node: the node's disk state (images, pod volumes, pod logs).
    pub dir: PathBuf,
    /// target/cluster: config, log and PID files like every component's.
    pub cluster: Layout,
}

/// Short-lived runtime state (sockets) under /run: unix socket paths must stay under 108 bytes,
/// which a checkout path cannot promise.
pub const RUN_DIR: &str = "/run/agent-sandbox";

/// The directory containerd's shims and gVisor keep state in (fixed by containerd and runsc).
pub const CONTAINERD_RUN_DIR: &str = "/run/containerd";

impl NodeLayout {
    /// The node layout of this workspace's cluster.
    pub fn new() -> Self {
        let cluster = Layout::new();
        Self {
            dir: cluster.dir.join("node"),
            cluster,
        }
    }

    /// containerd's gRPC socket (the CRI endpoint).
    pub fn containerd_socket(&self) -> PathBuf {
        Path::new(RUN_DIR).join("containerd.sock")
    }

    /// containerd's persistent root (content store, snapshots).
    pub fn containerd_root(&self) -> PathBuf {
        self.dir.join("containerd")
    }

    /// The kubelet's root directory (pod volumes are mounted below it).
    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.join("kubelet")
    }

    /// Container logs written by the kubelet.
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    /// CNI configuration directory.
    pub fn cni_conf(&self) -> PathBuf {
        self.dir.join("cni").join("net.d")
    }

    /// host-local IPAM's allocations.
    pub fn cni_ipam(&self) -> PathBuf {
        self.dir.join("cni").join("ipam")
    }

    /// gVisor's per-sandbox logs.
    pub fn runsc_logs(&self) -> PathBuf {
        self.cluster.dir.join("logs").join("runsc")
    }

    /// Creates the node's directories.
    pub fn create_dirs(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        for dir in [
            self.containerd_root(),
            self.kubelet_root(),
            self.pod_logs(),
            self.cni_conf(),
            self.cni_ipam(),
            self.runsc_logs(),
            PathBuf::from(RUN_DIR),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }
}

/// containerd's configuration: CRI with runc (Debian's) and runsc (gVisor) runtimes, the overlayfs
/// snapshotter, our pause image, the CNI plugins built with containerd.
pub fn containerd(node: &NodeLayout, bins: &NodeBinaries) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{run}/containerd"

[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = "{run}/containerd-debug.sock"
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "{stream}"
  enable_cdi = false
  # Root here has no CAP_SYS_RESOURCE, so no process may lower its oom_score_adj (the pause
  # container asks for -998); with this set, containerd never asks for less than its own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "{runsc_config}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
        root = node.containerd_root().display(),
        run = RUN_DIR,
        socket = node.containerd_socket().display(),
        pause = crate::images::Name::Pause.reference(),
        stream = ports::containerd_streaming(),
        runsc_config = node.cluster.config_file("runsc.toml").display(),
        cni_bin = bins.node_bin.display(),
        cni_conf = node.cni_conf().display(),
    )
}

/// Options of gVisor's shim and runsc: the systrap platform (no KVM in this VM), logs per sandbox.
pub fn runsc(node: &NodeLayout) -> String {
    format!(
        r#"log_level = "info"
log_path = "{logs}/%ID%/shim.log"
[runsc_config]
  platform = "systrap"
  debug-log = "{logs}/%ID%/"
"#,
        logs = node.runsc_logs().display()
    )
}

/// The CNI network: one bridge with host-local addresses; no masquerading, so a pod's packets keep
/// its address and the firewall ([`super::host`]) can recognise and drop any that would leave.
pub fn cni(node: &NodeLayout) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "agent-sandbox",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_CIDR}", "gateway": "{GATEWAY}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}],
        "dataDir": "{ipam}"
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
        ipam = node.cni_ipam().display()
    )
}

/// The kubelet: registered with the API server as [`NODE_NAME`], tainted, health on loopback,
/// cgroupfs on this cgroup v1 machine, cluster DNS on the bridge.
pub fn kubelet(node: &NodeLayout) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# On the bridge address, the node's InternalIP: the API server reaches it there for exec and logs
# (the kubelet refuses a loopback node IP). The firewall keeps pods away from it.
address: {GATEWAY}
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
containerRuntimeEndpoint: unix://{socket}
imageServiceEndpoint: unix://{socket}
cgroupDriver: cgroupfs
# This VM mounts cgroup v1 (hybrid); kubelet 1.35+ refuses v1 unless told.
failCgroupV1: false
failSwapOn: false
podLogsDir: {logs}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{GATEWAY}]
# Pods never inherit this machine's resolvers: only cluster.local names resolve.
resolvConf: ""
registerWithTaints:
- key: {REAL_NODE_KEY}
  value: "true"
  effect: NoSchedule
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
evictionHard: {{"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "100Mi"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
serializeImagePulls: false
"#,
        port = ports::kubelet(),
        healthz = ports::kubelet_healthz(),
        socket = node.containerd_socket().display(),
        logs = node.pod_logs().display(),
    )
}

/// The kubelet's command line (the configuration file carries the rest).
pub fn kubelet_args(node: &NodeLayout) -> Vec<String> {
    vec![
        format!(
            "--config={}",
            node.cluster.config_file("kubelet.yaml").display()
        ),
        format!("--kubeconfig={}", node.cluster.kubeconfig().display()),
        format!("--root-dir={}", node.kubelet_root().display()),
        format!("--cert-dir={}", node.dir.join("kubelet-pki").display()),
        format!("--hostname-override={NODE_NAME}"),
        format!("--node-ip={GATEWAY}"),
        format!("--node-labels={REAL_NODE_KEY}=true"),
        "--v=1".to_string(),
    ]
}

/// kube-proxy in iptables mode (IPVS does not exist here), told to leave every sysctl alone except
/// what Services need, with NodePorts only on the bridge address.
pub fn kube_proxy(node: &NodeLayout) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: {NODE_NAME}
clusterCIDR: {POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:{healthz}
metricsBindAddress: 127.0.0.1:{metrics}
nodePortAddresses: ["{GATEWAY}/32"]
clientConnection:
  kubeconfig: {kubeconfig}
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        healthz = ports::kube_proxy_healthz(),
        metrics = ports::kube_proxy_metrics(),
        kubeconfig = node.cluster.kubeconfig().display(),
    )
}

/// The network-policy controller's flags: the node it enforces for, the Services' range (traffic to
/// a ClusterIP is judged after kube-proxy's DNAT), IPv4 only, no metrics listener.
pub fn network_policy_args(node: &NodeLayout) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", node.cluster.kubeconfig().display()),
        format!("--hostname-override={NODE_NAME}"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--enable-ipv4=true".into(),
        "--enable-ipv6=false".into(),
        "--metrics-port=0".into(),
    ]
}

/// CoreDNS: answers the cluster domain from the API server on the bridge address; nothing else.
pub fn corefile(node: &NodeLayout) -> String {
    format!(
        r#".:53 {{
    bind {GATEWAY}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} agent-sandbox-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
}}
"#,
        health = ports::coredns_health(),
        ready = ports::coredns_ready(),
        kubeconfig = node.cluster.kubeconfig().display(),
    )
}

/// The RuntimeClasses of the real node: `gvisor` (handler `runsc`, upstream's name) and `runc`.
/// Each carries the real node's selector and toleration, so naming one is all a pod needs.
pub fn runtime_classes() -> String {
    [("gvisor", "runsc"), ("runc", "runc")]
        .iter()
        .map(|(name, handler)| {
            format!(
                r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: {name}
handler: {handler}
scheduling:
  nodeSelector:
    {REAL_NODE_KEY}: "true"
  tolerations:
  - key: {REAL_NODE_KEY}
    operator: Equal
    value: "true"
    effect: NoSchedule
"#
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}
