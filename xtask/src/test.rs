//! `cargo xtask test`: the one command that runs every test of the project.

use crate::workspace::{cargo, run as run_cmd};

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the unit and property tests of every crate.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    run_cmd(cargo().args(["test", "--workspace", "--all-targets"]))
}
