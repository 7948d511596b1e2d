//! Builds the control-plane multi-call binary from tests/cluster (Go) and caches it outside the repo.
//!
//! The cache key is the Kubernetes version plus a hash of go.mod, go.sum, main.go and the link flags,
//! so a fresh clone on the same machine reuses the binary and any change to the module rebuilds it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::layout::KUBE_VERSION;
use crate::workspace;

/// The programs inside the multi-call binary; each gets a symlink of its own name.
pub const PROGRAMS: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
];

/// The Go version tests/cluster/go.mod needs.
const GO_MINOR_NEEDED: u32 = 26;

/// Where a built control plane lives.
pub struct Binaries {
    /// Directory holding `kube` and one symlink per program.
    pub bin_dir: PathBuf,
}

impl Binaries {
    /// Path of one program (a symlink to the multi-call binary).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn go_module_dir() -> PathBuf {
    workspace::root().join("tests").join("cluster")
}

fn ldflags() -> String {
    let (major, minor) = ("1", "36");
    let mut flags = vec!["-s".to_string(), "-w".to_string()];
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        flags.push(format!("-X {pkg}.gitVersion={KUBE_VERSION}"));
        flags.push(format!("-X {pkg}.gitMajor={major}"));
        flags.push(format!("-X {pkg}.gitMinor={minor}"));
        flags.push(format!("-X {pkg}.gitTreeState=clean"));
    }
    flags.join(" ")
}

/// FNV-1a, 64 bit: a stable content hash without a dependency.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn cache_key() -> anyhow::Result<String> {
    let dir = go_module_dir();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for file in ["go.mod", "go.sum", "main.go"] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hash = fnv1a(file.as_bytes(), hash);
        hash = fnv1a(&bytes, hash);
    }
    hash = fnv1a(ldflags().as_bytes(), hash);
    Ok(format!("{hash:016x}"))
}

/// The cached binaries for the current module, without building.
pub fn cached() -> anyhow::Result<Binaries> {
    let key = cache_key()?;
    Ok(Binaries {
        bin_dir: workspace::cache_root()
            .join(format!("kube-{KUBE_VERSION}-{key}"))
            .join("bin"),
    })
}

/// Returns the control-plane binaries, building them first when the cache has none for this module.
pub fn ensure() -> anyhow::Result<Binaries> {
    let bins = cached()?;
    let kube = bins.bin_dir.join("kube");
    if !kube.exists() {
        std::fs::create_dir_all(&bins.bin_dir)
            .with_context(|| format!("creating {}", bins.bin_dir.display()))?;
        build(&kube)?;
    }
    for program in PROGRAMS {
        let link = bins.program(program);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("kube", &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
    }
    Ok(bins)
}

/// Finds a Go toolchain new enough for tests/cluster/go.mod, explaining how to get one if there is none.
fn find_go() -> anyhow::Result<PathBuf> {
    let candidates = [PathBuf::from("go"), PathBuf::from("/usr/local/go/bin/go")];
    for go in &candidates {
        let Ok(out) = Command::new(go).arg("version").output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let minor = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("go1."))
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        match minor {
            Some(m) if m >= GO_MINOR_NEEDED => return Ok(go.clone()),
            _ => eprintln!(
                "[cluster] ignoring {}: `{}` is older than go1.{GO_MINOR_NEEDED}",
                go.display(),
                text.trim()
            ),
        }
    }
    bail!(
        "Go 1.{GO_MINOR_NEEDED} or newer is needed to build the local control plane (tests/cluster/go.mod), \
         but no such `go` is on PATH or at /usr/local/go/bin/go. Install Go 1.{GO_MINOR_NEEDED}.x \
         (for example the official release unpacked into /usr/local/go) and make sure the Go module proxy \
         (GOPROXY, default proxy.golang.org) is reachable; then run `cargo xtask cluster up` again."
    )
}

fn build(output: &Path) -> anyhow::Result<()> {
    let go = find_go()?;
    let tmp = output.with_extension("partial");
    eprintln!(
        "[cluster] building the Kubernetes {KUBE_VERSION} control plane from Go modules into {}",
        output.display()
    );
    eprintln!(
        "[cluster] one-time cost: about 8-10 minutes on 2 cores with cold Go caches, seconds when cached"
    );
    let started = Instant::now();
    let mut child = Command::new(&go)
        .current_dir(go_module_dir())
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=readonly -buildvcs=false")
        .env("CGO_ENABLED", "0")
        .args(["build", "-v", "-trimpath", "-ldflags", &ldflags(), "-o"])
        .arg(&tmp)
        .arg(".")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} build", go.display()))?;
    let stderr = child.stderr.take().context("go build stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut tail: Vec<String> = Vec::new();
    let mut packages = 0usize;
    let mut last_report = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                if line.starts_with("go: downloading") {
                    // Downloads are progress too, but there are hundreds; count them only.
                } else if !line.starts_with('#') && !line.contains(' ') {
                    packages += 1;
                }
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "[cluster]   ... {packages} Go packages compiled, {}s elapsed",
                started.elapsed().as_secs()
            );
            last_report = Instant::now();
        }
    }
    let status = child.wait().context("waiting for go build")?;
    if !status.success() {
        bail!(
            "building the control plane failed ({status}) in tests/cluster. Last lines of `go build`:\n{}\n\
             If a module could not be downloaded, check that the Go module proxy is reachable (GOPROXY).",
            tail.join("\n")
        );
    }
    std::fs::rename(&tmp, output).with_context(|| format!("moving {}", tmp.display()))?;
    eprintln!(
        "[cluster] built the control plane ({packages} packages) in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}
