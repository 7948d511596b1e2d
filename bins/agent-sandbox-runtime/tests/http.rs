//! Both HTTP surfaces served in-process on 127.0.0.1:0 and called over real TCP.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_runtime::exec::{self, Limits};
use agent_sandbox_runtime::state::State;
use agent_sandbox_runtime::{legacy, metadata, rest, server};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use support::{dead, poll, read_pid};

struct Daemon {
    legacy: SocketAddr,
    rest: SocketAddr,
    state: Arc<State>,
    /// Holds `root/` (the confinement root) and `outside/` next to it.
    dir: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(30),
            max_output: 64 * 1024,
            drain_grace: Duration::from_secs(2),
        };
        let mut state = State::new(&dir.path().join("root"), limits, "SANDBOX_").unwrap();
        state.metadata = metadata::filter_env(
            [
                ("SANDBOX_REGION".to_owned(), "eu".to_owned()),
                ("SANDBOX_API_TOKEN".to_owned(), "hidden".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ],
            "SANDBOX_",
        );
        let state = Arc::new(state);
        let legacy = serve(legacy::router(state.clone())).await;
        let rest = serve(rest::router(state.clone())).await;
        Self {
            legacy,
            rest,
            state,
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.state.root.path()
    }

    fn outside(&self) -> std::path::PathBuf {
        self.dir.path().join("outside")
    }
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn call(
    addr: SocketAddr,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "sandbox");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(addr: SocketAddr, uri: &str) -> Answer {
    call(addr, Method::GET, uri, &[], Bytes::new()).await
}

/// GET `uri` with a `Range` header.
async fn get_range(addr: SocketAddr, uri: &str, range: &str) -> Answer {
    call(addr, Method::GET, uri, &[("range", range)], Bytes::new()).await
}

async fn execute(d: &Daemon, body: Value) -> Answer {
    call(
        d.legacy,
        Method::POST,
        "/execute",
        &[("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// Sends `content` as the multipart form part `file` named `filename`, as the SDK's upload does.
async fn send_form(
    addr: SocketAddr,
    method: Method,
    path: &str,
    filename: &str,
    content: &[u8],
) -> Answer {
    let (content_type, body) = multipart(filename, content);
    call(addr, method, path, &[("content-type", &content_type)], body).await
}

fn multipart(filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----agent-sandbox-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn legacy_health() {
    let d = Daemon::start().await;
    let answer = get(d.legacy, "/").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ok");
}

#[tokio::test]
async fn legacy_execute() {
    let d = Daemon::start().await;
    let ok = execute(&d, json!({"command": "printf 'hello world'"})).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.json(),
        json!({"stdout": "hello world", "stderr": "", "exit_code": 0, "timed_out": false})
    );

    let failing = execute(&d, json!({"command": "ls /definitely/not/here"}))
        .await
        .json();
    assert_ne!(failing["exit_code"], 0);
    assert!(!failing["stderr"].as_str().unwrap().is_empty());

    let missing = execute(&d, json!({"command": "no-such-program-xyz --flag"}))
        .await
        .json();
    assert_eq!(missing["exit_code"], 127);
    assert!(
        missing["stderr"]
            .as_str()
            .unwrap()
            .contains("no-such-program-xyz")
    );

    let piped = execute(&d, json!({"command": "echo abc | wc -c"}))
        .await
        .json();
    assert_eq!(piped["stdout"].as_str().unwrap().trim(), "4");

    // Commands run in the root directory.
    let pwd = execute(&d, json!({"command": "pwd"})).await.json();
    assert_eq!(
        pwd["stdout"].as_str().unwrap().trim(),
        d.root().to_str().unwrap()
    );

    // The Python SDK's `command_timeout` arrives as `timeout_seconds` and expects `timed_out`.
    for limit in [json!({"timeout": 0.3}), json!({"timeout_seconds": 0.3})] {
        let mut body = json!({"command": "sleep 20"});
        body.as_object_mut()
            .unwrap()
            .extend(limit.as_object().unwrap().clone());
        let timed_out = execute(&d, body).await;
        assert_eq!(timed_out.status, StatusCode::OK);
        let timed_out = timed_out.json();
        assert_eq!(timed_out["exit_code"], 124, "{limit}");
        assert_eq!(timed_out["timed_out"], true, "{limit}");
        assert!(timed_out["stderr"].as_str().unwrap().contains("timed out"));
    }

    let too_much = execute(&d, json!({"command": "head -c 200000 /dev/zero"})).await;
    assert_eq!(too_much.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_much.json()["detail"]
            .as_str()
            .unwrap()
            .contains("65536 bytes")
    );

    let huge = call(
        d.legacy,
        Method::POST,
        "/execute",
        &[("content-type", "application/json")],
        vec![b' '; 2 * 1024 * 1024],
    )
    .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(huge.json()["detail"].is_string());
    let not_multipart = call(d.legacy, Method::POST, "/upload", &[], "x").await;
    assert!(not_multipart.status.is_client_error());
    assert!(not_multipart.json()["detail"].is_string());

    for bad in [
        json!({"command": ""}),
        json!({"cmd": "ls"}),
        json!({"command": "echo 'open"}),
    ] {
        let answer = execute(&d, bad).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(answer.json()["detail"].is_string());
    }
}

/// The legacy surface gives the answer sandboxd's `/bin/sh -c <command>` gives.
#[tokio::test]
async fn legacy_execute_matches_the_shell() {
    let d = Daemon::start().await;
    let limits = d.state.limits.clone();
    for command in [
        "echo plain words",
        "printf '%s|' 'a b' \"c d\" e\\ f",
        "echo $((6*7))",
        "echo one; echo two >&2; exit 3",
        "ls -d /",
        "A=1 sh -c 'echo $A'",
        "false",
        "no-such-program-xyz",
    ] {
        let legacy = execute(&d, json!({ "command": command })).await.json();
        let argv = ["/bin/sh", "-c", command].map(str::to_owned);
        let shell = exec::run(&d.state.processes, &argv, d.root(), &[], &limits)
            .await
            .unwrap();
        assert_eq!(
            legacy["stdout"],
            String::from_utf8_lossy(&shell.stdout).as_ref(),
            "{command}"
        );
        assert_eq!(legacy["exit_code"], shell.exit.code(), "{command}");
        if shell.stderr.is_empty() {
            assert_eq!(legacy["stderr"], "", "{command}");
        }
    }
}

#[tokio::test]
async fn legacy_files() {
    let d = Daemon::start().await;
    let content: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let uploaded = send_form(
        d.legacy,
        Method::POST,
        "/upload",
        "dir/sub/data.bin",
        &content,
    )
    .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{:?}", uploaded.body);
    assert_eq!(
        std::fs::read(d.root().join("dir/sub/data.bin")).unwrap(),
        content
    );

    let downloaded = get(d.legacy, "/download/dir%2Fsub%2Fdata.bin").await;
    assert_eq!(downloaded.status, StatusCode::OK);
    assert_eq!(downloaded.body.as_ref(), content.as_slice());
    let downloaded = get(d.legacy, "/download/dir/sub/data.bin").await;
    assert_eq!(downloaded.body.len(), content.len());

    let listed = get(d.legacy, "/list/dir/sub").await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed[0]["name"], "data.bin");
    assert_eq!(listed[0]["size"], 300_000);
    assert_eq!(listed[0]["type"], "file");
    assert!(listed[0]["mod_time"].as_f64().unwrap() > 1.0e9);
    let root = get(d.legacy, "/list/").await.json();
    assert_eq!(root[0]["type"], "directory");

    assert_eq!(
        get(d.legacy, "/exists/dir/sub/data.bin").await.json()["exists"],
        true
    );
    assert_eq!(
        get(d.legacy, "/exists/dir/nope").await.json()["exists"],
        false
    );
    assert_eq!(
        get(d.legacy, "/download/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(get(d.legacy, "/download/nope").await.json()["detail"].is_string());
    let no_route = get(d.legacy, "/nothing-here").await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert!(no_route.json()["detail"].is_string());
    let wrong_method = get(d.legacy, "/execute").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.json()["detail"].is_string());
}

#[tokio::test]
async fn legacy_path_escapes_are_refused() {
    let d = Daemon::start().await;
    std::fs::write(d.outside().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(d.outside(), d.root().join("link")).unwrap();

    let answer = send_form(
        d.legacy,
        Method::POST,
        "/upload",
        "../outside/planted",
        b"x",
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("outside")
    );
    let answer = send_form(d.legacy, Method::POST, "/upload", "link/planted", b"x").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(!d.outside().join("planted").exists());

    for uri in [
        "/download/..%2Foutside%2Fsecret",
        "/download/link/secret",
        "/list/link",
        "/exists/..%2Foutside%2Fsecret",
    ] {
        let answer = get(d.legacy, uri).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(answer.json()["detail"].is_string(), "{uri}");
    }
    // The link itself is left out of listings.
    assert_eq!(get(d.legacy, "/list/").await.json(), json!([]));
}

#[tokio::test]
async fn rest_health_and_metadata() {
    let d = Daemon::start().await;
    let health = get(d.rest, "/v1/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    assert!(health.json()["uptime_seconds"].is_u64());
    let metadata = get(d.rest, "/v1/metadata").await.json();
    assert_eq!(metadata, json!({"env": {"SANDBOX_REGION": "eu"}}));

    d.state.processes.shut_down(rustix::process::Signal::TERM);
    assert_eq!(
        get(d.rest, "/v1/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(d.legacy, "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn rest_files() {
    let d = Daemon::start().await;
    let put = call(
        d.rest,
        Method::PUT,
        "/v1/files/a/b.txt?mode=0600",
        &[],
        "0123456789",
    )
    .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(d.root().join("a/b.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let whole = get(d.rest, "/v1/files/a/b.txt").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body.as_ref(), b"0123456789");
    assert!(whole.headers.contains_key("last-modified"));

    let head = call(d.rest, Method::HEAD, "/v1/files/a/b.txt", &[], Bytes::new()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-length"], "10");
    assert!(head.body.is_empty());
    let head = call(d.rest, Method::HEAD, "/v1/files/a/none", &[], Bytes::new()).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);

    let part = get_range(d.rest, "/v1/files/a/b.txt", "bytes=2-4").await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body.as_ref(), b"234");
    assert_eq!(part.headers["content-range"], "bytes 2-4/10");
    let tail = get_range(d.rest, "/v1/files/a/b.txt", "bytes=-3").await;
    assert_eq!(tail.body.as_ref(), b"789");
    let past = get_range(d.rest, "/v1/files/a/b.txt", "bytes=50-").await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);

    let put = send_form(
        d.rest,
        Method::PUT,
        "/v1/files/a/form.txt",
        "ignored",
        b"from a form",
    )
    .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    assert_eq!(
        std::fs::read(d.root().join("a/form.txt")).unwrap(),
        b"from a form"
    );

    let listing = get(d.rest, "/v1/files/a").await.json();
    assert_eq!(listing["path"], "a");
    let entries = listing["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["name"], "b.txt");
    assert_eq!(entries[0]["mode"], "0600");
    assert_eq!(entries[0]["type"], "file");
    assert!(entries[0]["modified_at"].as_str().unwrap().ends_with('Z'));
    let root = get(d.rest, "/v1/files/").await.json();
    assert_eq!(root["entries"][0]["type"], "directory");

    let bad_mode = call(d.rest, Method::PUT, "/v1/files/x?mode=644", &[], "x").await;
    assert_eq!(bad_mode.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_mode.json()["code"], "INVALID_ARGUMENT");
    let bad_flag = call(
        d.rest,
        Method::DELETE,
        "/v1/files/a?recursive=maybe",
        &[],
        "",
    )
    .await;
    assert_eq!(bad_flag.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_flag.json()["code"], "INVALID_ARGUMENT");
    let onto_dir = call(d.rest, Method::PUT, "/v1/files/a", &[], "x").await;
    assert_eq!(onto_dir.status, StatusCode::BAD_REQUEST);

    let no_route = get(d.rest, "/v2/anything").await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert_eq!(no_route.json()["code"], "NOT_FOUND");
    let wrong_method = call(d.rest, Method::POST, "/v1/health", &[], Bytes::new()).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json()["code"], "INVALID_ARGUMENT");
    let missing = get(d.rest, "/v1/files/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "NOT_FOUND");

    let not_empty = call(d.rest, Method::DELETE, "/v1/files/a", &[], Bytes::new()).await;
    assert_eq!(not_empty.status, StatusCode::CONFLICT);
    assert_eq!(not_empty.json()["code"], "CONFLICT");
    let file = call(
        d.rest,
        Method::DELETE,
        "/v1/files/a/b.txt",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(file.status, StatusCode::NO_CONTENT);
    let dir = call(
        d.rest,
        Method::DELETE,
        "/v1/files/a?recursive=true",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(dir.status, StatusCode::NO_CONTENT);
    assert!(!d.root().join("a").exists());
    std::fs::write(d.root().join("left"), "x").unwrap();
    let root = call(
        d.rest,
        Method::DELETE,
        "/v1/files/?recursive=true",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(root.status, StatusCode::NO_CONTENT);
    assert!(d.root().is_dir());
    assert_eq!(std::fs::read_dir(d.root()).unwrap().count(), 0);
}

#[tokio::test]
async fn rest_path_escapes_are_refused() {
    let d = Daemon::start().await;
    std::fs::write(d.outside().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(d.outside(), d.root().join("link")).unwrap();
    for (method, uri) in [
        (Method::PUT, "/v1/files/..%2Foutside%2Fplanted"),
        (Method::PUT, "/v1/files/link/planted"),
        (Method::GET, "/v1/files/link/secret"),
        (Method::GET, "/v1/files/link"),
        (Method::DELETE, "/v1/files/link/secret"),
        (Method::DELETE, "/v1/files/..%2Foutside?recursive=true"),
    ] {
        let answer = call(d.rest, method.clone(), uri, &[], "x").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {uri}");
        assert_eq!(answer.json()["code"], "PERMISSION_DENIED", "{method} {uri}");
    }
    assert!(!d.outside().join("planted").exists());
    assert!(d.outside().join("secret").exists());
    // Deleting the link removes the link, never what it points to.
    let answer = call(d.rest, Method::DELETE, "/v1/files/link", &[], Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(d.outside().join("secret").exists());
}

#[tokio::test]
async fn server_starts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let flags = <server::Flags as clap::Parser>::parse_from([
        "agent-sandbox-runtime",
        "--legacy-listen=127.0.0.1:0",
        "--rest-listen=127.0.0.1:0",
        "--grpc-listen=127.0.0.1:0",
        &format!("--root-dir={}", dir.path().join("ws").display()),
    ]);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::run(flags, async move {
        let _ = rx.await;
    }));
    assert!(
        poll(|| dir.path().join("ws").is_dir()).await,
        "the root directory was not created"
    );
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_that_goes_away_ends_its_command() {
    let d = Daemon::start().await;
    let pid_file = d.root().join("child.pid");
    let command = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
    let body = serde_json::to_vec(&json!({ "command": command })).unwrap();
    let request = call(
        d.legacy,
        Method::POST,
        "/execute",
        &[("content-type", "application/json")],
        body,
    );
    // Give up on the request once the command is running (its background child has written its PID).
    let running = async {
        while !pid_file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = request => panic!("the command ended by itself"),
        () = running => {}
    }
    let child = read_pid(&pid_file);
    assert!(
        poll(|| dead(child)).await,
        "the command's group outlived its client"
    );
    assert!(poll(|| d.state.processes.live() == 0).await);
}
