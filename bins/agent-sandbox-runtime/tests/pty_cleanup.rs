//! A PTY's master is closed when its process ends and when the client goes away. A test binary of
//! its own: it counts the PTY masters this process holds, which tests running beside it would change.

#[allow(dead_code)]
mod process_service;
// Shared with tests that use all of it; this one only polls.
#[allow(dead_code)]
mod support;

use agent_sandbox_runtime::grpc::proto::Pty;
use process_service::{start, start_process};
use support::poll;

/// How many PTY masters this process has open.
fn masters() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target == "/dev/ptmx" || target == "/dev/pts/ptmx")
        .count()
}

#[tokio::test]
async fn no_master_outlives_its_process() {
    let (mut client, state, _dir) = start().await;
    let before = masters();
    let size = Some(Pty { rows: 24, cols: 80 });

    let (mut stream, _) = start_process(&mut client, &["true"], size).await;
    while stream.message().await.unwrap().is_some() {}
    assert!(poll(|| masters() == before).await, "after the exit");

    let (stream, _) = start_process(&mut client, &["sleep", "30"], size).await;
    assert_eq!(masters(), before + 1);
    drop(stream);
    assert!(
        poll(|| masters() == before && state.processes.live() == 0).await,
        "after the client went away"
    );
}
