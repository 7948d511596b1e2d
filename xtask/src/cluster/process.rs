//! Starting components as detached processes with log and PID files, probing and stopping them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::layout::Layout;

/// Starts `program args...` in its own process group (so Ctrl-C of xtask does not reach it),
/// appending its output to the component's log file and recording its PID. `env` is added to ours.
pub fn spawn(
    layout: &Layout,
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> anyhow::Result<Child> {
    let log_path = layout.log(name);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    writeln!(log, "+ {} {}", program.display(), args.join(" "))?;
    let err = log.try_clone()?;
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&layout.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name} ({})", program.display()))?;
    std::fs::write(layout.pid(name), child.id().to_string())
        .with_context(|| format!("writing the PID file of {name}"))?;
    Ok(child)
}

/// The PID recorded for a component, if its process is still running our binary.
pub fn running_pid(layout: &Layout, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.pid(name))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_ours(pid).then_some(pid)
}

/// Whether `pid` is a live (not zombie) process started from one of our cached binaries.
fn is_ours(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 3 (after the parenthesised name) is the state; Z = zombie, X = dead.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| String::from_utf8_lossy(&cmd).contains("/agent-sandbox/"))
        .unwrap_or(false)
}

/// Stops a component by its recorded PID: SIGTERM, then SIGKILL after `grace`.
pub fn stop(layout: &Layout, name: &str, grace: Duration) -> anyhow::Result<bool> {
    let Some(pid) = running_pid(layout, name) else {
        return Ok(false);
    };
    signal(pid, "TERM")?;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !is_ours(pid) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(pid, "KILL")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_ours(pid) {
        if Instant::now() > deadline {
            bail!("{name} (pid {pid}) did not exit after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    // A process that is already gone makes kill fail; that is fine.
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    Ok(())
}

/// The last `n` lines of a component's log.
pub fn log_tail(layout: &Layout, name: &str, n: usize) -> String {
    let text = std::fs::read_to_string(layout.log(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A plain-HTTP GET on loopback; returns the status code and body.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}
