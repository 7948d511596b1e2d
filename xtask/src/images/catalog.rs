//! The project's images: what goes into each and how it starts.

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::Path;

use super::elf;
use super::layer::{self, Content, Entry};
use super::oci::{Image, ImageConfig, LayerSource, Platform};
use super::rootfs::DebianRootfs;

/// Where Debian's `busybox-static` package installs the binary.
const BUSYBOX: &str = "/bin/busybox";

/// The `PATH` every image gets, as container runtimes expect it set by the image.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The Python image's userland: the full standard library (`python3-venv` adds venv, ensurepip and
/// distutils, which Debian ships separately) and CA certificates for TLS, without documentation.
const PYTHON_ROOTFS: DebianRootfs = DebianRootfs {
    suite: "bookworm",
    variant: "essential",
    packages: &["python3", "python3-venv", "ca-certificates"],
    // mmdebstrap's own hook merges /usr with symlinks and installs `usr-is-merged`; without it apt
    // satisfies init-system-helpers with `usrmerge`, which pulls in Perl (about 25 MiB) for nothing.
    hook_dirs: &["/usr/share/mmdebstrap/hooks/merged-usr"],
    dpkg_options: &[
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/doc/*",
        // Licences stay: they are what the distribution asks to keep with the binaries.
        "path-include=/usr/share/doc/*/copyright",
    ],
};

/// One of the project's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// The pod sandbox ("pause") container: one static binary.
    Pause,
    /// A shell and the usual Unix tools from one static busybox.
    Busybox,
    /// Debian's Python 3 with its standard library.
    Python,
}

impl Name {
    /// Every image, in build order.
    pub const ALL: [Self; 3] = [Self::Pause, Self::Busybox, Self::Python];

    /// The short name used in references and archive file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Busybox => "busybox",
            Self::Python => "python",
        }
    }

    /// The full image reference, e.g. `localhost/agent-sandbox/busybox:local`.
    pub fn reference(self) -> String {
        format!("localhost/agent-sandbox/{}:local", self.as_str())
    }

    /// Gathers the image's layers and config. `pause_bin` is needed for [`Name::Pause`] only.
    pub fn image(self, pause_bin: Option<&Path>) -> anyhow::Result<Image> {
        let (config, layers) = match self {
            Self::Pause => {
                let bin = pause_bin.context(
                    "the pause image needs --pause-bin PATH (`cargo xtask cluster up` passes the one it builds)",
                )?;
                pause(bin)?
            }
            Self::Busybox => busybox()?,
            Self::Python => python()?,
        };
        Ok(Image {
            reference: self.reference(),
            platform: Platform::host()?,
            config,
            layers,
        })
    }
}

fn description(text: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("org.opencontainers.image.description".into(), text.into())])
}

/// Fails unless `path` is a statically linked executable: these images have no libc or loader.
fn require_static(path: &Path, hint: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let dynamic =
        elf::is_dynamic(&bytes).with_context(|| format!("checking {}", path.display()))?;
    if dynamic {
        bail!(
            "{} is dynamically linked, but the image has no libc: {hint}",
            path.display()
        );
    }
    Ok(())
}

fn pause(bin: &Path) -> anyhow::Result<(ImageConfig, Vec<LayerSource>)> {
    require_static(bin, "build it with CGO_ENABLED=0")?;
    let layer = layer::build(&[Entry::File {
        path: "pause".into(),
        content: Content::Host(bin.to_path_buf()),
        mode: 0o755,
    }])?;
    let config = ImageConfig {
        entrypoint: vec!["/pause".into()],
        env: vec![PATH_ENV.into()],
        // The conventional pause user: nobody-like, distinct from workload users.
        user: Some("65535:65535".into()),
        labels: description("Kubernetes pod sandbox (pause) for the local node"),
        ..ImageConfig::default()
    };
    Ok((config, vec![LayerSource::Bytes(layer)]))
}

fn busybox() -> anyhow::Result<(ImageConfig, Vec<LayerSource>)> {
    let bin = Path::new(BUSYBOX);
    if !bin.exists() {
        bail!(
            "{BUSYBOX} is missing: install the Debian package `busybox-static` (apt-get install busybox-static)"
        );
    }
    require_static(
        bin,
        "install the Debian package `busybox-static` instead of `busybox`",
    )?;
    let applets = hostcmd::output(BUSYBOX, &["--list-full"])?;
    let mut entries = vec![
        Entry::File {
            path: "bin/busybox".into(),
            content: Content::Host(bin.to_path_buf()),
            mode: 0o755,
        },
        Entry::File {
            path: "etc/passwd".into(),
            content: Content::Bytes(
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                    .to_vec(),
            ),
            mode: 0o644,
        },
        Entry::File {
            path: "etc/group".into(),
            content: Content::Bytes(b"root:x:0:\nnobody:x:65534:\n".to_vec()),
            mode: 0o644,
        },
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        Entry::Dir {
            path: "root".into(),
            mode: 0o700,
        },
    ];
    // One absolute symlink per applet (`bin/sh`, `usr/bin/awk`, ...): busybox dispatches on argv[0].
    entries.extend(
        applets
            .lines()
            .map(str::trim)
            .filter(|applet| !applet.is_empty() && *applet != "bin/busybox")
            .map(|applet| Entry::Symlink {
                path: applet.into(),
                target: "/bin/busybox".into(),
            }),
    );
    let config = ImageConfig {
        entrypoint: vec!["/bin/sh".into()],
        env: vec![PATH_ENV.into()],
        labels: description("busybox shell and tools"),
        ..ImageConfig::default()
    };
    Ok((config, vec![LayerSource::Bytes(layer::build(&entries)?)]))
}

fn python() -> anyhow::Result<(ImageConfig, Vec<LayerSource>)> {
    let rootfs = PYTHON_ROOTFS.ensure()?;
    let config = ImageConfig {
        entrypoint: vec!["python3".into()],
        // C.UTF-8 is built into glibc, so UTF-8 I/O works without locale files.
        env: vec![PATH_ENV.into(), "LANG=C.UTF-8".into()],
        labels: description("Debian bookworm python3 with its standard library"),
        ..ImageConfig::default()
    };
    Ok((config, vec![LayerSource::File(rootfs)]))
}
