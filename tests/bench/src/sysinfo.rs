//! The machine the numbers were taken on, and a process's CPU time and memory from /proc.

use std::process::Command;

use agent_sandbox_hostcmd as hostcmd;
use anyhow::Context;
use serde::Serialize;

/// What the benchmark ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub nproc: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total RAM in bytes.
    pub ram_bytes: u64,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// `git rev-parse HEAD` of the checkout, with `-dirty` if it has uncommitted changes.
    pub git_commit: String,
    /// 1-minute load average when the run started (other work on the machine shows here).
    pub loadavg_1m: f64,
}

/// Describes this machine.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let git = |args: &[&str]| {
        hostcmd::stdout(
            Command::new("git")
                .args(args)
                .current_dir(agent_sandbox_testkit::workspace_root()),
        )
        .map(|out| out.trim().to_string())
        .unwrap_or_default()
    };
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(String::new, |(_, v)| v.trim().to_string()),
        ram_bytes: kib_field(&meminfo, "MemTotal:").unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        git_commit: format!(
            "{}{}",
            git(&["rev-parse", "HEAD"]),
            if dirty { "-dirty" } else { "" }
        ),
        loadavg_1m: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0),
    }
}

/// A `Key:   123 kB` line of /proc/meminfo or /proc/<pid>/status, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set size now, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size since start (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

/// Reads /proc/<pid>/stat and /proc/<pid>/status.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 of stat.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("parsing /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context("parsing CPU ticks in /proc/<pid>/stat")
    };
    // `after` starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let cpu_seconds = (ticks(11)? + ticks(12)?) / clock_ticks();
    Ok(ProcSample {
        cpu_seconds,
        rss_bytes: kib_field(&status, "VmRSS:").unwrap_or(0),
        peak_rss_bytes: kib_field(&status, "VmHWM:").unwrap_or(0),
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        hostcmd::output("getconf", &["CLK_TCK"])
            .ok()
            .and_then(|out| out.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process_and_the_machine() -> anyhow::Result<()> {
        let me = sample(std::process::id())?;
        assert!(me.rss_bytes > 0 && me.peak_rss_bytes >= me.rss_bytes);
        let m = machine();
        assert!(m.nproc > 0 && m.ram_bytes > 0 && !m.kernel.is_empty());
        Ok(())
    }

    #[test]
    fn kib_fields_are_bytes() {
        assert_eq!(
            kib_field("VmHWM:\t  2048 kB\nVmRSS: 1 kB", "VmHWM:"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(kib_field("", "VmRSS:"), None);
    }
}
