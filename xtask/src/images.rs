//! `cargo xtask images`: builds the project's container images as OCI archives for
//! `ctr images import`, with no registry and no container engine, and optionally imports them.
//! See docs/local-cluster.md ("Images").

mod apt_sources;
mod binaries;
mod catalog;
mod elf;
mod layer;
mod oci;
mod rootfs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

pub use catalog::Name;

use crate::workspace;

/// Flags of `cargo xtask images`.
#[derive(clap::Args)]
pub struct Args {
    /// Build only these images (repeatable); all of them by default.
    #[arg(long, value_enum, value_name = "NAME")]
    only: Vec<Name>,
    /// The static binary to use as the pause image's `/pause`; needed whenever pause is built.
    /// `cargo xtask cluster up` passes the one it builds.
    #[arg(long, value_name = "PATH")]
    pause_bin: Option<PathBuf>,
    /// After building, import the archives into containerd at this socket (namespace k8s.io).
    #[arg(long, value_name = "SOCKET")]
    import: Option<PathBuf>,
    /// The `ctr` binary used by --import.
    #[arg(long, value_name = "PATH", default_value = "ctr")]
    ctr: PathBuf,
}

/// A built image archive (an OCI layout in a tar), ready for `ctr images import`.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Which image this is.
    pub name: Name,
    /// The name containerd gives the image on import, e.g. `localhost/agent-sandbox/busybox:local`.
    pub reference: String,
    /// The archive file, `<cache>/images/<name>-<contenthash>.tar`.
    pub path: PathBuf,
    /// Size of the archive in bytes.
    pub size: u64,
}

/// Runs `cargo xtask images`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let archives = match (args.only.is_empty(), &args.pause_bin) {
        (true, Some(pause_bin)) => ensure_all(pause_bin)?,
        _ => ensure(&args.only, args.pause_bin.as_deref())?,
    };
    for archive in &archives {
        println!(
            "{}\t{:.1} MiB\t{}",
            archive.reference,
            archive.size as f64 / 1048576.0,
            archive.path.display()
        );
    }
    if let Some(socket) = &args.import {
        import(&args.ctr, socket, &archives)?;
    }
    Ok(())
}

/// Builds (or finds in the cache) every image of the catalog; `pause_bin` becomes the pause image.
pub fn ensure_all(pause_bin: &Path) -> anyhow::Result<Vec<Archive>> {
    ensure(&Name::ALL, Some(pause_bin))
}

/// Builds (or finds in the cache) the named images, all of them when `names` is empty.
fn ensure(names: &[Name], pause_bin: Option<&Path>) -> anyhow::Result<Vec<Archive>> {
    let names = if names.is_empty() {
        &Name::ALL[..]
    } else {
        names
    };
    // Checked before any slow build, so a forgotten flag does not cost a rootfs build first.
    if names.contains(&Name::Pause) && pause_bin.is_none() {
        bail!(
            "the pause image needs --pause-bin PATH (a static binary; `cargo xtask cluster up` passes the one it builds), \
             or leave it out with --only NAME (busybox, python, runtime, router, controller)"
        );
    }
    let mut archives = Vec::new();
    for &name in names {
        if archives.iter().any(|a: &Archive| a.name == name) {
            continue;
        }
        let image = name.image(pause_bin)?;
        archives.push(write_cached(name, &image)?);
    }
    Ok(archives)
}

/// Writes the image's archive unless the cache already has one with the same content key.
fn write_cached(name: Name, image: &oci::Image) -> anyhow::Result<Archive> {
    let key = oci::content_key(image)?;
    let dir = workspace::images_cache();
    let path = dir.join(format!("{}-{}.tar", name.as_str(), &key[..16]));
    if !path.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let started = Instant::now();
        let partial = path.with_extension("tar.partial");
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        oci::write_archive(image, std::io::BufWriter::new(file))
            .with_context(|| format!("writing the {} image archive", name.as_str()))?;
        std::fs::rename(&partial, &path)
            .with_context(|| format!("moving {}", partial.display()))?;
        prune_older(&dir, name, &path)?;
        eprintln!(
            "[images] built {} in {:.1}s",
            image.reference,
            started.elapsed().as_secs_f64()
        );
    } else {
        eprintln!("[images] {} is cached", image.reference);
    }
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(Archive {
        name,
        reference: image.reference.clone(),
        path,
        size,
    })
}

/// Removes the cached archives of `name` other than `keep`: the project's binaries change with every
/// commit (their version names it), so without this the cache would grow by one archive per build.
fn prune_older(dir: &Path, name: Name, keep: &Path) -> anyhow::Result<()> {
    let prefix = format!("{}-", name.as_str());
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        if path != keep && file.starts_with(&prefix) && file.ends_with(".tar") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// `ctr` talking to the given containerd socket in the namespace the kubelet's CRI uses.
fn ctr(ctr: &Path, socket: &Path) -> Command {
    let mut cmd = Command::new(ctr);
    cmd.arg("--address").arg(socket).args(["-n", "k8s.io"]);
    cmd
}

/// Imports the archives into containerd (namespace `k8s.io`, where the kubelet looks) with
/// `ctr images import`, then checks with `ctr images ls -q` that every image is listed.
pub fn import(ctr_bin: &Path, socket: &Path, archives: &[Archive]) -> anyhow::Result<()> {
    for archive in archives {
        let started = Instant::now();
        let out = ctr(ctr_bin, socket)
            .args(["images", "import"])
            .arg(&archive.path)
            .output()
            .with_context(|| format!("running {} images import", ctr_bin.display()))?;
        if !out.status.success() {
            bail!(
                "importing {} into containerd at {} failed ({}): {}",
                archive.path.display(),
                socket.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        eprintln!(
            "[images] imported {} in {:.1}s",
            archive.reference,
            started.elapsed().as_secs_f64()
        );
    }
    let out = ctr(ctr_bin, socket)
        .args(["images", "ls", "-q"])
        .output()
        .with_context(|| format!("running {} images ls", ctr_bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} images ls failed ({}): {}",
            ctr_bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let listed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = archives
        .iter()
        .map(|a| a.reference.as_str())
        .filter(|reference| !listed.lines().any(|line| line.trim() == *reference))
        .collect();
    if !missing.is_empty() {
        bail!(
            "after import, containerd at {} does not list: {}",
            socket.display(),
            missing.join(", ")
        );
    }
    eprintln!("[images] {} image(s) imported and listed", archives.len());
    Ok(())
}
