//! What the real node changes on this machine, and how `down` puts every bit of it back: sysctls,
//! the pods' bridge, the firewall that keeps pod traffic on the machine, iptables chains added by the
//! kubelet, kube-proxy and CNI, mounts, network namespaces, cgroups and leftover processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};
use serde_json::json;

use super::config::{
    BRIDGE, CONTAINERD_RUN_DIR, GATEWAY, NodeLayout, POD_CIDR, POD_PREFIX, RUN_DIR,
};
use crate::cluster::layout::SERVICE_CIDR;

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

/// Chain name prefixes of iptables chains the node adds: ours, the kubelet's and kube-proxy's, CNI's.
const CHAIN_PREFIXES: [&str; 3] = ["AGENT-SANDBOX-", "KUBE-", "CNI-"];

/// Our firewall chains and the built-in chain each is jumped to from.
const FIREWALL: [(&str, &str); 3] = [
    ("INPUT", "AGENT-SANDBOX-INPUT"),
    ("FORWARD", "AGENT-SANDBOX-FORWARD"),
    ("OUTPUT", "AGENT-SANDBOX-OUTPUT"),
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
    install_firewall()
}

fn require_tools() -> anyhow::Result<()> {
    for (tool, package) in [
        ("iptables", "iptables"),
        ("ip", "iproute2"),
        ("conntrack", "conntrack"),
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

/// The firewall: nothing from the pod network leaves through any interface but the bridge, nothing is
/// routed that does not come from or go to the bridge, and no packet for a pod or Service address
/// leaves the host through another interface (e.g. a ClusterIP no kube-proxy rule has claimed yet).
/// Pods reach the host itself only for DNS (CoreDNS on the bridge address) and to answer connections
/// the host opened; the kubelet's API on the same address stays out of their reach.
fn firewall_rules() -> Vec<(&'static str, Vec<String>)> {
    let v = |parts: &[&str]| parts.iter().map(ToString::to_string).collect::<Vec<_>>();
    let established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
    vec![
        (
            "AGENT-SANDBOX-INPUT",
            v(&[&["-i", BRIDGE][..], &established, &["-j", "ACCEPT"]].concat()),
        ),
        (
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "udp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        (
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "tcp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        ("AGENT-SANDBOX-INPUT", v(&["-i", BRIDGE, "-j", "DROP"])),
        (
            "AGENT-SANDBOX-FORWARD",
            v(&["-s", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "AGENT-SANDBOX-FORWARD",
            v(&["!", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        // The host talking to itself (the API server to the kubelet on the bridge address) stays on lo.
        ("AGENT-SANDBOX-OUTPUT", v(&["-o", "lo", "-j", "RETURN"])),
        (
            "AGENT-SANDBOX-OUTPUT",
            v(&["-d", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "AGENT-SANDBOX-OUTPUT",
            v(&["-d", SERVICE_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
    ]
}

fn install_firewall() -> anyhow::Result<()> {
    for (_, chain) in FIREWALL {
        if iptables(&["-t", "filter", "-N", chain]).is_err() {
            iptables(&["-t", "filter", "-F", chain])?;
        }
    }
    for (chain, rule) in firewall_rules() {
        let mut args = vec!["-t", "filter", "-A", chain];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args)?;
    }
    keep_firewall_first()
}

/// Puts the jumps to our firewall chains first in FORWARD and OUTPUT. The kubelet and kube-proxy
/// insert their own jumps at the top when they start (with ACCEPT rules behind them), so this runs
/// again once they are up.
pub fn keep_firewall_first() -> anyhow::Result<()> {
    for (builtin, chain) in FIREWALL {
        while iptables(&["-t", "filter", "-D", builtin, "-j", chain]).is_ok() {}
        iptables(&["-t", "filter", "-I", builtin, "1", "-j", chain])?;
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
    let kept: Vec<PathBuf> = state["mounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    step("mounts", unmount_under(&mount_roots(node), &kept));
    step("network namespaces", remove_cni_netns());
    step("cgroups", remove_pod_cgroups());
    let before: Vec<String> = state["chains"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    step("iptables", remove_chains(&before));
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
    for dir in dirs.iter().filter(|d| d.exists()) {
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

/// Directories whose mounts belong to the node: its state, its sockets, containerd's and gVisor's, and
/// the pinned network namespaces of its pods.
fn mount_roots(node: &NodeLayout) -> Vec<PathBuf> {
    vec![
        node.dir.clone(),
        PathBuf::from(RUN_DIR),
        PathBuf::from(CONTAINERD_RUN_DIR),
        PathBuf::from(NETNS_DIR),
    ]
}

/// Where containerd (and `ip netns`) pin network namespaces; it bind-mounts the directory onto itself.
const NETNS_DIR: &str = "/run/netns";

/// Mount points under any of `roots`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(roots: &[PathBuf]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| roots.iter().any(|r| p.starts_with(r)))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Unmounts every mount under `roots` but those in `kept`. A namespace pinned in /run/netns before
/// containerd bind-mounted the directory onto itself is hidden under that bind mount, so this runs in
/// passes: each pass unmounts what it can see, until nothing of ours is left.
fn unmount_under(roots: &[PathBuf], kept: &[PathBuf]) -> anyhow::Result<()> {
    let ours = || -> Vec<PathBuf> {
        mounts_under(roots)
            .into_iter()
            .filter(|m| !kept.contains(m))
            .collect()
    };
    for _ in 0..5 {
        let mounts = ours();
        if mounts.is_empty() {
            return Ok(());
        }
        for mount in mounts {
            // A busy mount (held by a process we could not see) is detached now, freed when released.
            if !umount(&mount, false) {
                umount(&mount, true);
            }
        }
    }
    let left = ours();
    if left.is_empty() {
        Ok(())
    } else {
        bail!("still mounted: {left:?}")
    }
}

fn umount(path: &Path, lazy: bool) -> bool {
    let mut cmd = Command::new("umount");
    if lazy {
        cmd.arg("-l");
    }
    cmd.arg(path)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn remove_cni_netns() -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("cni-") {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The cgroup hierarchies' `kubepods` trees (the kubelet's, with cgroupfs): every process in them is a
/// container or pod of the real node.
fn pod_cgroups() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("kubepods"))
        .filter(|p| p.is_dir())
        .collect()
}

fn kill_leftovers() -> anyhow::Result<()> {
    let mut pids = Vec::new();
    for root in pod_cgroups() {
        collect_cgroup_pids(&root, &mut pids);
    }
    for pid in std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        // Shims name our containerd socket; gVisor's sandbox and gofer name runsc's root.
        if cmdline.contains(RUN_DIR) || cmdline.contains("/run/containerd/runsc") {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|p| *p != std::process::id());
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}/stat")).exists() && !is_zombie(*p))
    {
        if std::time::Instant::now() > deadline {
            bail!("processes {pids:?} did not exit after SIGKILL");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(true)
}

fn collect_cgroup_pids(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                collect_cgroup_pids(&entry.path(), pids);
            }
        }
    }
}

fn remove_pod_cgroups() -> anyhow::Result<()> {
    for root in pod_cgroups() {
        remove_cgroup_tree(&root)?;
    }
    Ok(())
}

/// cgroup directories are removed with rmdir, children first (their files cannot be deleted).
fn remove_cgroup_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.path().is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing cgroup {}", dir.display()))
}

/// Every iptables/ip6tables chain (as `family/table/name`) whose name has one of [`CHAIN_PREFIXES`].
pub fn chains() -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for family in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let Ok(rules) = hostcmd::output(family, &["-w", "-t", table, "-S"]) else {
                continue;
            };
            for line in rules.lines() {
                if let Some(name) = line.strip_prefix("-N ")
                    && CHAIN_PREFIXES.iter().any(|p| name.starts_with(p))
                {
                    out.push(format!("{family}/{table}/{name}"));
                }
            }
        }
    }
    Ok(out)
}

/// Removes the chains that were not there before the node started, and every jump to them.
fn remove_chains(before: &[String]) -> anyhow::Result<()> {
    let added: Vec<String> = chains()?
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    for family in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let ours: Vec<&str> = added
                .iter()
                .filter_map(|c| c.strip_prefix(&format!("{family}/{table}/")))
                .collect();
            if ours.is_empty() {
                continue;
            }
            let rules = hostcmd::output(family, &["-w", "-t", table, "-S"])?;
            // Jumps into our chains from chains that stay (built-in or pre-existing ones).
            for rule in rules.lines().filter_map(|l| l.strip_prefix("-A ")) {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let target = rule
                    .split(" -j ")
                    .nth(1)
                    .and_then(|t| t.split_whitespace().next());
                if !ours.contains(&chain) && target.is_some_and(|t| ours.contains(&t)) {
                    // `-S` prints rules shell-quoted (comments have spaces): let the shell split it.
                    run_quiet("sh", &["-c", &format!("{family} -w -t {table} -D {rule}")])?;
                }
            }
            for chain in &ours {
                run_quiet(family, &["-w", "-t", table, "-F", chain])?;
            }
            for chain in &ours {
                run_quiet(family, &["-w", "-t", table, "-X", chain])?;
            }
        }
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(sysctl_path(key), value).with_context(|| format!("setting {key}={value}"))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run_quiet("ip", args)
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["-w"];
    all.extend_from_slice(args);
    run_quiet("iptables", &all)
}

fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    hostcmd::output(program, args).map(|_| ())
}
