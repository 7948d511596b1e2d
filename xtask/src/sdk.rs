//! The Python environment with upstream's SDK (`k8s-agent-sandbox`, pinned, unchanged) that the SDK
//! suite (tests/sdk) and the demo use: a venv holding exactly the packages of
//! `tests/sdk/requirements.txt`, every file checked against its hash. `cargo xtask sdk-python` makes
//! it (once) and prints its interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::workspace::{self, run as run_cmd};

/// The pinned requirements, relative to the workspace root.
pub const REQUIREMENTS: &str = "tests/sdk/requirements.txt";

/// Environment variable naming the interpreter the e2e `sdk` suite runs pytest with
/// (tests/e2e/tests/sdk_support).
pub const PYTHON_ENV: &str = "AGENT_SANDBOX_SDK_PYTHON";

/// Debian's interpreter, from the `python3` and `python3-venv` packages `.ci/run` installs: the
/// project names the one it tests with instead of whatever `python3` is first on `PATH` (a pyenv
/// shim, a virtualenv), and the SDK needs Python 3.11 or newer, which bookworm's is.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Written into the venv once every package is installed: a venv without it is incomplete (an
/// interrupted install) and is made again.
const COMPLETE_MARKER: &str = "agent-sandbox-complete";

/// The venv's interpreter, after making the venv if this machine has none for the current
/// requirements: `~/.cache/agent-sandbox/python/sdk-<hash>/bin/python`, where `<hash>` covers the
/// requirements file and the system interpreter's version, so a change to either makes a new one.
pub fn ensure_python() -> anyhow::Result<PathBuf> {
    let requirements = workspace::root().join(REQUIREMENTS);
    let pinned = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let version = system_python_version()?;
    let mut hasher = Sha256::new();
    hasher.update(&pinned);
    hasher.update(version.as_bytes());
    let key = format!("{:x}", hasher.finalize());
    let venv = workspace::cache_root()
        .join("python")
        .join(format!("sdk-{}", &key[..16]));
    let python = venv.join("bin/python");
    if venv.join(COMPLETE_MARKER).exists() {
        return Ok(python);
    }
    eprintln!(
        "[sdk] making {} ({version}, the packages of {REQUIREMENTS}; about 30 s)",
        venv.display()
    );
    make_venv(&venv, &requirements)?;
    std::fs::write(venv.join(COMPLETE_MARKER), &key)
        .with_context(|| format!("marking {} complete", venv.display()))?;
    Ok(python)
}

fn system_python_version() -> anyhow::Result<String> {
    let output = Command::new(SYSTEM_PYTHON)
        .arg("--version")
        .output()
        .with_context(|| {
            format!("{SYSTEM_PYTHON} is needed for the SDK suite: install the Debian packages python3 python3-venv")
        })?;
    if !output.status.success() {
        bail!("{SYSTEM_PYTHON} --version failed");
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn make_venv(venv: &Path, requirements: &Path) -> anyhow::Result<()> {
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .with_context(|| format!("removing the incomplete {}", venv.display()))?;
    }
    run_cmd(Command::new(SYSTEM_PYTHON).arg("-m").arg("venv").arg(venv)).context(
        "making the venv failed: install the Debian package python3-venv (which .ci/run installs)",
    )?;
    // --require-hashes with --no-deps: exactly the listed files, nothing resolved at install time;
    // --only-binary: no package's build scripts run here.
    run_cmd(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--require-hashes", "--no-deps", "--only-binary=:all:", "-r"])
            .arg(requirements),
    )
    .context("installing the SDK's pinned packages from PyPI failed")
}

/// `cargo xtask sdk-python`: makes (or finds) the venv and prints its interpreter.
pub fn run() -> anyhow::Result<()> {
    println!("{}", ensure_python()?.display());
    Ok(())
}
