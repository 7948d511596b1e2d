//! The `process.v1.ProcessService` gRPC service served in-process on 127.0.0.1:0 (PTYs: `pty.rs`).

mod process_service;

use std::time::Duration;

use agent_sandbox_runtime::grpc::proto::{
    ExecuteRequest, SendSignalRequest, Signal, WriteStdinRequest, start_response::Event,
    write_stdin_request::Payload,
};
use process_service::{config, signal, start, start_process};
use tonic::Code;

#[tokio::test]
async fn execute_runs_to_completion() {
    let (mut client, state, _dir) = start().await;
    let mut request =
        config(&["/bin/sh", "-c", "echo $GREETING; pwd; echo e >&2; exit 4"]).unwrap();
    request.env_vars.insert("GREETING".into(), "hi".into());
    request.cwd = Some("sub".into());
    let answer = client
        .execute(ExecuteRequest {
            config: Some(request),
        })
        .await
        .unwrap()
        .into_inner();
    let expected = format!("hi\n{}\n", state.root.path().join("sub").display());
    assert_eq!(String::from_utf8(answer.stdout).unwrap(), expected);
    assert_eq!(answer.stderr, b"e\n");
    assert_eq!(answer.exit_code, 4);

    let missing = client
        .execute(ExecuteRequest {
            config: config(&["no-such-program-xyz"]),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut escape = config(&["true"]).unwrap();
    escape.cwd = Some("../..".into());
    let refused = client
        .execute(ExecuteRequest {
            config: Some(escape),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let empty = client
        .execute(ExecuteRequest {
            config: config(&[]),
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let too_much = client
        .execute(ExecuteRequest {
            config: config(&["head", "-c", "200000", "/dev/zero"]),
        })
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Code::ResourceExhausted);
}

/// The Python SDK's `command_timeout` on sandboxd is the call's deadline: past it the call ends with
/// `DEADLINE_EXCEEDED` and the command's whole process group is killed, background children too.
#[tokio::test]
async fn a_deadline_ends_execute_and_its_process_group() {
    let (mut client, state, dir) = start().await;
    let pid_file = dir.path().join("child.pid");
    let command = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
    let mut request = tonic::Request::new(ExecuteRequest {
        config: config(&["/bin/sh", "-c", &command]),
    });
    request.set_timeout(Duration::from_secs(2));
    let expired = client.execute(request).await.unwrap_err();
    // Python's grpc reports its own expired deadline as DEADLINE_EXCEEDED; tonic's client as
    // CANCELLED ("Timeout expired"). Either way the server dropped the call.
    assert!(
        matches!(expired.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{expired:?}"
    );
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Bounded polling: the kill is sent when the call's future is dropped, just after the answer.
    let mut gone = false;
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let run_state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if matches!(run_state, None | Some("Z" | "X")) && state.processes.live() == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the background child outlived the expired call");
}

#[tokio::test]
async fn start_streams_stdin_output_and_exit() {
    let (mut client, _state, _dir) = start().await;
    let (mut stream, init) = start_process(&mut client, &["cat"], None).await;
    client
        .write_stdin(WriteStdinRequest {
            process_id: init.process_id,
            payload: Some(Payload::Input(b"ping\n".to_vec())),
        })
        .await
        .unwrap();
    let Some(Event::Stdout(out)) = stream.message().await.unwrap().unwrap().event else {
        panic!("expected stdout")
    };
    assert_eq!(out, b"ping\n");
    client
        .write_stdin(WriteStdinRequest {
            process_id: init.process_id,
            payload: Some(Payload::Eof(())),
        })
        .await
        .unwrap();
    let Some(Event::Exit(exit)) = stream.message().await.unwrap().unwrap().event else {
        panic!("expected exit")
    };
    assert_eq!(exit.exit_code, 0);
    assert!(stream.message().await.unwrap().is_none());

    let gone = signal(&mut client, init.process_id, Signal::Sigterm as i32)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn signals_reach_the_process_group() {
    let (mut client, state, _dir) = start().await;
    let (mut stream, init) = start_process(
        &mut client,
        &["/bin/sh", "-c", "sleep 30 & sleep 30; wait"],
        None,
    )
    .await;
    let bad = signal(&mut client, init.process_id, 0).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    signal(&mut client, init.process_id, Signal::Sigkill as i32)
        .await
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Event::Exit(exit)) = stream.message().await.unwrap().unwrap().event {
                return exit;
            }
        }
    })
    .await
    .expect("the whole group died, pipes closed, exit arrived");
    assert_eq!(exit.exit_code, 128 + 9);
    assert_eq!(state.processes.live(), 0);
}

/// The bytes the upstream Python SDK's generated stubs put on the wire for the two messages whose
/// layout is easiest to get wrong: `eof` is a `google.protobuf.Empty` (field 3, length-delimited,
/// empty), and signals are sent as their Linux numbers.
#[test]
fn wire_layout_matches_the_upstream_stubs() {
    use prost::Message;
    let eof = WriteStdinRequest {
        process_id: 7,
        payload: Some(Payload::Eof(())),
    };
    assert_eq!(eof.encode_to_vec(), [0x08, 7, 0x1a, 0x00]);
    for (signal, number) in [
        (Signal::Sigint, 2),
        (Signal::Sigkill, 9),
        (Signal::Sigterm, 15),
    ] {
        let request = SendSignalRequest {
            process_id: 7,
            signal: signal as i32,
        };
        assert_eq!(request.encode_to_vec(), [0x08, 7, 0x10, number]);
    }
}
