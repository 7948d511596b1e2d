//! The project's own binaries that go into images, built statically linked: the images have no
//! libc (router) or another distribution's (runtime), so a binary must bring everything along.
//!
//! `-C target-feature=+crt-static` on the host's `*-unknown-linux-gnu` target links glibc
//! statically; the musl target is not installable on the project's machines. Every image binary is
//! built by one `cargo build` so the packages share one feature resolution and nothing is compiled
//! twice, and only once per xtask run.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::bail;

use crate::workspace;

/// Packages whose binaries go into images (each package's binary has its name).
pub const PACKAGES: [&str; 3] = [
    "agent-sandbox-controller",
    "agent-sandbox-router",
    "agent-sandbox-runtime",
];

/// The environment variable the binaries read at compile time for what `--version` prints after
/// their name (their package version alone when it is not set, as in a plain `cargo build`).
const VERSION_ENV: &str = "AGENT_SANDBOX_VERSION";

/// The host's glibc target: an explicit `--target` also keeps the static flag away from build
/// scripts and proc macros, which must stay dynamic to be loaded by the compiler.
fn target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Where cargo puts its output: `$CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| workspace::root().join("target"), PathBuf::from)
}

/// The statically linked release binary of `package` (one of [`PACKAGES`]), built if needed.
pub fn static_binary(package: &str) -> anyhow::Result<PathBuf> {
    if !PACKAGES.contains(&package) {
        bail!("{package} is not one of the image binaries {PACKAGES:?}");
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(dir.join(package))
}

fn build() -> anyhow::Result<PathBuf> {
    let target = target();
    eprintln!(
        "[images] building static {} for {target} (release; the first build takes a few minutes)",
        PACKAGES.join(", ")
    );
    let mut cmd = workspace::cargo();
    cmd.args(["build", "--release", "--target", &target]);
    for package in PACKAGES {
        cmd.args(["--package", package]);
    }
    // RUSTFLAGS (not target config) so a user's own RUSTFLAGS cannot silently drop the flag; with
    // --target it applies to the target's crates only.
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(
            VERSION_ENV,
            format!(
                "{} (commit {})",
                env!("CARGO_PKG_VERSION"),
                workspace::commit()
            ),
        );
    workspace::run(&mut cmd)?;
    Ok(target_dir().join(target).join("release"))
}
