//! What the node's pods leave behind when its programs are stopped: processes, mounts, pinned
//! network namespaces and cgroups, found and removed by `down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::cluster::node::config::{CONTAINERD_RUN_DIR, NodeLayout, RUN_DIR};

/// Where containerd (and `ip netns`) pin network namespaces; it bind-mounts the directory onto itself.
pub const NETNS_DIR: &str = "/run/netns";

/// Directories whose mounts belong to the node: its state, its sockets, containerd's and gVisor's, and
/// the pinned network namespaces of its pods.
pub fn mount_roots(node: &NodeLayout) -> Vec<PathBuf> {
    vec![
        node.dir.clone(),
        PathBuf::from(RUN_DIR),
        PathBuf::from(CONTAINERD_RUN_DIR),
        PathBuf::from(NETNS_DIR),
    ]
}

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
pub fn unmount_under(roots: &[PathBuf], kept: &[PathBuf]) -> anyhow::Result<()> {
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

pub fn remove_cni_netns() -> anyhow::Result<()> {
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

pub fn kill_leftovers() -> anyhow::Result<()> {
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

pub fn remove_pod_cgroups() -> anyhow::Result<()> {
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
