//! Running commands: one-shot through the legacy `POST /execute` (port 8888) or, with `env` or
//! `cwd`, through gRPC `ProcessService.Execute`; streamed through `ProcessService.Start` (port
//! 9090). Both gRPC calls go through the router over prior-knowledge HTTP/2, or to the pod directly.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use hyper::Method;
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use crate::error::{Error, Result, one_line};
use crate::http::{self, About, Call, HttpClient, Route};

/// Code generated from `proto/process/v1/process.proto` (client side only).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod proto {
    tonic::include_proto!("process.v1");
}

use proto::process_service_client::ProcessServiceClient;
use proto::start_response::Event;
use proto::{ExecuteRequest, ProcessConfig, StartRequest};

/// How long past its own timeout `run` waits for the runtime's answer (which comes as soon as it
/// killed the command) before giving up on it.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// The exit code of a command the runtime killed for its timeout (as `timeout(1)` reports it).
pub const TIMED_OUT_EXIT_CODE: i32 = 124;

/// How to run a command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Kill the command (its whole process group) after this long; `None` leaves it to the
    /// runtime's limit (300 s by default). Through a router the wait for `run`'s answer is also
    /// bounded by the router's `--proxy-timeout` (180 s by default).
    pub timeout: Option<Duration>,
    /// Extra environment variables, overriding the sandbox's own (runs over gRPC).
    pub env: BTreeMap<String, String>,
    /// Working directory, inside the sandbox's root (`/workspace`); the root when `None` (runs over
    /// gRPC when set).
    pub cwd: Option<String>,
}

impl RunOptions {
    /// Only the gRPC process service takes an environment or a working directory.
    pub(crate) fn needs_grpc(&self) -> bool {
        !self.env.is_empty() || self.cwd.is_some()
    }

    /// Refuses a zero timeout (the runtime would refuse it too, less clearly).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidArgument(
                "a command timeout must be longer than zero".to_owned(),
            ));
        }
        Ok(())
    }
}

/// What a command did (the Python SDK's `ExecutionResult`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// What it wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// What it wrote to stderr (plus the runtime's note when it was killed for its timeout).
    pub stderr: String,
    /// Its exit code: 124 after a timeout, 127 for a program that does not exist, 128 + N when
    /// signal N ended it.
    pub exit_code: i32,
    /// Whether the runtime killed it for running past its timeout.
    #[serde(default)]
    pub timed_out: bool,
}

/// One event of a streamed command, in the order the runtime sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputEvent {
    /// A chunk of its stdout.
    Stdout(Bytes),
    /// A chunk of its stderr.
    Stderr(Bytes),
    /// It exited with this code; always the last event.
    Exit(i32),
}

/// The events of a streamed command; dropping it ends the command (the runtime kills its process
/// group when the stream closes).
pub type OutputStream = BoxStream<'static, Result<OutputEvent>>;

/// The argv that runs `command` as a shell command line, as the Python SDK sends it to sandboxd.
fn shell(command: &str, options: &RunOptions) -> ProcessConfig {
    ProcessConfig {
        command: vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()],
        env_vars: options.env.clone().into_iter().collect(),
        cwd: options.cwd.clone(),
    }
}

/// The body of `POST /execute`.
#[derive(Serialize)]
struct ExecuteBody<'a> {
    command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<f64>,
}

/// The JSON body of `POST /execute` (the Python SDK's `LegacyExecuteRequest`).
fn execute_body(command: &str, options: &RunOptions) -> Result<Vec<u8>> {
    let body = ExecuteBody {
        command,
        timeout_seconds: options.timeout.map(|t| t.as_secs_f64()),
    };
    serde_json::to_vec(&body).map_err(|err| Error::InvalidArgument(format!("command: {err}")))
}

