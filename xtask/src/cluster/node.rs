//! The local cluster's real node, `node-0`: containerd v2 with runc and gVisor, a kubelet registered
//! with the API server, the CNI bridge, kube-proxy and CoreDNS, all run as plain processes beside the
//! control plane. See docs/local-cluster.md ("The real node").

pub mod build;
pub mod config;
pub mod host;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};

use super::build::Binaries;
use super::layout::ports;
use super::process;
use config::{NODE_NAME, NodeLayout};

/// The node's processes in start order: name (for log and PID files) and what answers its probe.
pub const COMPONENTS: [&str; 5] = [
    "containerd",
    "coredns",
    "kubelet",
    "kube-proxy",
    NETWORK_POLICY,
];

/// kube-router's network-policy controller alone (a program of the multi-call binary): enforces
/// NetworkPolicies with iptables and ipsets, which the CNI bridge does not.
const NETWORK_POLICY: &str = "kube-router-netpol";

/// The filter chain the network-policy controller creates on its first sync: its probe.
const NETWORK_POLICY_CHAIN: &str = "KUBE-ROUTER-FORWARD";

/// Starts the real node next to a running control plane; on error the caller stops everything.
pub fn up(bins: &Binaries) -> anyhow::Result<()> {
    let started = Instant::now();
    let node_bins = build::ensure()?;
    let node = NodeLayout::new();
    node.create_dirs()?;
    write_config(&node, &node_bins)?;
    host::prepare(&node)?;
    start_daemons(bins, &node, &node_bins)?;
    host::keep_firewall_first()?;
    register(bins, &node)?;
    // It reads its Node object at start, so after the kubelet registered it.
    start(
        &node,
        &Daemon {
            name: NETWORK_POLICY,
            program: bins.program(NETWORK_POLICY),
            args: config::network_policy_args(&node),
            env: &[],
            healthy_within: Duration::from_secs(60),
        },
    )?;
    eprintln!(
        "[cluster] real node {NODE_NAME} Ready in {:.1}s (containerd, runc, gVisor, CoreDNS, kube-proxy, \
         NetworkPolicy)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the configuration of every node program.
fn write_config(node: &NodeLayout, node_bins: &build::NodeBinaries) -> anyhow::Result<()> {
    for (file, text) in [
        ("containerd.toml", config::containerd(node, node_bins)),
        ("runsc.toml", config::runsc(node)),
        ("kubelet.yaml", config::kubelet(node)),
        ("kube-proxy.yaml", config::kube_proxy(node)),
        ("Corefile", config::corefile(node)),
        ("runtimeclasses.yaml", config::runtime_classes()),
    ] {
        std::fs::write(node.cluster.config_file(file), text)
            .with_context(|| format!("writing {file}"))?;
    }
    std::fs::write(
        node.cni_conf().join("10-agent-sandbox.conflist"),
        config::cni(node),
    )
    .context("writing the CNI configuration")
}

/// A node program, started as a process and awaited until its probe answers.
struct Daemon<'a> {
    name: &'a str,
    program: PathBuf,
    args: Vec<String>,
    env: &'a [(&'a str, &'a str)],
    healthy_within: Duration,
}

/// Starts containerd (and imports the images into it), CoreDNS, the kubelet and kube-proxy, each
/// healthy before the next.
fn start_daemons(
    bins: &Binaries,
    node: &NodeLayout,
    node_bins: &build::NodeBinaries,
) -> anyhow::Result<()> {
    let config_flag = |file: &str| {
        vec![format!(
            "--config={}",
            node.cluster.config_file(file).display()
        )]
    };
    // containerd finds its shims (runc's and gVisor's) and runsc on PATH.
    let path = format!(
        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        node_bins.node_bin.display(),
        node_bins.gvisor_bin.display()
    );
    let with_path = [("PATH", path.as_str())];
    let minute = Duration::from_secs(60);
    start(
        node,
        &Daemon {
            name: "containerd",
            program: node_bins.node("containerd"),
            args: config_flag("containerd.toml"),
            env: &with_path,
            healthy_within: minute,
        },
    )?;
    let archives = crate::images::ensure_all(&node_bins.node("pause"))?;
    crate::images::import(&node_bins.node("ctr"), &node.containerd_socket(), &archives)?;
    let corefile = node.cluster.config_file("Corefile").display().to_string();
    for daemon in [
        Daemon {
            name: "coredns",
            program: bins.program("coredns"),
            args: vec!["-conf".to_string(), corefile],
            env: &[],
            healthy_within: minute,
        },
        Daemon {
            name: "kubelet",
            program: bins.program("kubelet"),
            args: config::kubelet_args(node),
            env: &with_path,
            healthy_within: Duration::from_secs(90),
        },
        Daemon {
            name: "kube-proxy",
            program: bins.program("kube-proxy"),
            args: config_flag("kube-proxy.yaml"),
            env: &[],
            healthy_within: minute,
        },
    ] {
        start(node, &daemon)?;
    }
    Ok(())
}

/// Applies the RuntimeClasses and waits until the kubelet has registered the node as Ready.
fn register(bins: &Binaries, node: &NodeLayout) -> anyhow::Result<()> {
    hostcmd::stdout(
        kubectl(bins, node)
            .args(["apply", "-f"])
            .arg(node.cluster.config_file("runtimeclasses.yaml")),
    )
    .context("applying the RuntimeClasses")?;
    hostcmd::stdout(kubectl(bins, node).args([
        "wait",
        "--for=condition=Ready",
        &format!("node/{NODE_NAME}"),
        "--timeout=120s",
    ]))
    .context("waiting for node-0 to become Ready")
    .map_err(|e| {
        e.context(format!(
            "kubelet log:\n{}",
            process::log_tail(&node.cluster, "kubelet", 30)
        ))
    })?;
    Ok(())
}

fn kubectl(bins: &Binaries, node: &NodeLayout) -> Command {
    let mut cmd = Command::new(bins.program("kubectl"));
    cmd.arg("--kubeconfig").arg(node.cluster.kubeconfig());
    cmd
}

fn start(node: &NodeLayout, daemon: &Daemon) -> anyhow::Result<()> {
    let name = daemon.name;
    let t = Instant::now();
    let mut child = process::spawn(
        &node.cluster,
        name,
        &daemon.program,
        &daemon.args,
        daemon.env,
    )?;
    let deadline = Instant::now() + daemon.healthy_within;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited during startup ({status}). Last lines of {}:\n{}",
                node.cluster.log(name).display(),
                process::log_tail(&node.cluster, name, 25)
            );
        }
        match probe(node, name) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => bail!(
                "{name} did not become healthy within {}s ({e:#}). Last lines of {}:\n{}",
                daemon.healthy_within.as_secs(),
                node.cluster.log(name).display(),
                process::log_tail(&node.cluster, name, 25)
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    eprintln!(
        "[cluster] {name} healthy after {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One health probe of a node component.
pub fn probe(node: &NodeLayout, name: &str) -> anyhow::Result<()> {
    let (port, path) = match name {
        "containerd" => {
            let bins = build::cached()?;
            hostcmd::stdout(Command::new(bins.node("crictl")).args([
                "--runtime-endpoint",
                &format!("unix://{}", node.containerd_socket().display()),
                "--timeout",
                "2s",
                "version",
            ]))?;
            return Ok(());
        }
        "coredns" => (ports::coredns_ready(), "/ready"),
        "kubelet" => (ports::kubelet_healthz(), "/healthz"),
        "kube-proxy" => (ports::kube_proxy_healthz(), "/healthz"),
        // It serves no health endpoint here (kube-router's would listen on every interface): its
        // chain appears once it has synced the policies.
        NETWORK_POLICY => {
            hostcmd::output(
                "iptables",
                &["-w", "-t", "filter", "-n", "-L", NETWORK_POLICY_CHAIN],
            )
            .with_context(|| format!("no {NETWORK_POLICY_CHAIN} chain yet"))?;
            return Ok(());
        }
        other => bail!("unknown node component {other}"),
    };
    let (code, body) = process::http_get(port, path)?;
    if code != 200 {
        bail!("{path} answered {code}: {}", body.trim());
    }
    Ok(())
}

/// Stops the node's pods and programs and puts the machine back as it was. Safe to call when the
/// node never started (or only partly).
pub fn down() -> anyhow::Result<()> {
    let node = NodeLayout::new();
    let layout = &node.cluster;
    let stop = |name: &str| match process::stop(layout, name, Duration::from_secs(10)) {
        Ok(true) => eprintln!("[cluster] stopped {name}"),
        Ok(false) => {}
        Err(e) => eprintln!("[cluster] could not stop {name}: {e:#}"),
    };
    stop("kubelet");
    // With the kubelet gone nothing restarts them: stop and remove every pod through CRI, which also
    // releases their network (CNI DEL) and lets the shims exit.
    if process::running_pid(layout, "containerd").is_some()
        && let Ok(bins) = build::cached()
    {
        let removed = hostcmd::stdout(
            Command::new(bins.node("crictl"))
                .arg("--runtime-endpoint")
                .arg(format!("unix://{}", node.containerd_socket().display()))
                .args(["--timeout", "60s", "rmp", "--all", "--force"]),
        );
        if let Err(e) = removed {
            eprintln!("[cluster] removing the node's pods: {e:#}");
        }
    }
    for name in [NETWORK_POLICY, "kube-proxy", "coredns", "containerd"] {
        stop(name);
    }
    host::restore(&node)?;
    if node.dir.exists() {
        std::fs::remove_dir_all(&node.dir)
            .with_context(|| format!("removing {}", node.dir.display()))?;
    }
    Ok(())
}

/// Health of the node's components, for `status`.
pub fn health() -> Vec<(&'static str, Option<u32>, anyhow::Result<()>)> {
    let node = NodeLayout::new();
    COMPONENTS
        .iter()
        .map(|name| {
            let pid = process::running_pid(&node.cluster, name);
            let probe = match pid {
                None => Err(anyhow::anyhow!("not running")),
                Some(_) => probe(&node, name),
            };
            (*name, pid, probe)
        })
        .collect()
}
