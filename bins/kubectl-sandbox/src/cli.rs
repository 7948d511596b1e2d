//! The command line: `kubectl sandbox <command>`, as kubectl runs a plugin named `kubectl-sandbox`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Agent Sandbox from the terminal: claim sandboxes from warm pools, run commands and copy files in
/// them, suspend, resume and delete them.
#[derive(Debug, Parser)]
#[command(name = "kubectl sandbox", bin_name = "kubectl sandbox", version)]
pub struct Cli {
    /// Namespace of the claims (and their warm pools).
    #[arg(
        short,
        long,
        global = true,
        default_value = "default",
        env = "KUBECTL_SANDBOX_NAMESPACE"
    )]
    pub namespace: String,
    /// Reach sandboxes through the router at this URL instead of a port-forward to
    /// `sandbox-router-svc` in agent-sandbox-system.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KUBECTL_SANDBOX_ROUTER_URL"
    )]
    pub router_url: Option<String>,
    /// Output format of `claim` and `ls`.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Columns for people.
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Claim a sandbox from a warm pool and print the claim's name.
    Claim {
        /// The SandboxWarmPool to claim from.
        #[arg(long)]
        pool: String,
        /// Name of the claim (generated when left out).
        #[arg(long)]
        name: Option<String>,
        /// Wait until the claim is Ready (with progress on stderr), failing with its reason.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 180, value_name = "SECONDS")]
        timeout: u64,
    },
    /// List the claims and their sandboxes.
    Ls,
    /// Run a command in a claimed sandbox; its output streams, and its exit code is ours.
    Exec {
        /// The claim.
        claim: String,
        /// Kill the command after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Copy a file into or out of a sandbox: `kubectl sandbox cp local CLAIM:path` or
    /// `kubectl sandbox cp CLAIM:path local`.
    Cp {
        /// Where from.
        source: String,
        /// Where to.
        destination: String,
    },
    /// Suspend a claimed sandbox: its Pod goes, its volumes stay.
    Suspend {
        /// The claim.
        claim: String,
    },
    /// Resume a suspended sandbox and wait until it is Ready.
    Resume {
        /// The claim.
        claim: String,
    },
    /// Delete claims, and with them their sandboxes.
    Rm {
        /// The claims.
        #[arg(required = true)]
        claims: Vec<String>,
    },
    /// Print the logs of a claimed sandbox's Pod.
    Logs {
        /// The claim.
        claim: String,
        /// Keep streaming new lines.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print a shell completion script (`source <(kubectl-sandbox completion bash)`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// One side of `cp`: a local path, or `CLAIM:path` in a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file on this machine.
    Local(PathBuf),
    /// A file in the sandbox of a claim.
    Sandbox {
        /// The claim.
        claim: String,
        /// The path inside the sandbox (relative to its root).
        path: String,
    },
}

impl Location {
    /// `CLAIM:path` names a sandbox file (a claim name has no `/` and is not empty); anything else,
    /// including `./a:b` and `/tmp/x`, a local one.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some((claim, path))
                if !claim.is_empty() && !claim.contains('/') && !path.is_empty() =>
            {
                Self::Sandbox {
                    claim: claim.to_owned(),
                    path: path.to_owned(),
                }
            }
            _ => Self::Local(PathBuf::from(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_prefix_names_a_sandbox_file_and_anything_else_a_local_one() {
        assert_eq!(
            Location::parse("task:data/out.csv"),
            Location::Sandbox {
                claim: "task".into(),
                path: "data/out.csv".into()
            }
        );
        for local in ["out.csv", "./a:b", "/tmp/a:b", ":x", "task:"] {
            assert_eq!(
                Location::parse(local),
                Location::Local(local.into()),
                "{local}"
            );
        }
    }

    #[test]
    fn exec_takes_everything_after_the_double_dash() {
        let cli = Cli::parse_from(["kubectl-sandbox", "exec", "task", "--", "ls", "-la", "/"]);
        let Command::Exec { claim, command, .. } = cli.command else {
            panic!("not exec");
        };
        assert_eq!(
            (claim.as_str(), command),
            ("task", vec!["ls".into(), "-la".into(), "/".into()])
        );
    }
}
