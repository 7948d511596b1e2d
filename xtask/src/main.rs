//! `cargo xtask`: the project's automation, one module per subcommand.

mod apiref;
mod bench;
mod cluster;
mod crdgen;
mod demo;
mod images;
mod imports;
mod sdk;
mod test;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "agent-sandbox-rs project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a benchmark scenario on the local control plane (docs/benchmarks.md).
    Bench(bench::Args),
    /// Build, start, inspect or stop the local Kubernetes control plane (docs/local-cluster.md).
    Cluster(cluster::Args),
    /// Generate deploy/crds/*.yaml and docs/api-reference.md from the Rust API types.
    Crdgen(crdgen::Args),
    /// Run the main job: local control plane, controller and a demo claim becoming Ready.
    Demo(demo::Args),
    /// Build the project's container images as OCI archives (no registry, no engine); optionally import them.
    Images(images::Args),
    /// Check that no module imports an item of its ancestors and no sibling modules use each other.
    Imports(imports::Args),
    /// Make (once) the venv with upstream's pinned Python SDK (tests/sdk/requirements.txt); print its python.
    SdkPython,
    /// Run every test: unit, property and end-to-end.
    Test(test::Args),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Crdgen(args) => crdgen::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Images(args) => images::run(&args),
        Command::Imports(args) => imports::run(&args),
        Command::SdkPython => sdk::run(),
        Command::Test(args) => test::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with its causes, whatever RUST_BACKTRACE says.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
