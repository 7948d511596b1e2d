//! Builds the real node's programs into the cache: containerd, its runc shim, `ctr`, `crictl`, the
//! CNI plugins and the pause program from tests/node (one module, one `go build`), and gVisor's
//! `runsc` and containerd shim from a patched copy of the gVisor module.

use std::path::{Path, PathBuf};

use agent_sandbox_hostcmd as hostcmd;
use anyhow::{Context, bail};

use crate::cluster::gobuild::{self, GoBuild};
use crate::workspace;

/// The gVisor release, as the Go module proxy serves it (gVisor publishes only pseudo-versions).
pub const GVISOR_VERSION: &str = "v0.0.0-20260905035102-160fafc42237";

/// The programs built from tests/node, by package.
const NODE_PACKAGES: [&str; 9] = [
    "github.com/containerd/containerd/v2/cmd/containerd",
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
    "github.com/containerd/containerd/v2/cmd/ctr",
    "sigs.k8s.io/cri-tools/cmd/crictl",
    "github.com/containernetworking/plugins/plugins/main/bridge",
    "github.com/containernetworking/plugins/plugins/main/loopback",
    "github.com/containernetworking/plugins/plugins/ipam/host-local",
    "github.com/containernetworking/plugins/plugins/meta/portmap",
    "./pause",
];

/// The one line of gVisor's shim this project changes, and what it becomes.
///
/// The shim lowers its own `oom_score_adj` to -999 and gives up when that fails. Lowering it needs
/// `CAP_SYS_RESOURCE`, which root on these Firecracker machines does not have, so every gVisor pod would
/// fail to start. The patched shim goes on when (and only when) the write is refused for lack of
/// permission; any other error still fails. Nothing else of gVisor is changed.
const SHIM_PATCH: (&str, &str) = (
    "if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {",
    "if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil && !os.IsPermission(err) {",
);

/// The file of the gVisor module [`SHIM_PATCH`] applies to.
const SHIM_PATCH_FILE: &str = "pkg/shim/v1/manager.go";

/// Where the node's programs live.
pub struct NodeBinaries {
    /// containerd, shims, ctr, crictl, the CNI plugins and pause.
    pub node_bin: PathBuf,
    /// runsc and containerd-shim-runsc-v1.
    pub gvisor_bin: PathBuf,
}

impl NodeBinaries {
    /// Path of a program of tests/node.
    pub fn node(&self, name: &str) -> PathBuf {
        self.node_bin.join(name)
    }
}

fn node_module_dir() -> PathBuf {
    workspace::root().join("tests").join("node")
}

const LDFLAGS: &str = "-s -w";

/// The cached binaries for the current modules, without building.
pub fn cached() -> anyhow::Result<NodeBinaries> {
    let node_key = gobuild::module_key(&node_module_dir(), LDFLAGS)?;
    let gvisor_key = gvisor_key();
    Ok(NodeBinaries {
        node_bin: workspace::cache_root()
            .join(format!("node-{node_key}"))
            .join("bin"),
        gvisor_bin: workspace::cache_root()
            .join(format!("gvisor-{GVISOR_VERSION}-{gvisor_key}"))
            .join("bin"),
    })
}

fn gvisor_key() -> String {
    let mut hash = gobuild::FNV_START;
    for part in [SHIM_PATCH.0, SHIM_PATCH.1, SHIM_PATCH_FILE, LDFLAGS] {
        hash = gobuild::fnv1a(part.as_bytes(), hash);
    }
    format!("{hash:016x}")
}

/// Returns the node's binaries, building what the cache lacks.
pub fn ensure() -> anyhow::Result<NodeBinaries> {
    let bins = cached()?;
    if !bins.node("pause").exists() {
        let partial = bins.node_bin.with_extension("partial");
        recreate_dir(&partial)?;
        GoBuild {
            what: "the node runtime (containerd, runc shim, crictl, CNI plugins)",
            dir: &node_module_dir(),
            packages: &NODE_PACKAGES,
            output: &partial,
            ldflags: LDFLAGS,
            mod_mode: "readonly",
            expected: "about 6-7 minutes",
        }
        .run()?;
        replace_dir(&partial, &bins.node_bin)?;
    }
    if !bins.gvisor_bin.join("runsc").exists() {
        build_gvisor(&bins.gvisor_bin)?;
    }
    Ok(bins)
}

/// Copies the gVisor module out of the module cache, applies [`SHIM_PATCH`], builds runsc and the shim.
fn build_gvisor(bin: &Path) -> anyhow::Result<()> {
    let go = gobuild::find_go()?;
    let module = format!("gvisor.dev/gvisor@{GVISOR_VERSION}");
    eprintln!("[cluster] downloading {module}");
    let answer = hostcmd::stdout(
        std::process::Command::new(&go)
            .args(["mod", "download", "-json", &module])
            .env("GOTOOLCHAIN", "local")
            .current_dir(node_module_dir()),
    )?;
    let info: serde_json::Value =
        serde_json::from_str(&answer).context("reading go mod download's answer")?;
    let source = info["Dir"]
        .as_str()
        .context("go mod download named no directory")?;
    let root = bin.parent().context("gVisor cache directory")?;
    let src = root.join("src");
    recreate_dir(&src)?;
    workspace::run(
        std::process::Command::new("cp")
            .args(["-r", "--no-preserve=mode"])
            .arg(format!("{source}/."))
            .arg(&src),
    )?;
    patch_shim(&src.join(SHIM_PATCH_FILE))?;
    let partial = bin.with_extension("partial");
    recreate_dir(&partial)?;
    GoBuild {
        what: "gVisor (runsc and its containerd shim, patched)",
        dir: &src,
        packages: &["./runsc", "./shim"],
        output: &partial,
        ldflags: LDFLAGS,
        mod_mode: "mod",
        expected: "about 6 minutes",
    }
    .run()?;
    std::fs::rename(
        partial.join("shim"),
        partial.join("containerd-shim-runsc-v1"),
    )
    .context("naming the gVisor shim")?;
    replace_dir(&partial, bin)?;
    std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))
}

fn patch_shim(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (old, new) = SHIM_PATCH;
    if text.matches(old).count() != 1 {
        bail!(
            "the gVisor shim patch no longer applies: {} does not contain exactly one `{old}` \
             (was GVISOR_VERSION changed? update SHIM_PATCH in xtask/src/cluster/node/build.rs)",
            path.display()
        );
    }
    std::fs::write(path, text.replace(old, new))
        .with_context(|| format!("writing {}", path.display()))
}

fn recreate_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn replace_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
    }
    std::fs::rename(from, to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))
}
