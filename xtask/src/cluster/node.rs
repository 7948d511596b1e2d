//! The local cluster's real node, `node-0`: containerd v2 with runc and gVisor, a kubelet registered
//! with the API server, the CNI bridge, kube-proxy and CoreDNS, all run as plain processes beside the
//! control plane. See docs/local-cluster.md ("The real node").

pub mod build;
pub mod config;
pub mod host;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};

use super::build::Binaries;
use super::layout::ports;
use super::process;
use config::{NODE_NAME, NodeLayout};

/// The node's processes in start order: name (for log and PID files) and what answers its probe.
pub const COMPONENTS: [&str; 4] = ["containerd", "coredns", "kubelet", "kube-proxy"];

/// Starts the real node next to a running control plane; on error the caller stops everything.
pub fn up(bins: &Binaries) -> anyhow::Result<()> {
    let started = Instant::now();
    let node_bins = build::ensure()?;
    let node = NodeLayout::new();
    node.create_dirs()?;
    let layout = &node.cluster;
    for (file, text) in [
        ("containerd.toml", config::containerd(&node, &node_bins)),
        ("runsc.toml", config::runsc(&node)),
        ("kubelet.yaml", config::kubelet(&node)),
        ("kube-proxy.yaml", config::kube_proxy(&node)),
        ("Corefile", config::corefile(&node)),
        ("runtimeclasses.yaml", config::runtime_classes()),
    ] {
        std::fs::write(layout.config_file(file), text)
            .with_context(|| format!("writing {file}"))?;
    }
    std::fs::write(
        node.cni_conf().join("10-agent-sandbox.conflist"),
        config::cni(&node),
    )
    .context("writing the CNI configuration")?;
    host::prepare(&node)?;

    // containerd finds its shims (runc's and gVisor's) and runsc on PATH.
    let path = format!(
        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        node_bins.node_bin.display(),
        node_bins.gvisor_bin.display()
    );
    let containerd_args = vec![format!(
        "--config={}",
        layout.config_file("containerd.toml").display()
    )];
    start(
        &node,
        "containerd",
        &node_bins.node("containerd"),
        &containerd_args,
        &[("PATH", path.as_str())],
        Duration::from_secs(60),
    )?;
    let archives = crate::images::ensure_all(&node_bins.node("pause"))?;
    crate::images::import(&node_bins.node("ctr"), &node.containerd_socket(), &archives)?;

    let corefile = vec![
        "-conf".to_string(),
        layout.config_file("Corefile").display().to_string(),
    ];
    start(
        &node,
        "coredns",
        &bins.program("coredns"),
        &corefile,
        &[],
        Duration::from_secs(60),
    )?;
    start(
        &node,
        "kubelet",
        &bins.program("kubelet"),
        &config::kubelet_args(&node),
        &[("PATH", path.as_str())],
        Duration::from_secs(90),
    )?;
    let proxy_args = vec![format!(
        "--config={}",
        layout.config_file("kube-proxy.yaml").display()
    )];
    start(
        &node,
        "kube-proxy",
        &bins.program("kube-proxy"),
        &proxy_args,
        &[],
        Duration::from_secs(60),
    )?;
    host::keep_firewall_first()?;
    hostcmd::stdout(
        kubectl(bins, &node)
            .args(["apply", "-f"])
            .arg(layout.config_file("runtimeclasses.yaml")),
    )
    .context("applying the RuntimeClasses")?;
    hostcmd::stdout(kubectl(bins, &node).args([
        "wait",
        "--for=condition=Ready",
        &format!("node/{NODE_NAME}"),
        "--timeout=120s",
    ]))
    .context("waiting for node-0 to become Ready")
    .map_err(|e| {
        e.context(format!(
            "kubelet log:\n{}",
            process::log_tail(layout, "kubelet", 30)
        ))
    })?;
    eprintln!(
        "[cluster] real node {NODE_NAME} Ready in {:.1}s (containerd, runc, gVisor, CoreDNS, kube-proxy)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn kubectl(bins: &Binaries, node: &NodeLayout) -> Command {
    let mut cmd = Command::new(bins.program("kubectl"));
    cmd.arg("--kubeconfig").arg(node.cluster.kubeconfig());
    cmd
}

fn start(
    node: &NodeLayout,
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut child = process::spawn(&node.cluster, name, program, args, env)?;
    let deadline = Instant::now() + timeout;
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
                timeout.as_secs(),
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
        let removed = Command::new(bins.node("crictl"))
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", node.containerd_socket().display()))
            .args(["--timeout", "60s", "rmp", "--all", "--force"])
            .output();
        if let Ok(out) = removed
            && !out.status.success()
        {
            eprintln!(
                "[cluster] removing the node's pods: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    for name in ["kube-proxy", "coredns", "containerd"] {
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
