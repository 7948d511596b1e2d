//! Serving `process.v1.ProcessService` in-process on 127.0.0.1:0 for the integration tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_runtime::exec::Limits;
use agent_sandbox_runtime::grpc::ProcessService;
use agent_sandbox_runtime::grpc::proto::process_service_client::ProcessServiceClient;
use agent_sandbox_runtime::grpc::proto::{
    InitEvent, ProcessConfig, Pty, SendSignalRequest, SendSignalResponse, StartRequest,
    StartResponse, start_response::Event,
};
use agent_sandbox_runtime::state::State;
use tonic::transport::Channel;

/// Serves the service over a fresh root (with a `sub` directory); returns a client, the daemon's
/// state and the directory holding the root.
pub async fn start() -> (ProcessServiceClient<Channel>, Arc<State>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        timeout: Duration::from_secs(30),
        max_output: 64 * 1024,
        drain_grace: Duration::from_secs(2),
    };
    let state = Arc::new(State::new(&dir.path().join("root"), limits, "SANDBOX_").unwrap());
    std::fs::create_dir_all(dir.path().join("root/sub")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ProcessService::new(state.clone()).into_server();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .serve_with_incoming(
                service,
                tonic::transport::server::TcpIncoming::from(listener),
            )
            .await
            .unwrap()
    });
    let client = ProcessServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    (client, state, dir)
}

/// A process configuration running `argv` in the root.
pub fn config(argv: &[&str]) -> Option<ProcessConfig> {
    Some(ProcessConfig {
        command: argv.iter().map(|a| (*a).to_owned()).collect(),
        env_vars: HashMap::new(),
        cwd: None,
    })
}

/// Starts `command` (on a PTY when `pty` is given) and reads the stream's first event, which must
/// be init.
pub async fn start_process(
    client: &mut ProcessServiceClient<Channel>,
    command: &[&str],
    pty: Option<Pty>,
) -> (tonic::Streaming<StartResponse>, InitEvent) {
    let mut stream = client
        .start(StartRequest {
            config: config(command),
            pty,
        })
        .await
        .unwrap()
        .into_inner();
    let Some(Event::Init(init)) = stream.message().await.unwrap().unwrap().event else {
        panic!("the first event must be init")
    };
    (stream, init)
}

/// Sends `signal` (a `Signal` as its number, or any number to test refusals) to `process_id`.
pub async fn signal(
    client: &mut ProcessServiceClient<Channel>,
    process_id: i32,
    signal: i32,
) -> Result<tonic::Response<SendSignalResponse>, tonic::Status> {
    client
        .send_signal(SendSignalRequest { process_id, signal })
        .await
}