/// `POST /execute` of `command` along `route` (to port 8888), the answer read into a result.
pub(crate) async fn execute_legacy(
    client: &HttpClient,
    route: &Route,
    command: &str,
    options: &RunOptions,
    about: About<'_>,
) -> Result<CommandResult> {
    let body = execute_body(command, options)?;
    let answer = async {
        let call = Call {
            method: Method::POST,
            path: "/execute".to_owned(),
            content_type: Some("application/json"),
            body: http::full(body),
        };
        let response = http::send(client, route, call, about).await?;
        let body = http::read_body(response, route).await?;
        serde_json::from_slice::<CommandResult>(&body).map_err(|err| {
            Error::Protocol(format!(
                "/execute answered {:?}: {err}",
                one_line(&String::from_utf8_lossy(&body))
            ))
        })
    };
    match options.timeout {
        None => answer.await,
        Some(after) => tokio::time::timeout(after + ANSWER_MARGIN, answer)
            .await
            .map_err(|_| Error::CommandTimeout { after })?,
    }
}

/// A gRPC request carrying `route`'s headers and, with a timeout, a deadline the runtime enforces
/// (it kills the process group when the deadline passes).
fn grpc_request<T>(
    message: T,
    route: &Route,
    timeout: Option<Duration>,
) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    for (name, value) in &route.headers {
        let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|err| Error::InvalidArgument(format!("header {name}: {err}")))?;
        let value = MetadataValue::try_from(value.as_str())
            .map_err(|err| Error::InvalidArgument(format!("header {name}: {err}")))?;
        request.metadata_mut().insert(key, value);
    }
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    Ok(request)
}

/// A gRPC status as an error: no connection, or the service's answer.
fn status_error(status: &tonic::Status, route: &Route) -> Error {
    if status.code() == tonic::Code::Unavailable {
        return Error::Connection {
            target: route.base.clone(),
            message: one_line(status.message()),
        };
    }
    Error::Process {
        code: status.code(),
        message: one_line(status.message()),
    }
}

/// `ProcessService.Execute` of `command` through `/bin/sh -c`; a deadline that passed is a result
/// with `timed_out`, as `/execute` reports it.
pub(crate) async fn execute_grpc(
    channel: Channel,
    route: &Route,
    command: &str,
    options: &RunOptions,
) -> Result<CommandResult> {
    let request = ExecuteRequest {
        config: Some(shell(command, options)),
    };
    let request = grpc_request(request, route, options.timeout)?;
    match ProcessServiceClient::new(channel).execute(request).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            Ok(CommandResult {
                stdout: String::from_utf8_lossy(&answer.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&answer.stderr).into_owned(),
                exit_code: answer.exit_code,
                timed_out: false,
            })
        }
        Err(status) => match options.timeout {
            // The server reports its deadline as DEADLINE_EXCEEDED, tonic's own client-side
            // deadline as CANCELLED.
            Some(after)
                if matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ) =>
            {
                Ok(timed_out(after))
            }
            _ => Err(status_error(&status, route)),
        },
    }
}

/// The result of a command killed after `after`, as the runtime's `/execute` words it.
fn timed_out(after: Duration) -> CommandResult {
    CommandResult {
        stdout: String::new(),
        stderr: format!("command timed out after {after:?}\n"),
        exit_code: TIMED_OUT_EXIT_CODE,
        timed_out: true,
    }
}

