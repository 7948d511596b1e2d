//! The project's images: what goes into each and how it starts.

use std::collections::BTreeMap;
use std::path::Path;

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};

use super::binaries::static_binary;
use super::elf;
use super::layer::{self, Content, Entry};
use super::oci::{Image, ImageConfig, LayerSource, Platform};
use super::rootfs::DebianRootfs;
use crate::workspace::commit;

/// Where Debian's `busybox-static` package installs the binary.
const BUSYBOX: &str = "/bin/busybox";

/// The `PATH` every image gets, as container runtimes expect it set by the image.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The userland of the python and runtime images (one rootfs, built once, shared by both): the full standard library (`python3-venv` adds venv, ensurepip and
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
    /// The in-sandbox daemon (`agent-sandbox-runtime`) on the python image's userland.
    Runtime,
    /// The sandbox router (`agent-sandbox-router`): one static binary, nothing else.
    Router,
    /// The controller (`agent-sandbox-controller`): one static binary, nothing else.
    Controller,
}

/// UID and GID of the runtime image's user, upstream sandboxd's `USER 1000`.
const RUNTIME_USER: u32 = 1000;

/// UID and GID of the router's and the controller's user: the conventional distroless "nonroot".
const NONROOT_USER: u32 = 65532;

/// What an image is made of: an optional Debian root filesystem as the bottom layer, then one
/// layer of entries on top (none for a rootfs-only image), and how a container starts.
struct Recipe {
    base: Option<DebianRootfs>,
    entries: Vec<Entry>,
    config: ImageConfig,
}

impl Name {
    /// Every image, in build order.
    pub const ALL: [Self; 6] = [
        Self::Pause,
        Self::Busybox,
        Self::Python,
        Self::Runtime,
        Self::Router,
        Self::Controller,
    ];

