//! The `process.v1.ProcessService` gRPC service (default port 9090).
//!
//! Process ids are virtual: a counter in this daemon, not OS pids, valid while `Start`'s stream
//! is open. Output travels through a bounded channel, so a slow client slows the process down
//! (its pipe fills) instead of growing a buffer.
//!
//! ## PTYs
//!
//! `Start` with a `pty` (rows and cols between 1 and 65535, else `INVALID_ARGUMENT`) runs the
//! process on a pseudo-terminal of that size (see [`crate::pty`]), in its own process group like
//! any other. A terminal has one output, so everything the process writes, stderr included,
//! arrives as `stdout` events in the order it was written, with the terminal's conventions (`\r\n`
//! line ends, echoed input). `WriteStdin` writes to the terminal as a keyboard would: input is
//! echoed and edited by the line discipline; end of input sends `^D` (which ends input for a
//! reader at the start of a line, as typing it does). `ResizeTTY` sets the window size and sends
//! SIGWINCH to the process group; on a process started without a PTY it answers
//! `FAILED_PRECONDITION`.
//!
//! The terminal is not the process's controlling terminal (that would need code between fork and
//! exec, and this crate has no `unsafe`), so the kernel sends no terminal signals: the SIGWINCH
//! after a resize is sent by this service, and a `^C` written to stdin reaches the line discipline
//! but no process group receives SIGINT: a client interrupts with `SendSignal(SIGINT)`. An
//! interactive shell on it runs without job control.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;
use rustix::process::Signal as OsSignal;
use tokio::io::AsyncWrite;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::exec::{self, ExecError, Processes, Registered, Streams};
use crate::pty::{self, Master};
use crate::state::State;

mod stdio;
use stdio::{StdinMessage, feed_stdin, forward};

/// Code generated from `crates/client/proto/process/v1/process.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("process.v1");
}

use proto::process_service_server::ProcessServiceServer;
use proto::{
    ExecuteRequest, ExecuteResponse, ExitEvent, InitEvent, ProcessConfig, ResizeTtyRequest,
    ResizeTtyResponse, SendSignalRequest, SendSignalResponse, Signal, StartRequest, StartResponse,
    WriteStdinRequest, WriteStdinResponse, start_response::Event, write_stdin_request::Payload,
};

struct Running {
    group: i32,
    stdin: mpsc::Sender<StdinMessage>,
    /// The PTY's master, for a process started with one: what ResizeTTY resizes.
    terminal: Option<Master>,
}

/// The service.
#[derive(Clone)]
pub struct ProcessService {
    state: Arc<State>,
    next_id: Arc<AtomicI32>,
    running: Arc<Mutex<HashMap<i32, Running>>>,
}

