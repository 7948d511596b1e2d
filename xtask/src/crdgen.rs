//! `cargo xtask crdgen`: writes deploy/crds/*.yaml from the Rust API types.

/// Flags of `cargo xtask crdgen`.
#[derive(clap::Args)]
pub struct Args {
    /// Fail when the committed files differ from what the types generate, instead of writing them.
    #[arg(long)]
    check: bool,
}

/// Generates (or checks) the CRD manifests.
pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("crdgen is not implemented yet (check={})", args.check)
}
