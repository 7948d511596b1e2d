//! What the cluster may leave behind on this machine, as a comparable snapshot: sysctls, iptables
//! rules (over nftables here), ipsets, network links and namespaces, mounts, cgroups, and processes started from our
//! binaries. `cargo xtask test` takes one before it starts a cluster and one after `down`, and fails
//! when they differ (docs/local-cluster.md, "Leaving the machine as it was").

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::path::Path;

/// One snapshot: a sorted set of lines, each naming one piece of state (`sysctl net.ipv4.ip_forward=0`).
pub struct Snapshot(BTreeSet<String>);

/// sysctls that change by themselves (counters, random values, the clock) and say nothing about what
/// the cluster changed.
const VOLATILE_SYSCTLS: [&str; 14] = [
    "fs/dentry-state",
    "fs/file-nr",
    "fs/inode-nr",
    "fs/inode-state",
    "fs/quota/",
    "kernel/random/",
    "kernel/ns_last_pid",
    "kernel/pty/nr",
    "kernel/tainted",
    "net/netfilter/nf_conntrack_count",
    "kernel/sched_domain/",
    "fs/binfmt_misc/",
    "vm/stat_refresh",
    "net/ipv6/route/",
];

impl Snapshot {
    /// Reads the machine's state now.
    pub fn take() -> Self {
        let mut lines = BTreeSet::new();
        sysctls(Path::new("/proc/sys"), &mut lines);
        for (family, save) in [
            ("iptables", "iptables-save"),
            ("ip6tables", "ip6tables-save"),
        ] {
            iptables(family, &command_lines(save, &[]), &mut lines);
        }
        for set in command_lines("ipset", &["list", "-name"]) {
            lines.insert(format!("ipset {set}"));
        }
        for link in command_lines("ip", &["-o", "link", "show"]) {
            if let Some(name) = link.split(':').nth(1) {
                lines.insert(format!(
                    "link {}",
                    name.trim().split('@').next().unwrap_or("")
                ));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                lines.insert(format!("netns {}", entry.file_name().to_string_lossy()));
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for mount in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
            lines.insert(format!("mount {mount}"));
        }
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in entries.flatten() {
                for cgroup in std::fs::read_dir(hierarchy.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if cgroup.path().is_dir() {
                        lines.insert(format!("cgroup {}", cgroup.path().display()));
                    }
                }
            }
        }
        for pid in std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("/agent-sandbox/") && !cmdline.contains("xtask") {
                lines.insert(format!("process {pid} {}", cmdline.trim()));
            }
        }
        Self(lines)
    }

    /// Writes the snapshot to `path` (one line each), for `cargo xtask cluster residue --check`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text: Vec<&str> = self.0.iter().map(String::as_str).collect();
        std::fs::write(path, text.join("\n")).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a snapshot written by [`Snapshot::save`].
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self(text.lines().map(str::to_string).collect()))
    }

    /// Fails, listing every difference, unless `after` equals `self`.
    pub fn compare(&self, after: &Snapshot) -> anyhow::Result<()> {
        let added: Vec<&String> = after.0.difference(&self.0).collect();
        let removed: Vec<&String> = self.0.difference(&after.0).collect();
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut report = String::new();
        for line in added {
            report.push_str(&format!("\n  + {line}"));
        }
        for line in removed {
            report.push_str(&format!("\n  - {line}"));
        }
        bail!(
            "the machine is not as it was before the cluster started (+ left behind, - lost):{report}"
        )
    }
}

/// Rules, user chains and non-default policies of one `iptables-save` listing, per table. A table
/// that exists with only its built-in chains accepting everything is the same as no table (iptables
/// over nftables keeps a table once anything used it), so neither is recorded; counters are left out.
fn iptables(family: &str, listing: &[String], out: &mut BTreeSet<String>) {
    let mut table = "";
    for line in listing {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if let Some(chain) = line.strip_prefix(':') {
            let mut words = chain.split_whitespace();
            match (words.next(), words.next()) {
                (Some(name), Some("-")) => {
                    out.insert(format!("{family} {table} chain {name}"));
                }
                (Some(name), Some(policy)) if policy != "ACCEPT" => {
                    out.insert(format!("{family} {table} policy {name} {policy}"));
                }
                _ => {}
            }
        } else if line.starts_with("-A") {
            out.insert(format!("{family} {table} {line}"));
        }
    }
}

fn sysctls(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let key = path
            .strip_prefix("/proc/sys")
            .unwrap_or(&path)
            .display()
            .to_string();
        if VOLATILE_SYSCTLS.iter().any(|v| key.starts_with(v)) {
            continue;
        }
        if path.is_dir() {
            sysctls(&path, out);
        } else if let Ok(value) = std::fs::read_to_string(&path) {
            out.insert(format!(
                "sysctl {key}={}",
                value.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
}

fn command_lines(program: &str, args: &[&str]) -> Vec<String> {
    hostcmd::output(program, args)
        .map(|out| out.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