    /// The short name used in references and archive file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Busybox => "busybox",
            Self::Python => "python",
            Self::Runtime => "runtime",
            Self::Router => "router",
            Self::Controller => "controller",
        }
    }

    /// The full image reference, e.g. `localhost/agent-sandbox/busybox:local`.
    pub fn reference(self) -> String {
        format!("localhost/agent-sandbox/{}:local", self.as_str())
    }

    /// Gathers the image's layers and config. `pause_bin` is needed for [`Name::Pause`] only.
    pub fn image(self, pause_bin: Option<&Path>) -> anyhow::Result<Image> {
        let recipe = match self {
            Self::Pause => pause(pause_bin.context(
                "the pause image needs --pause-bin PATH (`cargo xtask cluster up` passes the one it builds)",
            )?)?,
            Self::Busybox => busybox()?,
            Self::Python => python(),
            Self::Runtime => runtime()?,
            Self::Router => project_binary(
                "agent-sandbox-router",
                "agent-sandbox-router: X-Sandbox-* reverse proxy to Sandbox pods",
                &["8080/tcp"],
            )?,
            Self::Controller => project_binary(
                "agent-sandbox-controller",
                "agent-sandbox-controller: Sandbox, SandboxTemplate, SandboxWarmPool and SandboxClaim controllers",
                &["8080/tcp", "8081/tcp", "9443/tcp"],
            )?,
        };
        let mut layers = Vec::new();
        if let Some(base) = recipe.base {
            layers.push(LayerSource::File(base.ensure()?));
        }
        if !recipe.entries.is_empty() {
            layers.push(LayerSource::Bytes(layer::build(&recipe.entries)?));
        }
        Ok(Image {
            reference: self.reference(),
            platform: Platform::host()?,
            config: recipe.config,
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

/// An executable at `path` in the image, from `host`, which must be statically linked.
fn static_executable(path: &str, host: &Path, hint: &str) -> anyhow::Result<Entry> {
    require_static(host, hint)?;
    Ok(Entry::File {
        path: path.into(),
        content: Content::Host(host.to_path_buf()),
        mode: 0o755,
    })
}

fn pause(bin: &Path) -> anyhow::Result<Recipe> {
    Ok(Recipe {
        base: None,
        entries: vec![static_executable(
            "pause",
            bin,
            "build it with CGO_ENABLED=0",
        )?],
        config: ImageConfig {
            entrypoint: vec!["/pause".into()],
            env: vec![PATH_ENV.into()],
            // The conventional pause user: nobody-like, distinct from workload users.
            user: Some("65535:65535".into()),
            labels: description("Kubernetes pod sandbox (pause) for the local node"),
            ..ImageConfig::default()
        },
    })
}

fn busybox() -> anyhow::Result<Recipe> {
    let bin = Path::new(BUSYBOX);
    if !bin.exists() {
        bail!(
            "{BUSYBOX} is missing: install the Debian package `busybox-static` (apt-get install busybox-static)"
        );
    }
    let applets = hostcmd::output(BUSYBOX, &["--list-full"])?;
    let mut entries = vec![
        static_executable(
            "bin/busybox",
            bin,
            "install the Debian package `busybox-static` instead of `busybox`",
        )?,
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
            owner: 0,
        },
        Entry::Dir {
            path: "root".into(),
            mode: 0o700,
            owner: 0,
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
    Ok(Recipe {
        base: None,
        entries,
        config: ImageConfig {
            entrypoint: vec!["/bin/sh".into()],
            env: vec![PATH_ENV.into()],
            labels: description("busybox shell and tools"),
            ..ImageConfig::default()
        },
    })
}

fn python() -> Recipe {
    Recipe {
        base: Some(PYTHON_ROOTFS),
        entries: Vec::new(),
        config: ImageConfig {
            entrypoint: vec!["python3".into()],
            // C.UTF-8 is built into glibc, so UTF-8 I/O works without locale files.
            env: vec![PATH_ENV.into(), "LANG=C.UTF-8".into()],
            labels: description("Debian bookworm python3 with its standard library"),
            ..ImageConfig::default()
        },
    }
}

/// The python image's rootfs (same layer, same digest, stored once by containerd) plus the
/// runtime daemon and a `/workspace` owned by UID 1000, which it runs as (no passwd entry: nothing
/// needs one, and the rootfs's own files stay untouched): a drop-in for upstream's python-runtime and
/// sandboxd images, where commands find `python3`, a shell and coreutils.
fn runtime() -> anyhow::Result<Recipe> {
    let bin = static_binary("agent-sandbox-runtime")?;
    let entries = vec![
        static_executable(
            "usr/local/bin/agent-sandbox-runtime",
            &bin,
            "it must be built with -C target-feature=+crt-static",
        )?,
        Entry::Dir {
            path: "workspace".into(),
            mode: 0o755,
            owner: RUNTIME_USER,
        },
    ];
    Ok(Recipe {
        base: Some(PYTHON_ROOTFS),
        entries,
        config: ImageConfig {
            entrypoint: vec!["/usr/local/bin/agent-sandbox-runtime".into()],
            env: vec![
                PATH_ENV.into(),
                "LANG=C.UTF-8".into(),
                "HOME=/workspace".into(),
            ],
            working_dir: Some("/workspace".into()),
            user: Some(format!("{RUNTIME_USER}:{RUNTIME_USER}")),
            labels: description(
                "agent-sandbox-runtime (legacy python-runtime API :8888, sandboxd REST :8080, gRPC :9090) on Debian bookworm python3",
            ),
            exposed_ports: vec!["8888/tcp".into(), "8080/tcp".into(), "9090/tcp".into()],
            ..ImageConfig::default()
        },
    })
}

/// The router binary alone: no shell, no libc, not root.
/// One of the project's static binaries alone at `/<package>`, run as the nonroot user, labelled
/// with the version and commit it was built from (the binary's `--version` says the same): no
/// shell, no libc, nothing else to patch.
fn project_binary(package: &str, text: &str, ports: &[&str]) -> anyhow::Result<Recipe> {
    let bin = static_binary(package)?;
    let mut labels = description(text);
    labels.insert(
        "org.opencontainers.image.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    labels.insert("org.opencontainers.image.revision".into(), commit());
    labels.insert("org.opencontainers.image.title".into(), package.into());
    Ok(Recipe {
        base: None,
        entries: vec![static_executable(
            package,
            &bin,
            "it must be built with -C target-feature=+crt-static",
        )?],
        config: ImageConfig {
            entrypoint: vec![format!("/{package}")],
            env: vec![PATH_ENV.into()],
            user: Some(format!("{NONROOT_USER}:{NONROOT_USER}")),
            labels,
            exposed_ports: ports.iter().map(|p| (*p).to_owned()).collect(),
            ..ImageConfig::default()
        },
    })
}
