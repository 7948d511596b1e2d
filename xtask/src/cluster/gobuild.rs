//! Building Go programs from pinned modules into the cache, with progress on stderr.
//!
//! Every Go component of the local cluster (the control plane, the real node's programs, gVisor) is
//! built the same way: `go build` in one module directory, cached under a key made of the module's
//! files and the flags, so a fresh clone on the same machine reuses the binaries and any change to a
//! module rebuilds it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The Go version the project's modules need.
const GO_MINOR_NEEDED: u32 = 26;

/// FNV-1a, 64 bit: a stable content hash without a dependency.
pub fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The FNV offset basis, the start of every hash.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash of `go.mod`, `go.sum` and every `.go` file of a module directory (recursively) and `extra`.
pub fn module_key(dir: &Path, extra: &str) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect_module_files(dir, dir, &mut files)?;
    files.sort();
    let mut hash = FNV_START;
    for rel in files {
        let path = dir.join(&rel);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hash = fnv1a(rel.as_bytes(), hash);
        hash = fnv1a(&bytes, hash);
    }
    hash = fnv1a(extra.as_bytes(), hash);
    Ok(format!("{hash:016x}"))
}

fn collect_module_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_module_files(root, &path, out)?;
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "go.mod" || name == "go.sum" || name.ends_with(".go") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.display().to_string());
        }
    }
    Ok(())
}

/// Finds a Go toolchain new enough for the project's modules, explaining how to get one if there is none.
pub fn find_go() -> anyhow::Result<PathBuf> {
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
        "Go 1.{GO_MINOR_NEEDED} or newer is needed to build the local cluster's components, \
         but no such `go` is on PATH or at /usr/local/go/bin/go. Install Go 1.{GO_MINOR_NEEDED}.x \
         (for example the official release unpacked into /usr/local/go) and make sure the Go module proxy \
         (GOPROXY) is reachable; then run `cargo xtask cluster up` again."
    )
}

/// One `go build` invocation.
pub struct GoBuild<'a> {
    /// What is built, for progress lines ("the control plane").
    pub what: &'a str,
    /// The module directory `go build` runs in.
    pub dir: &'a Path,
    /// Packages to build (`.`, `./shim`, or import paths of the module's dependencies).
    pub packages: &'a [&'a str],
    /// `-o`: a file for one package, a directory (ending in `/`) for several.
    pub output: &'a Path,
    /// `-ldflags`.
    pub ldflags: &'a str,
    /// `-mod=readonly` for our own modules (go.sum is committed), `-mod=mod` for a module copy.
    pub mod_mode: &'a str,
    /// The expected cold duration, printed before starting.
    pub expected: &'a str,
}

impl GoBuild<'_> {
    /// Runs the build, printing progress every 30 s, and fails with the last lines of Go's output.
    pub fn run(&self) -> anyhow::Result<()> {
        eprintln!(
            "[cluster] building {} from Go modules into {}",
            self.what,
            self.output.display()
        );
        eprintln!(
            "[cluster] one-time cost: {} on 2 cores with cold Go caches, seconds when cached",
            self.expected
        );
        let started = Instant::now();
        let mut child = self.spawn()?;
        let stderr = child.stderr.take().context("go build stderr")?;
        let (packages, tail) = self.follow(stderr, started);
        let status = child.wait().context("waiting for go build")?;
        if !status.success() {
            bail!(
                "building {} failed ({status}) in {}. Last lines of `go build`:\n{}\n\
                 If a module could not be downloaded, check that the Go module proxy is reachable (GOPROXY).",
                self.what,
                self.dir.display(),
                tail.join("\n")
            );
        }
        eprintln!(
            "[cluster] built {} ({packages} packages) in {}s",
            self.what,
            started.elapsed().as_secs()
        );
        Ok(())
    }

    /// Starts `go build -v` with its progress (stderr) piped.
    fn spawn(&self) -> anyhow::Result<Child> {
        let go = find_go()?;
        let mut output = self.output.display().to_string();
        if self.packages.len() > 1 && !output.ends_with('/') {
            output.push('/');
        }
        Command::new(&go)
            .current_dir(self.dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", format!("-mod={} -buildvcs=false", self.mod_mode))
            .env("CGO_ENABLED", "0")
            .args(["build", "-v", "-trimpath", "-ldflags", self.ldflags, "-o"])
            .arg(&output)
            .args(self.packages)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} build", go.display()))
    }

    /// Reads `go build -v`'s lines until it closes them, saying every 30 s how many packages are
    /// compiled; returns that count and the last 40 lines.
    fn follow(&self, stderr: ChildStderr, started: Instant) -> (usize, Vec<String>) {
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
                    // Downloads are progress too, but there are hundreds; only compiled packages count.
                    if !line.starts_with("go: downloading")
                        && !line.starts_with('#')
                        && !line.contains(' ')
                    {
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
                    "[cluster]   ... {}: {packages} Go packages compiled, {}s elapsed",
                    self.what,
                    started.elapsed().as_secs()
                );
                last_report = Instant::now();
            }
        }
        (packages, tail)
    }
}