impl ProcessService {
    /// A service over the daemon's state.
    pub fn new(state: Arc<State>) -> Self {
        Self {
            state,
            next_id: Arc::new(AtomicI32::new(1)),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The tonic server wrapper.
    pub fn into_server(self) -> ProcessServiceServer<Self> {
        ProcessServiceServer::new(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a started process its id, feeds `input` from WriteStdin (`eof` being what end of
    /// input writes) and makes it reachable by WriteStdin, SendSignal and ResizeTTY.
    fn register<W: AsyncWrite + Unpin + Send + 'static>(
        &self,
        group: i32,
        input: Option<W>,
        eof: &'static [u8],
        terminal: Option<Master>,
    ) -> i32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (stdin_tx, stdin_rx) = mpsc::channel::<StdinMessage>(8);
        if let Some(input) = input {
            tokio::spawn(feed_stdin(input, eof, stdin_rx));
        }
        self.lock().insert(
            id,
            Running {
                group,
                stdin: stdin_tx,
                terminal,
            },
        );
        id
    }

    /// Starts a validated process: on pipes, or on a new PTY of `size`, whose master is returned.
    fn spawn(
        plan: &Validated,
        size: Option<rustix::termios::Winsize>,
    ) -> Result<(Child, Option<Master>), Status> {
        let spawn = |streams| exec::spawn(&plan.argv, &plan.cwd, &plan.env, streams);
        let Some(size) = size else {
            let child = spawn(Streams::output_piped(Stdio::piped())).map_err(exec_status)?;
            return Ok((child, None));
        };
        let pty_error = |err: std::io::Error| Status::internal(format!("cannot open a PTY: {err}"));
        let (master, slave) = Master::open(size).map_err(pty_error)?;
        let child = spawn(Streams::terminal(slave).map_err(pty_error)?).map_err(exec_status)?;
        Ok((child, Some(master)))
    }

    /// Registers a started process and starts forwarding its output to `tx`; returns its id and
    /// the forwarding tasks.
    fn connect(
        &self,
        child: &mut Child,
        group: i32,
        terminal: Option<Master>,
        tx: &mpsc::Sender<Result<StartResponse, Status>>,
    ) -> (i32, Vec<JoinHandle<()>>) {
        match terminal {
            None => {
                let id = self.register(group, child.stdin.take(), b"", None);
                let outputs = vec![
                    tokio::spawn(forward(child.stdout.take(), tx.clone(), Event::Stdout)),
                    tokio::spawn(forward(child.stderr.take(), tx.clone(), Event::Stderr)),
                ];
                (id, outputs)
            }
            Some(master) => {
                let id = self.register(group, Some(master.clone()), pty::EOF, Some(master.clone()));
                // The terminal merged stdout and stderr: its one output is sent as stdout.
                let output = tokio::spawn(forward(Some(master), tx.clone(), Event::Stdout));
                (id, vec![output])
            }
        }
    }

    /// Streams a started process's output to `tx` until it exits, then its exit event; when the
    /// client goes away first, ends its whole group instead. Either way it stops being reachable.
    async fn supervise(
        self,
        id: i32,
        mut child: Child,
        group: i32,
        mut registered: Registered<Arc<Processes>>,
        tx: mpsc::Sender<Result<StartResponse, Status>>,
        outputs: Vec<JoinHandle<()>>,
    ) {
        let aborts: Vec<_> = outputs.iter().map(JoinHandle::abort_handle).collect();
        let outputs = futures::future::join_all(outputs);
        let mut client_gone = false;
        let exit = tokio::select! {
            status = child.wait() => status.ok().map(exec::exit_of),
            () = tx.closed() => { client_gone = true; None }
        };
        if !client_gone {
            // Drain the pipes (or the PTY), with a grace period for background children holding
            // them.
            if tokio::time::timeout(self.state.limits.drain_grace, outputs)
                .await
                .is_err()
            {
                exec::signal_group(group, OsSignal::KILL);
                // A process that left the group may still hold the pipes: stop reading.
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
            let code = exit.map_or(-1, exec::Exit::code);
            let _ = tx
                .send(Ok(StartResponse {
                    event: Some(Event::Exit(ExitEvent { exit_code: code })),
                }))
                .await;
            registered.finish();
        }
        // Dropped unfinished (client gone) the guard kills the whole group. Removing the entry
        // ends the stdin task; with it and the output task gone, a PTY's master is closed.
        self.lock().remove(&id);
        drop(registered);
    }
}

/// A validated process configuration.
#[derive(Debug, PartialEq)]
pub struct Validated {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside the root.
    pub cwd: PathBuf,
}

/// Checks a `ProcessConfig`: a non-empty command without NUL bytes, environment names that can
/// be set, and a working directory confined to the root.
pub fn validate(state: &State, config: Option<ProcessConfig>) -> Result<Validated, Status> {
    let config = config.ok_or_else(|| Status::invalid_argument("config is required"))?;
    if config.command.is_empty() || config.command[0].is_empty() {
        return Err(Status::invalid_argument(
            "config.command must name a program",
        ));
    }
    if config.command.iter().any(|a| a.contains('\0')) {
        return Err(Status::invalid_argument(
            "config.command contains a NUL byte",
        ));
    }
    let mut env: Vec<(String, String)> = config.env_vars.into_iter().collect();
    env.sort();
    if let Some((name, _)) = env
        .iter()
        .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
    {
        return Err(Status::invalid_argument(format!(
            "environment variable {name:?} cannot be set"
        )));
    }
    let cwd = match config.cwd.as_deref() {
        None | Some("") => state.root.path().to_path_buf(),
        Some(dir) => state
            .root
            .resolve(dir)
            .map_err(|err| Status::permission_denied(err.to_string()))?,
    };
    Ok(Validated {
        argv: config.command,
        env,
        cwd,
    })
}

fn exec_status(err: ExecError) -> Status {
    match err {
        ExecError::NotFound(_) => Status::not_found(err.to_string()),
        ExecError::PermissionDenied(_) => Status::permission_denied(err.to_string()),
        ExecError::Spawn { .. } => Status::internal(err.to_string()),
        ExecError::OutputTooLarge { .. } => Status::resource_exhausted(err.to_string()),
        ExecError::ShuttingDown => Status::unavailable(err.to_string()),
    }
}

type StartStream = Pin<Box<dyn Stream<Item = Result<StartResponse, Status>> + Send>>;

#[tonic::async_trait]
impl proto::process_service_server::ProcessService for ProcessService {
    type StartStream = StartStream;

    async fn start(
        &self,
        request: Request<StartRequest>,
    ) -> Result<Response<Self::StartStream>, Status> {
        let request = request.into_inner();
        let plan = validate(&self.state, request.config)?;
        let size = request
            .pty
            .map(|pty| pty::window_size(pty.rows, pty.cols))
            .transpose()
            .map_err(|err| Status::invalid_argument(format!("pty: {err}")))?;
        if self.state.processes.shutting_down() {
            return Err(exec_status(ExecError::ShuttingDown));
        }
        let (mut child, terminal) = Self::spawn(&plan, size)?;
        let group = child.id().map(|id| id as i32).unwrap_or_default();
        let registered = Registered::new(self.state.processes.clone(), group);
        let (tx, rx) = mpsc::channel::<Result<StartResponse, Status>>(8);
        let (id, outputs) = self.connect(&mut child, group, terminal, &tx);
        // Registered before the init event goes out, so WriteStdin and SendSignal cannot race it.
        let _ = tx
            .send(Ok(StartResponse {
                event: Some(Event::Init(InitEvent { process_id: id })),
            }))
            .await;
        tokio::spawn(
            self.clone()
                .supervise(id, child, group, registered, tx, outputs),
        );
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let plan = validate(&self.state, request.into_inner().config)?;
        let output = exec::run(
            &self.state.processes,
            &plan.argv,
            &plan.cwd,
            &plan.env,
            &self.state.limits,
        )
        .await
        .map_err(exec_status)?;
        let mut stderr = output.stderr;
        if output.exit == exec::Exit::TimedOut {
            stderr.extend_from_slice(
                exec::timeout_note(self.state.limits.timeout, &stderr).as_bytes(),
            );
        }
        Ok(Response::new(ExecuteResponse {
            exit_code: output.exit.code(),
            stdout: output.stdout,
            stderr,
        }))
    }

    async fn write_stdin(
        &self,
        request: Request<WriteStdinRequest>,
    ) -> Result<Response<WriteStdinResponse>, Status> {
        let request = request.into_inner();
        let sender = self
            .lock()
            .get(&request.process_id)
            .map(|r| r.stdin.clone())
            .ok_or_else(|| Status::not_found(format!("no process {}", request.process_id)))?;
        let data = match request.payload {
            Some(Payload::Input(bytes)) => Some(bytes),
            Some(Payload::Eof(())) => None,
            None => return Err(Status::invalid_argument("input or eof is required")),
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        sender.send((data, ack_tx)).await.map_err(|_| {
            Status::failed_precondition(format!("process {} has no open stdin", request.process_id))
        })?;
        match ack_rx.await {
            Ok(Ok(())) => Ok(Response::new(WriteStdinResponse {})),
            Ok(Err(err)) => Err(Status::failed_precondition(format!("stdin: {err}"))),
            Err(_) => Err(Status::failed_precondition("stdin is closed")),
        }
    }

    async fn send_signal(
        &self,
        request: Request<SendSignalRequest>,
    ) -> Result<Response<SendSignalResponse>, Status> {
        let request = request.into_inner();
        let signal = match Signal::try_from(request.signal) {
            Ok(Signal::Sigint) => OsSignal::INT,
            Ok(Signal::Sigterm) => OsSignal::TERM,
            Ok(Signal::Sigkill) => OsSignal::KILL,
            _ => {
                return Err(Status::invalid_argument(
                    "signal must be SIGINT, SIGTERM or SIGKILL",
                ));
            }
        };
        let group = self
            .lock()
            .get(&request.process_id)
            .map(|r| r.group)
            .ok_or_else(|| Status::not_found(format!("no process {}", request.process_id)))?;
        exec::signal_group(group, signal);
        Ok(Response::new(SendSignalResponse {}))
    }

    async fn resize_tty(
        &self,
        request: Request<ResizeTtyRequest>,
    ) -> Result<Response<ResizeTtyResponse>, Status> {
        let request = request.into_inner();
        let id = request.process_id;
        let size =
            pty::window_size(request.rows, request.cols).map_err(Status::invalid_argument)?;
        let (group, terminal) = self
            .lock()
            .get(&id)
            .map(|r| (r.group, r.terminal.clone()))
            .ok_or_else(|| Status::not_found(format!("no process {id}")))?;
        let terminal = terminal.ok_or_else(|| {
            Status::failed_precondition(format!(
                "process {id} was started without a PTY, so it has no window size to change"
            ))
        })?;
        terminal.resize(size).map_err(|err| {
            Status::failed_precondition(format!("cannot resize the PTY of process {id}: {err}"))
        })?;
        // The kernel signals only a controlling terminal's foreground group, and this PTY is
        // nobody's controlling terminal (see the module doc).
        exec::signal_group(group, OsSignal::WINCH);
        Ok(Response::new(ResizeTtyResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let limits = exec::Limits {
            timeout: std::time::Duration::from_secs(1),
            max_output: 1024,
            drain_grace: std::time::Duration::from_secs(1),
        };
        let state = State::new(dir.path(), limits, "SANDBOX_").unwrap();
        (dir, state)
    }

    fn config(argv: &[&str], cwd: Option<&str>, env: &[(&str, &str)]) -> Option<ProcessConfig> {
        Some(ProcessConfig {
            command: argv.iter().map(|a| (*a).to_owned()).collect(),
            env_vars: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cwd: cwd.map(str::to_owned),
        })
    }

    #[test]
    fn validation() {
        let (_dir, state) = state();
        let ok = validate(
            &state,
            config(&["ls", "-l"], Some("a/b"), &[("B", "2"), ("A", "1")]),
        )
        .unwrap();
        assert_eq!(ok.argv, ["ls", "-l"]);
        assert_eq!(ok.cwd, state.root.path().join("a/b"));
        assert_eq!(
            ok.env,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(
            validate(&state, config(&["ls"], None, &[])).unwrap().cwd,
            state.root.path()
        );
        let code = |c| validate(&state, c).unwrap_err().code();
        assert_eq!(code(None), tonic::Code::InvalidArgument);
        assert_eq!(code(config(&[], None, &[])), tonic::Code::InvalidArgument);
        assert_eq!(code(config(&[""], None, &[])), tonic::Code::InvalidArgument);
        assert_eq!(
            code(config(&["a\0"], None, &[])),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(config(&["ls"], None, &[("A=B", "1")])),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(config(&["ls"], None, &[("", "1")])),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(config(&["ls"], Some("../x"), &[])),
            tonic::Code::PermissionDenied
        );
    }
}
