//! Builds the control-plane multi-call binary from tests/cluster (Go) and caches it outside the repo.
//!
//! Besides the control plane it holds the real node's Kubernetes agents (kubelet, kube-proxy),
//! CoreDNS, kube-router's network-policy controller and helm, which share most of their packages
//! with it: one module, one build. The cache key is the
//! Kubernetes version plus a hash of the module and the link flags.

use std::path::PathBuf;

use anyhow::Context;

use super::gobuild::{self, GoBuild};
use super::layout::KUBE_VERSION;
use crate::workspace;

/// The programs inside the multi-call binary; each gets a symlink of its own name.
pub const PROGRAMS: [&str; 11] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kubelet",
    "kube-proxy",
    "coredns",
    "kube-router-netpol",
    "helm",
];

/// The helm release pinned in tests/cluster/go.mod (the one built against Kubernetes 1.36's client).
const HELM_VERSION: &str = "v4.2.4";

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
    // helm prints the minor version only unless its release build sets the full one.
    flags.push(format!(
        "-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    ));
    flags.join(" ")
}

fn cache_key() -> anyhow::Result<String> {
    gobuild::module_key(&go_module_dir(), &ldflags())
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

fn build(output: &std::path::Path) -> anyhow::Result<()> {
    let tmp = output.with_extension("partial");
    GoBuild {
        what: "the Kubernetes control plane and node agents",
        dir: &go_module_dir(),
        packages: &["."],
        output: &tmp,
        ldflags: &ldflags(),
        mod_mode: "readonly",
        expected: "about 10-12 minutes",
    }
    .run()?;
    std::fs::rename(&tmp, output).with_context(|| format!("moving {}", tmp.display()))
}
