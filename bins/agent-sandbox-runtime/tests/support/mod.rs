//! Waiting on processes in the integration tests.

use std::path::Path;
use std::time::Duration;

/// Polls `done` every 20 ms until it holds or 10 s have passed; whether it held.
pub async fn poll(done: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether process `pid` is gone or a zombie (dead, not yet reaped by whoever inherited it).
pub fn dead(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    matches!(state, None | Some("Z" | "X"))
}

/// The process id a test command wrote to `file`.
pub fn read_pid(file: &Path) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
