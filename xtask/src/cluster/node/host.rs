//! What the real node changes on this machine, and how `down` puts every bit of it back: sysctls,
//! the pods' bridge, the firewall that keeps pod traffic on the machine, iptables chains added by the
//! kubelet, kube-proxy and CNI, mounts, network namespaces, cgroups and leftover processes.

mod firewall;
mod leftovers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::config::{BRIDGE, CONTAINERD_RUN_DIR, GATEWAY, NodeLayout, POD_PREFIX, RUN_DIR};
use firewall::{chains, remove_chains};
use leftovers::{
    NETNS_DIR, kill_leftovers, mount_roots, mounts_under, remove_cni_netns, remove_pod_cgroups,
    unmount_under,
};

pub use firewall::keep_firewall_first;

/// Sysctls that the node's programs (or we) may change. Their values are saved before the node starts
/// and written back by `down`. `net/ipv4/ip_forward` comes first: writing it resets every interface's
/// `forwarding`, which the later entries then restore exactly.
const SAVED_SYSCTLS: [&str; 15] = [
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// What the machine looked like before the node started; written first, read by `down`.
fn state_file(node: &NodeLayout) -> PathBuf {
    node.cluster.dir.join("node-host-state.json")
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key)
}

/// Records the machine's state, then enables forwarding for the pods, creates their bridge and the
/// firewall. Called before any node program starts.
pub fn prepare(node: &NodeLayout) -> anyhow::Result<()> {
    require_tools()?;
    let mut sysctls = BTreeMap::new();
    for key in SAVED_SYSCTLS {
        if let Ok(value) = std::fs::read_to_string(sysctl_path(key)) {
            sysctls.insert(key.to_string(), value.trim().to_string());
        }
    }
    let state = json!({
        "sysctls": sysctls,
        "containerd_run_dir_existed": Path::new(CONTAINERD_RUN_DIR).exists(),
        "netns_dir_existed": Path::new(NETNS_DIR).exists(),
        "mounts": mounts_under(&[PathBuf::from(NETNS_DIR)]),
        "chains": chains()?,
        "ipsets": ipsets(),
    });
    std::fs::write(state_file(node), serde_json::to_vec_pretty(&state)?)
        .context("writing the node's host state")?;

    // Pods reach Services (DNAT on this host) only if the host routes between its interfaces; the
    // firewall below allows routing to and from the bridge and nothing else.
    write_sysctl("net/ipv4/ip_forward", "1")?;
    write_sysctl("net/bridge/bridge-nf-call-iptables", "1")?;
    if !Path::new("/sys/class/net").join(BRIDGE).exists() {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    ip(&[
        "addr",
        "replace",
        &format!("{GATEWAY}/{POD_PREFIX}"),
        "dev",
        BRIDGE,
    ])?;
    ip(&["link", "set", BRIDGE, "up"])?;
    // On the bridge only (and gone with it at `down`): lets the firewall's DNAT hand pods'
    // connections to the `kubernetes` Service to the API server on loopback (see the firewall).
    write_sysctl(&format!("net/ipv4/conf/{BRIDGE}/route_localnet"), "1")?;
    firewall::install()
}

fn require_tools() -> anyhow::Result<()> {
    for (tool, package) in [
        ("iptables", "iptables"),
        ("ip", "iproute2"),
        ("conntrack", "conntrack"),
        ("ipset", "ipset"),
        ("runc", "runc"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            bail!(
                "the real node needs `{tool}`: install the Debian package {package} \
                 (`.ci/run` does), or start a kwok-only cluster with `--no-real-node`"
            );
        }
    }
    if !Path::new("/usr/sbin/runc").exists() {
        bail!(
            "the real node runs containers with Debian's runc at /usr/sbin/runc: install the package runc"
        );
    }
    Ok(())
}

/// Puts back everything [`prepare`] and the node's programs changed. Every step runs even if an
/// earlier one failed; the failures are reported together.
pub fn restore(node: &NodeLayout) -> anyhow::Result<()> {
    let Ok(bytes) = std::fs::read(state_file(node)) else {
        return Ok(());
    };
    let state: serde_json::Value =
        serde_json::from_slice(&bytes).context("reading the node's host state")?;
    let mut problems = Vec::new();
    let mut step = |what: &str, result: anyhow::Result<()>| {
        if let Err(e) = result {
            problems.push(format!("{what}: {e:#}"));
        }
    };
    step("leftover processes", kill_leftovers());
    let kept: Vec<PathBuf> = saved_strings(&state, "mounts")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    step("mounts", unmount_under(&mount_roots(node), &kept));
    step("network namespaces", remove_cni_netns());
    step("cgroups", remove_pod_cgroups());
    step("iptables", remove_chains(&saved_strings(&state, "chains")));
    // After the chains: a set still referenced by a rule cannot be destroyed.
    step(
        "ipsets",
        destroy_new_ipsets(&saved_strings(&state, "ipsets")),
    );
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        step("bridge", ip(&["link", "del", BRIDGE]));
    }
    if let Some(sysctls) = state["sysctls"].as_object() {
        for key in SAVED_SYSCTLS {
            if let Some(value) = sysctls.get(key).and_then(|v| v.as_str()) {
                step(key, write_sysctl(key, value));
            }
        }
    }
    for dir in created_dirs(&state).iter().filter(|d| d.exists()) {
        step(
            &dir.display().to_string(),
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display())),
        );
    }
    let _ = std::fs::remove_file(state_file(node));
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("could not restore everything: {}", problems.join("; "))
    }
}

/// The strings saved under `key` in the host state.
fn saved_strings(state: &Value, key: &str) -> Vec<String> {
    state[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The directories the node created: its run directory, the hostPath volumes, and containerd's and
/// the network namespaces' when they did not exist before.
fn created_dirs(state: &Value) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(RUN_DIR), PathBuf::from("/tmp/hostpath_pv")];
    if !state["netns_dir_existed"].as_bool().unwrap_or(true) {
        dirs.push(PathBuf::from(NETNS_DIR));
    }
    if !state["containerd_run_dir_existed"]
        .as_bool()
        .unwrap_or(true)
    {
        dirs.push(PathBuf::from(CONTAINERD_RUN_DIR));
    }
    dirs
}

/// The names of the ipsets that exist now (the network-policy controller keeps pod addresses in
/// sets of its own).
fn ipsets() -> Vec<String> {
    hostcmd::output("ipset", &["list", "-name"])
        .map(|out| out.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Destroys every ipset that did not exist before the node started.
fn destroy_new_ipsets(before: &[String]) -> anyhow::Result<()> {
    for set in ipsets().iter().filter(|s| !before.contains(s)) {
        hostcmd::output("ipset", &["destroy", set])
            .with_context(|| format!("destroying ipset {set}"))?;
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(sysctl_path(key), value).with_context(|| format!("setting {key}={value}"))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    hostcmd::output("ip", args).map(|_| ())
}
