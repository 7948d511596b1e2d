//! The `process.v1.ProcessService` gRPC service (default port 9090).
//!
//! Process ids are virtual: a counter in this daemon, not OS pids, valid while `Start`'s stream
//! is open. Output travels through a bounded channel, so a slow client slows the process down
//! (its pipe fills) instead of growing a buffer. PTYs are not supported yet: `Start` with a `pty`
//! answers `UNIMPLEMENTED` and `ResizeTTY` `FAILED_PRECONDITION`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;
use rustix::process::Signal as OsSignal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::exec::{self, ExecError, Processes, Registered};
use crate::state::State;

/// Code generated from `proto/process/v1/process.proto`.
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

/// Size of one output chunk on the stream.
const CHUNK: usize = 32 * 1024;

type StdinMessage = (Option<Vec<u8>>, oneshot::Sender<std::io::Result<()>>);

struct Running {
    group: i32,
    stdin: mpsc::Sender<StdinMessage>,
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

    /// Gives a started process its id, feeds its stdin from WriteStdin and makes it reachable by
    /// WriteStdin and SendSignal.
    fn register(&self, child: &mut Child, group: i32) -> i32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (stdin_tx, stdin_rx) = mpsc::channel::<StdinMessage>(8);
        if let Some(stdin) = child.stdin.take() {
            tokio::spawn(feed_stdin(stdin, stdin_rx));
        }
        self.lock().insert(
            id,
            Running {
                group,
                stdin: stdin_tx,
            },
        );
        id
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
    ) {
        let forward_out = tokio::spawn(forward(child.stdout.take(), tx.clone(), Event::Stdout));
        let forward_err = tokio::spawn(forward(child.stderr.take(), tx.clone(), Event::Stderr));
        let aborts = [forward_out.abort_handle(), forward_err.abort_handle()];
        let outputs = async {
            let _ = tokio::join!(forward_out, forward_err);
        };
        let mut client_gone = false;
        let exit = tokio::select! {
            status = child.wait() => status.ok().map(exec::exit_of),
            () = tx.closed() => { client_gone = true; None }
        };
        if !client_gone {
            // Drain the pipes, with a grace period for background children holding them.
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
        // Dropped unfinished (client gone) the guard kills the whole group.
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
        if request.pty.is_some() {
            return Err(Status::unimplemented(
                "PTYs are not supported by this runtime yet",
            ));
        }
        let plan = validate(&self.state, request.config)?;
        if self.state.processes.shutting_down() {
            return Err(exec_status(ExecError::ShuttingDown));
        }
        let mut child =
            exec::spawn(&plan.argv, &plan.cwd, &plan.env, Stdio::piped()).map_err(exec_status)?;
        let group = child.id().map(|id| id as i32).unwrap_or_default();
        let registered = Registered::new(self.state.processes.clone(), group);
        let id = self.register(&mut child, group);
        let (tx, rx) = mpsc::channel::<Result<StartResponse, Status>>(8);
        // Registered before the init event goes out, so WriteStdin and SendSignal cannot race it.
        let _ = tx
            .send(Ok(StartResponse {
                event: Some(Event::Init(InitEvent { process_id: id })),
            }))
            .await;
        tokio::spawn(self.clone().supervise(id, child, group, registered, tx));
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
        let id = request.into_inner().process_id;
        if !self.lock().contains_key(&id) {
            return Err(Status::not_found(format!("no process {id}")));
        }
        Err(Status::failed_precondition(format!(
            "process {id} has no PTY"
        )))
    }
}

/// Writes what WriteStdin sends to the child's stdin; `None` closes it.
async fn feed_stdin(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<StdinMessage>) {
    while let Some((data, ack)) = rx.recv().await {
        match data {
            Some(bytes) => {
                let result = async {
                    stdin.write_all(&bytes).await?;
                    stdin.flush().await
                }
                .await;
                let failed = result.is_err();
                let _ = ack.send(result);
                if failed {
                    return;
                }
            }
            None => {
                let _ = ack.send(Ok(()));
                return;
            }
        }
    }
}

/// Sends a pipe's output as events until its end (or until the client is gone).
async fn forward<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    tx: mpsc::Sender<Result<StartResponse, Status>>,
    event: fn(Vec<u8>) -> Event,
) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let item = Ok(StartResponse {
                    event: Some(event(chunk[..n].to_vec())),
                });
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
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
