//! `process.v1.ProcessService` with a PTY: the process sees a terminal of the requested size, input
//! goes through the line discipline, resizing signals it, signals and exit codes work as on pipes.

mod process_service;

use std::time::Duration;

use agent_sandbox_runtime::grpc::proto::process_service_client::ProcessServiceClient;
use agent_sandbox_runtime::grpc::proto::{
    Pty, ResizeTtyRequest, Signal, StartResponse, WriteStdinRequest, start_response::Event,
    write_stdin_request::Payload,
};
use process_service::{signal, start, start_process};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

fn pty(rows: u32, cols: u32) -> Option<Pty> {
    Some(Pty { rows, cols })
}

/// What a process printed and, once it ended, its exit code.
#[derive(Default)]
struct Seen {
    output: Vec<u8>,
    exit: Option<i32>,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Reads events until the output contains `expected` or, with `None`, until the exit event; at
/// most 10 s. A PTY's output is all stdout: a stderr event fails the test.
async fn read_until(
    stream: &mut Streaming<StartResponse>,
    seen: &mut Seen,
    expected: Option<&str>,
) {
    let done = |seen: &Seen| match expected {
        Some(text) => seen.text().contains(text),
        None => seen.exit.is_some(),
    };
    let reading = async {
        while !done(seen) {
            match stream.message().await.unwrap().and_then(|m| m.event) {
                Some(Event::Stdout(bytes)) => seen.output.extend(bytes),
                Some(Event::Exit(exit)) => seen.exit = Some(exit.exit_code),
                other => panic!("unexpected {other:?} after {:?}", seen.text()),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .is_err()
    {
        panic!("waited for {expected:?}, saw {:?}", seen.text());
    }
}

async fn write(client: &mut ProcessServiceClient<Channel>, id: i32, payload: Payload) {
    client
        .write_stdin(WriteStdinRequest {
            process_id: id,
            payload: Some(payload),
        })
        .await
        .unwrap();
}

async fn resize(
    client: &mut ProcessServiceClient<Channel>,
    id: i32,
    rows: u32,
    cols: u32,
) -> Result<(), tonic::Status> {
    client
        .resize_tty(ResizeTtyRequest {
            process_id: id,
            cols,
            rows,
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn the_process_sees_a_terminal_of_the_requested_size() {
    let (mut client, _state, _dir) = start().await;
    let script = "tty; stty size; test -t 0 && echo stdin is a terminal; echo to stderr >&2";
    let (mut stream, _) =
        start_process(&mut client, &["/bin/sh", "-c", script], pty(30, 100)).await;
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, None).await;
    let text = seen.text();
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    // The terminal's output processing turns `\n` into `\r\n`; stderr is merged into stdout.
    assert!(
        text.ends_with("\r\n30 100\r\nstdin is a terminal\r\nto stderr\r\n"),
        "{text:?}"
    );
    assert_eq!(seen.exit, Some(0));

    let (mut stream, _) = start_process(
        &mut client,
        &["/bin/sh", "-c", "test -t 0 || echo no terminal"],
        None,
    )
    .await;
    let Some(Event::Stdout(out)) = stream.message().await.unwrap().unwrap().event else {
        panic!("expected stdout")
    };
    assert_eq!(out, b"no terminal\n");

    let refused = client
        .start(agent_sandbox_runtime::grpc::proto::StartRequest {
            config: process_service::config(&["true"]),
            pty: pty(0, 80),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_resize_changes_the_size_and_sends_sigwinch() {
    let (mut client, _state, _dir) = start().await;
    let script = r#"trap "stty size" WINCH; echo ready; while :; do sleep 0.1; done"#;
    let (mut stream, init) =
        start_process(&mut client, &["/bin/sh", "-c", script], pty(24, 80)).await;
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, Some("ready\r\n")).await;
    resize(&mut client, init.process_id, 40, 120).await.unwrap();
    read_until(&mut stream, &mut seen, Some("40 120\r\n")).await;

    for (rows, cols) in [(0, 120), (40, 0), (40, 70_000)] {
        let refused = resize(&mut client, init.process_id, rows, cols)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{rows}x{cols}");
    }
    signal(&mut client, init.process_id, Signal::Sigkill as i32)
        .await
        .unwrap();
    read_until(&mut stream, &mut seen, None).await;
    assert_eq!(seen.exit, Some(128 + 9));
}

#[tokio::test]
async fn input_is_echoed_and_read_and_eof_ends_it() {
    let (mut client, _state, _dir) = start().await;
    let script = r#"read line; echo "got $line"; cat"#;
    let (mut stream, init) =
        start_process(&mut client, &["/bin/sh", "-c", script], pty(24, 80)).await;
    let id = init.process_id;
    let mut seen = Seen::default();
    write(&mut client, id, Payload::Input(b"hello\n".to_vec())).await;
    read_until(&mut stream, &mut seen, Some("got hello\r\n")).await;
    write(&mut client, id, Payload::Input(b"again\n".to_vec())).await;
    // Once echoed by the terminal, once printed by cat.
    read_until(&mut stream, &mut seen, Some("again\r\nagain\r\n")).await;
    // End of input is ^D, which ends cat's read at the start of a line.
    write(&mut client, id, Payload::Eof(())).await;
    read_until(&mut stream, &mut seen, None).await;
    assert_eq!(seen.text(), "hello\r\ngot hello\r\nagain\r\nagain\r\n");
    assert_eq!(seen.exit, Some(0));
}

#[tokio::test]
async fn signals_and_exit_codes_work_on_a_pty() {
    let (mut client, state, _dir) = start().await;
    let (mut stream, _) =
        start_process(&mut client, &["/bin/sh", "-c", "exit 3"], pty(24, 80)).await;
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, None).await;
    assert_eq!(seen.exit, Some(3));

    let (mut stream, init) = start_process(&mut client, &["sleep", "30"], pty(24, 80)).await;
    signal(&mut client, init.process_id, Signal::Sigint as i32)
        .await
        .unwrap();
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, None).await;
    assert_eq!(seen.exit, Some(128 + 2));
    assert_eq!(state.processes.live(), 0);
}

#[tokio::test]
async fn resizing_needs_a_pty() {
    let (mut client, _state, _dir) = start().await;
    let (_stream, init) = start_process(&mut client, &["cat"], None).await;
    let refused = resize(&mut client, init.process_id, 24, 80)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("without a PTY"), "{refused:?}");
    let unknown = resize(&mut client, 9999, 24, 80).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
