//! Builds a Debian root filesystem as a tar with `mmdebstrap` and caches it, so an image can use a
//! whole distribution userland (e.g. Python with its standard library) as a single layer.
//!
//! The cache key covers the suite, variant, packages, hooks and dpkg options, not the mirror: any mirror of
//! the suite gives the same packages, and the mirror differs between machines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::apt_sources;

/// What to bootstrap.
#[derive(Debug, Clone, Copy)]
pub struct DebianRootfs {
    /// Debian suite (codename), e.g. `bookworm`.
    pub suite: &'static str,
    /// mmdebstrap variant: `essential` is the Essential:yes set without apt.
    pub variant: &'static str,
    /// Packages installed on top of the variant, with their dependencies.
    pub packages: &'static [&'static str],
    /// mmdebstrap hook directories (shipped with mmdebstrap under /usr/share/mmdebstrap/hooks).
    pub hook_dirs: &'static [&'static str],
    /// dpkg options, e.g. `path-exclude=/usr/share/man/*` to leave documentation out.
    pub dpkg_options: &'static [&'static str],
}

impl DebianRootfs {
    /// The mmdebstrap arguments before the suite; everything that decides the rootfs's contents.
    fn options(&self) -> Vec<String> {
        let mut args = vec![
            "--mode=root".to_string(),
            format!("--variant={}", self.variant),
            format!("--include={}", self.packages.join(",")),
            "--format=tar".to_string(),
        ];
        args.extend(self.hook_dirs.iter().map(|d| format!("--hook-dir={d}")));
        args.extend(self.dpkg_options.iter().map(|o| format!("--dpkgopt={o}")));
        args
    }

    fn cache_key(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.suite);
        for option in self.options() {
            hasher.update([0]);
            hasher.update(option);
        }
        let hash = format!("{:x}", hasher.finalize());
        hash[..16].to_string()
    }

    /// Returns the rootfs tar, running mmdebstrap first when the cache has none for these options.
    pub fn ensure(&self) -> anyhow::Result<PathBuf> {
        let dir = crate::workspace::images_cache();
        let tar = dir.join(format!("rootfs-{}-{}.tar", self.suite, self.cache_key()));
        if tar.exists() {
            return Ok(tar);
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.build(&tar)?;
        Ok(tar)
    }

    fn build(&self, output: &Path) -> anyhow::Result<()> {
        let partial = output.with_extension("tar.partial");
        if Command::new("mmdebstrap")
            .arg("--version")
            .output()
            .is_err()
        {
            bail!(
                "mmdebstrap is not installed: install the Debian package `mmdebstrap` (apt-get install mmdebstrap)"
            );
        }
        let mirror = apt_sources::host_mirror(self.suite)?;
        eprintln!(
            "[images] building a Debian {} rootfs ({}) with mmdebstrap into {}",
            self.suite,
            self.packages.join(", "),
            output.display()
        );
        eprintln!(
            "[images] one-time cost: 1-2 minutes with a nearby mirror, up to ~6 on a slow one; cached afterwards"
        );
        let started = Instant::now();
        let mut child = Command::new("mmdebstrap")
            .args(self.options())
            .arg(self.suite)
            .arg(&partial)
            .arg(&mirror)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting mmdebstrap")?;
        let stderr = child.stderr.take().context("mmdebstrap stderr")?;
        let tail = follow(stderr, started);
        let status = child.wait().context("waiting for mmdebstrap")?;
        if !status.success() {
            let _ = std::fs::remove_file(&partial);
            bail!(
                "mmdebstrap failed ({status}); it needs root for --mode=root and a reachable mirror. \
                 Last lines:\n{}",
                tail.join("\n")
            );
        }
        std::fs::rename(&partial, output)
            .with_context(|| format!("moving {}", partial.display()))?;
        eprintln!(
            "[images] built the {} rootfs ({:.0} MiB) in {}s",
            self.suite,
            std::fs::metadata(output).map_or(0.0, |m| m.len() as f64 / 1048576.0),
            started.elapsed().as_secs()
        );
        Ok(())
    }
}

/// Shows mmdebstrap's phases as they come and returns its last 40 lines.
fn follow(stderr: ChildStderr, started: Instant) -> Vec<String> {
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        // mmdebstrap's "I:" lines are its phases (download, extract, install, ...): a fair progress view.
        if let Some(info) = line.strip_prefix("I: ") {
            eprintln!("[images]   {:>4}s {info}", started.elapsed().as_secs());
        }
        tail.push(line);
        if tail.len() > 40 {
            tail.remove(0);
        }
    }
    tail
}