/// `ProcessService.Start` of `command` through `/bin/sh -c`: its output events as they come, the
/// exit last. With a timeout the stream ends in [`Error::CommandTimeout`] once it passes.
pub(crate) async fn start(
    channel: Channel,
    route: &Route,
    command: &str,
    options: &RunOptions,
) -> Result<OutputStream> {
    let deadline = options
        .timeout
        .map(|after| (tokio::time::Instant::now() + after, after));
    let request = StartRequest {
        config: Some(shell(command, options)),
        pty: None,
    };
    let request = grpc_request(request, route, None)?;
    let stream = ProcessServiceClient::new(channel)
        .start(request)
        .await
        .map_err(|status| status_error(&status, route))?
        .into_inner();
    let route = route.clone();
    let events = futures::stream::unfold(Some(stream), move |state| {
        let route = route.clone();
        async move {
            let mut stream = state?;
            loop {
                let next = match deadline {
                    None => stream.message().await,
                    Some((at, after)) => {
                        match tokio::time::timeout_at(at, stream.message()).await {
                            Ok(next) => next,
                            Err(_) => return Some((Err(Error::CommandTimeout { after }), None)),
                        }
                    }
                };
                let event = match next {
                    Ok(Some(message)) => match message.event {
                        Some(Event::Stdout(chunk)) => OutputEvent::Stdout(chunk.into()),
                        Some(Event::Stderr(chunk)) => OutputEvent::Stderr(chunk.into()),
                        Some(Event::Exit(exit)) => {
                            return Some((Ok(OutputEvent::Exit(exit.exit_code)), None));
                        }
                        // The process id is for stdin and signals, which this client does not send.
                        Some(Event::Init(_)) | None => continue,
                    },
                    Ok(None) => {
                        let ended = Error::Protocol(
                            "the process stream ended without an exit event".to_owned(),
                        );
                        return Some((Err(ended), None));
                    }
                    Err(status) => return Some((Err(status_error(&status, &route)), None)),
                };
                return Some((Ok(event), Some(stream)));
            }
        }
    });
    Ok(events.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_use_execute_with_the_sdks_body() {
        let body = execute_body("python3 -c 'print(6*7)'", &RunOptions::default()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"command": "python3 -c 'print(6*7)'"})
        );
        let options = RunOptions {
            timeout: Some(Duration::from_millis(2500)),
            ..RunOptions::default()
        };
        assert!(!options.needs_grpc());
        let body = execute_body("sleep 9", &options).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"command": "sleep 9", "timeout_seconds": 2.5})
        );
    }

    #[test]
    fn env_or_cwd_go_over_grpc_through_a_shell() {
        let options = RunOptions {
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            cwd: Some("data".into()),
            ..RunOptions::default()
        };
        assert!(options.needs_grpc());
        let config = shell("echo $GREETING", &options);
        assert_eq!(config.command, ["/bin/sh", "-c", "echo $GREETING"]);
        assert_eq!(config.env_vars["GREETING"], "hi");
        assert_eq!(config.cwd.as_deref(), Some("data"));
        let zero = RunOptions {
            timeout: Some(Duration::ZERO),
            ..RunOptions::default()
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn grpc_requests_carry_the_router_headers_and_the_deadline() {
        let route = crate::connection::router_route(
            "http://127.0.0.1:1",
            crate::connection::Target {
                namespace: "agents",
                name: "pool-x7k2q",
                pod_ip: None,
            },
            crate::connection::GRPC_PORT,
        );
        let request = grpc_request((), &route, Some(Duration::from_secs(2))).unwrap();
        let metadata = request.metadata();
        assert_eq!(metadata.get("x-sandbox-id").unwrap(), "pool-x7k2q");
        assert_eq!(metadata.get("x-sandbox-namespace").unwrap(), "agents");
        assert_eq!(metadata.get("x-sandbox-port").unwrap(), "9090");
        assert_eq!(metadata.get("grpc-timeout").unwrap(), "2000000u");
    }

    #[test]
    fn legacy_answers_read_into_results() {
        let answer = r#"{"stdout": "42\n", "stderr": "", "exit_code": 0}"#;
        let result: CommandResult = serde_json::from_str(answer).unwrap();
        assert_eq!(
            result,
            CommandResult {
                stdout: "42\n".into(),
                exit_code: 0,
                ..CommandResult::default()
            }
        );
        let killed = timed_out(Duration::from_secs(1));
        assert!(killed.timed_out);
        assert_eq!(killed.exit_code, 124);
    }

    #[test]
    fn unavailable_is_a_connection_error() {
        let route = Route {
            base: "http://10.0.0.1:9090".into(),
            headers: Vec::new(),
        };
        let err = status_error(&tonic::Status::unavailable("tcp connect error"), &route);
        assert_eq!(
            err.to_string(),
            "cannot reach http://10.0.0.1:9090: tcp connect error"
        );
        let err = status_error(&tonic::Status::not_found("no such program: x"), &route);
        assert_eq!(
            err.to_string(),
            "process service answered NotFound: no such program: x"
        );
    }
}
