//! `agent-sandbox-hostcmd`: running a program on this machine to completion and reading its output.
//!
//! xtask (which sets the machine up for the local cluster), the benchmarks and the end-to-end suites
//! (which inspect what xtask set up) all call host programs such as `openssl`, `ip` and `iptables`;
//! they share this one way of doing it, so a failure always names the command line and carries its
//! stderr. A crate of its own because xtask depends on no test crate and the tests on no part of
//! xtask.

use std::ffi::OsStr;
use std::process::Command;

use anyhow::{Context, bail};

/// Runs `program` with `args` and returns its stdout (see [`stdout`]).
pub fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    stdout(Command::new(program).args(args))
}

/// Runs a prepared command to completion and returns its stdout; fails with the command line and its
/// stderr when it cannot start or exits non-zero.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        let args: Vec<&OsStr> = cmd.get_args().collect();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_of_a_program_that_succeeds() {
        assert_eq!(output("echo", &["a", "b"]).ok().as_deref(), Some("a b\n"));
    }

    #[test]
    fn a_failure_names_the_command_line_and_carries_stderr() {
        let error = output("sh", &["-c", "echo nope >&2; exit 3"]).map_err(|e| format!("{e:#}"));
        assert_eq!(
            error,
            Err("`sh -c echo nope >&2; exit 3` failed: nope".to_owned())
        );
    }

    #[test]
    fn a_program_that_cannot_start_is_named() {
        let error = output("no-such-program-xyz", &[]).map_err(|e| format!("{e:#}"));
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.starts_with("running no-such-program-xyz")),
            "{error:?}"
        );
    }
}
