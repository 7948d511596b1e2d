//! Running one command: exit codes, output bounds, timeouts that end the whole process group.

mod support;

use std::path::Path;
use std::time::Duration;

use agent_sandbox_runtime::exec::{ExecError, Exit, Limits, Output, Processes, run};
use rustix::process::Signal;

use support::{dead, poll, read_pid};

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        max_output: 1024,
        drain_grace: Duration::from_secs(2),
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Runs `words` in `/` with the default [`limits`].
async fn run_in_root(processes: &Processes, words: &[&str]) -> Result<Output, ExecError> {
    run(processes, &argv(words), Path::new("/"), &[], &limits()).await
}

#[tokio::test]
async fn output_and_exit_code() {
    let processes = Processes::default();
    let out = run_in_root(
        &processes,
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit, Exit::Code(3));
    assert_eq!(processes.live(), 0);
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let processes = Processes::default();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    // A background child records its PID; the foreground outlives the timeout.
    let script = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
    let mut limits = limits();
    limits.timeout = Duration::from_millis(300);
    let out = run(
        &processes,
        &argv(&["/bin/sh", "-c", &script]),
        dir.path(),
        &[],
        &limits,
    )
    .await
    .unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert_eq!(out.exit.code(), 124);
    let child = read_pid(&pid_file);
    assert!(
        poll(|| dead(child)).await,
        "the background child survived the timeout"
    );
}

#[tokio::test]
async fn output_past_the_bound_is_an_error() {
    let processes = Processes::default();
    let err = run_in_root(
        &processes,
        &["/bin/sh", "-c", "yes | head -c 100000; sleep 30"],
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        ExecError::OutputTooLarge {
            stream: "stdout",
            limit: 1024
        }
    ));
}

#[tokio::test]
async fn missing_program() {
    let processes = Processes::default();
    let err = run_in_root(&processes, &["no-such-program-xyz"])
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn nothing_starts_after_shutdown() {
    let processes = Processes::default();
    processes.shut_down(Signal::TERM);
    let err = run_in_root(&processes, &["true"]).await.unwrap_err();
    assert!(matches!(err, ExecError::ShuttingDown));
}
