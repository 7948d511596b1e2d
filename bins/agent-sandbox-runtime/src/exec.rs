//! Running one command to completion: its own process group, a timeout that kills the whole
//! group, and output buffers with a hard bound.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Bounds for one command.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long the command may run before its process group is killed.
    pub timeout: Duration,
    /// The most bytes kept of stdout, and separately of stderr; past it the command is killed
    /// and the call fails with [`ExecError::OutputTooLarge`].
    pub max_output: usize,
    /// How long to keep reading output after the command exited (a background child may still
    /// hold the pipes open).
    pub drain_grace: Duration,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It ran past the timeout and its process group was killed.
    TimedOut,
}

impl Exit {
    /// The exit code as a shell reports it: the code, 128 + the signal, or 124 for a timeout
    /// (what `timeout(1)` uses).
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
            Exit::TimedOut => 124,
        }
    }
}

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub exit: Exit,
}

/// Why a command produced no [`Output`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program does not exist.
    #[error("{0}: command not found")]
    NotFound(String),
    /// The program exists but may not be run, or the working directory may not be entered.
    #[error("{0}: permission denied")]
    PermissionDenied(String),
    /// Any other failure to start it.
    #[error("cannot start {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's message.
        message: String,
    },
    /// The command printed more than the bound; it was killed and its output dropped.
    #[error(
        "the command wrote more than {limit} bytes to {stream}; its process group was killed (raise --max-output-bytes, or write large output to a file and download it)"
    )]
    OutputTooLarge {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The bound in bytes.
        limit: usize,
    },
    /// The daemon is shutting down and starts nothing new.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

/// The process groups this daemon started and has not yet reaped, so shutdown can end them.
#[derive(Debug, Default)]
pub struct Processes {
    groups: Mutex<HashSet<i32>>,
    shutting_down: AtomicBool,
}

impl Processes {
    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Refuses new commands from now on and sends `signal` to every live process group.
    pub fn shut_down(&self, signal: Signal) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.signal_all(signal);
    }

    /// Sends `signal` to every live process group.
    pub fn signal_all(&self, signal: Signal) {
        let groups: Vec<i32> = self.lock().iter().copied().collect();
        for group in groups {
            signal_group(group, signal);
        }
    }

    /// How many process groups are live.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sends a signal to a whole process group; a group that is already gone is not an error.
pub fn signal_group(group: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(group) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// A process group in the registry. Dropped before [`Registered::finish`] (the caller went away,
/// for instance the client disconnected), it kills the group; either way it leaves the registry.
pub struct Registered<P: std::ops::Deref<Target = Processes>> {
    processes: P,
    group: i32,
    armed: bool,
}

impl<P: std::ops::Deref<Target = Processes>> Registered<P> {
    /// Adds `group` to the registry of `processes`.
    pub fn new(processes: P, group: i32) -> Self {
        processes.lock().insert(group);
        Self {
            processes,
            group,
            armed: true,
        }
    }

    /// The command ended normally: dropping the guard no longer kills the group (so a child
    /// started in the background with its output redirected keeps running).
    pub fn finish(&mut self) {
        self.armed = false;
    }
}

impl<P: std::ops::Deref<Target = Processes>> Drop for Registered<P> {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.group, Signal::KILL);
        }
        self.processes.lock().remove(&self.group);
    }
}

/// Runs `argv` in `cwd` with `env` added to the daemon's environment and waits for it.
pub async fn run(
    processes: &Processes,
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    limits: &Limits,
) -> Result<Output, ExecError> {
    if processes.shutting_down() {
        return Err(ExecError::ShuttingDown);
    }
    let mut child = spawn(argv, cwd, env, Streams::output_piped(Stdio::null()))?;
    let group = child.id().map(|id| id as i32).unwrap_or_default();
    let mut registered = Registered::new(processes, group);
    let readers = Readers::start(&mut child, limits.max_output);
    let (exit, overflowed) = wait_or_kill(&mut child, group, limits.timeout, &readers).await;
    let (out, err) = readers.drain(group, limits.drain_grace).await;
    registered.finish();
    if overflowed || out.overflowed || err.overflowed {
        return Err(ExecError::OutputTooLarge {
            stream: if out.overflowed { "stdout" } else { "stderr" },
            limit: limits.max_output,
        });
    }
    Ok(Output {
        stdout: out.bytes,
        stderr: err.bytes,
        exit: exit.unwrap_or(Exit::Signal(9)),
    })
}

/// Where a started command's standard streams go.
pub struct Streams {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
}

impl Streams {
    /// `stdin` as given, stdout and stderr piped to the daemon.
    pub fn output_piped(stdin: Stdio) -> Self {
        Self {
            stdin,
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        }
    }

    /// All three on one terminal, a PTY's slave.
    pub fn terminal(slave: OwnedFd) -> std::io::Result<Self> {
        Ok(Self {
            stdin: slave.try_clone()?.into(),
            stdout: slave.try_clone()?.into(),
            stderr: slave.into(),
        })
    }
}

/// Starts `argv` in `cwd` with `env` added, in a process group of its own (so it can be ended
/// whole), with its standard streams as `streams` say; killed if the handle is dropped. The
/// streams' descriptors are closed in the daemon once the child has its copies.
pub fn spawn(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    streams: Streams,
) -> Result<Child, ExecError> {
    let program = argv.first().cloned().unwrap_or_default();
    Command::new(&program)
        .args(&argv[1.min(argv.len())..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(streams.stdin)
        .stdout(streams.stdout)
        .stderr(streams.stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| spawn_error(&program, cwd, &err))
}

/// Waits for the command to exit; past `timeout`, or when either output overflows, kills its group
/// first. Returns how it ended (None when the overflow ended it) and whether it overflowed.
async fn wait_or_kill(
    child: &mut Child,
    group: i32,
    timeout: Duration,
    readers: &Readers,
) -> (Option<Exit>, bool) {
    tokio::select! {
        status = child.wait() => (status.ok().map(exit_of), false),
        () = tokio::time::sleep(timeout) => {
            signal_group(group, Signal::KILL);
            let _ = child.wait().await;
            (Some(Exit::TimedOut), false)
        }
        () = readers.overflow.notified() => {
            signal_group(group, Signal::KILL);
            let _ = child.wait().await;
            (None, true)
        }
    }
}

/// The two tasks reading a command's stdout and stderr.
struct Readers {
    stdout: Option<JoinHandle<Captured>>,
    stderr: Option<JoinHandle<Captured>>,
    /// Tells both to stop reading.
    stop: watch::Sender<bool>,
    /// Notified when either passes the bound.
    overflow: Arc<Notify>,
}

impl Readers {
    /// Starts reading both pipes of `child`, each up to `limit` bytes.
    fn start(child: &mut Child, limit: usize) -> Self {
        let overflow = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let stdout = child
            .stdout
            .take()
            .map(|pipe| tokio::spawn(read_bounded(pipe, limit, stop_rx.clone(), overflow.clone())));
        let stderr = child
            .stderr
            .take()
            .map(|pipe| tokio::spawn(read_bounded(pipe, limit, stop_rx.clone(), overflow.clone())));
        Self {
            stdout,
            stderr,
            stop,
            overflow,
        }
    }

    /// What is left to read once the command exited. A background child that keeps the pipes open
    /// is given `grace`, then its group is killed and reading stops.
    async fn drain(self, group: i32, grace: Duration) -> (Captured, Captured) {
        let Self {
            stdout,
            stderr,
            stop,
            ..
        } = self;
        let drained = async {
            let out = match stdout {
                Some(task) => task.await.unwrap_or_default(),
                None => Captured::default(),
            };
            let err = match stderr {
                Some(task) => task.await.unwrap_or_default(),
                None => Captured::default(),
            };
            (out, err)
        };
        tokio::pin!(drained);
        tokio::select! {
            both = &mut drained => both,
            () = tokio::time::sleep(grace) => {
                signal_group(group, Signal::KILL);
                let _ = stop.send(true);
                drained.await
            }
        }
    }
}

/// The line added to stderr when a command timed out (after a newline if `stderr` lacks one).
pub fn timeout_note(timeout: Duration, stderr: &[u8]) -> String {
    let newline = if stderr.is_empty() || stderr.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    format!("{newline}command timed out after {timeout:?}; its process group was killed\n")
}

/// How an exit status reads.
pub fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(1),
    }
}

/// Maps a failure to start `program` in `cwd` to an [`ExecError`].
pub fn spawn_error(program: &str, cwd: &Path, err: &std::io::Error) -> ExecError {
    match err.kind() {
        std::io::ErrorKind::NotFound if !cwd.is_dir() => ExecError::Spawn {
            program: program.to_owned(),
            message: format!("working directory {} does not exist", cwd.display()),
        },
        std::io::ErrorKind::NotFound => ExecError::NotFound(program.to_owned()),
        std::io::ErrorKind::PermissionDenied => ExecError::PermissionDenied(program.to_owned()),
        _ => ExecError::Spawn {
            program: program.to_owned(),
            message: err.to_string(),
        },
    }
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    overflowed: bool,
}

/// Reads a pipe to its end, keeping at most `limit` bytes; past the limit it notifies
/// `overflow` and stops.
async fn read_bounded<R: AsyncRead + Unpin>(
    mut pipe: R,
    limit: usize,
    mut stop: watch::Receiver<bool>,
    overflow: Arc<Notify>,
) -> Captured {
    let mut captured = Captured::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if captured.bytes.len() + n > limit {
                        captured.overflowed = true;
                        overflow.notify_one();
                        break;
                    }
                    captured.bytes.extend_from_slice(&chunk[..n]);
                }
            },
            _ = stop.changed() => break,
        }
    }
    captured
}
