//! `cargo xtask demo`: the README's main job. Starts the local cluster (control plane, kwok nodes and the
//! real node), installs the CRDs, runs the controller (with the extension controllers) in the background,
//! shows a Sandbox becoming Ready on the real node under gVisor and runs a command inside it, fills a warm
//! pool of gVisor sandboxes running the in-sandbox runtime, claims one (printing how long the claim
//! took), starts the router in the background and runs a command in the claimed sandbox through it,
//! then does the same from Python with upstream's SDK. `cargo xtask demo --stop` undoes it.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster;
use crate::workspace::{cargo, root, run as run_cmd};

/// Flags of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Stop the demo controller and the local cluster instead.
    #[arg(long)]
    stop: bool,
}

/// The examples (Sandbox, template, warm pool) with the local overlay: gVisor, the local Python image.
const EXAMPLES: &str = "deploy/local-cluster";
const SANDBOX: &str = "demo-sandbox";
const POOL: &str = "python-pool";
const CLAIM_EXAMPLE: &str = "deploy/examples/sandboxclaim.yaml";
const CLAIM: &str = "my-agent";
/// Upstream's Python SDK in the claim → run → files loop (deploy/examples/quickstart.py).
const QUICKSTART: &str = "deploy/examples/quickstart.py";
const STEPS: u8 = 9;

fn demo_dir() -> PathBuf {
    root().join("target/demo")
}

fn pid_file() -> PathBuf {
    demo_dir().join("controller.pid")
}

fn router_pid_file() -> PathBuf {
    demo_dir().join("router.pid")
}

/// Runs (or stops) the demo.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.stop {
        return stop();
    }
    println!(
        "==> 1/{STEPS} local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes, and the \
         real node node-0: containerd, runc, gVisor, kubelet)"
    );
    cluster::up(3, true)?;
    let kubectl = Kubectl {
        binary: cluster::bin_dir()?.join("kubectl"),
        kubeconfig: cluster::kubeconfig_path(),
    };
    install_crds(&kubectl)?;
    let log = start_controller(&kubectl.kubeconfig)?;
    show_sandbox(&kubectl, &log)?;
    show_pool(&kubectl, &log)?;
    let claimed = claim(&kubectl, &log)?;
    let router = SocketAddr::from(([127, 0, 0, 1], cluster::ports::demo_router()));
    run_through_router(&kubectl.kubeconfig, router, &claimed)?;
    let python = run_from_python(&kubectl.kubeconfig, router)?;
    println!(
        "\nThe Sandbox, the claim and the router are up. Try:\n  \
         eval \"$(cargo xtask cluster env)\"\n  \
         KUBECONFIG={kubeconfig} SANDBOX_ROUTER_URL=http://{router} {python} {QUICKSTART}\n  \
         kubectl patch sandbox {SANDBOX} --type=merge -p '{{\"spec\":{{\"operatingMode\":\"Suspended\"}}}}'   # Pod goes, PVC stays\n  \
         kubectl scale sandboxwarmpool/{POOL} --replicas=5\n\
         Logs: {} and router.log beside it (docs/using-sandboxes.md explains the rest)\n\
         Stop everything: cargo xtask demo --stop",
        log.display(),
        kubeconfig = kubectl.kubeconfig.display(),
        python = python.display(),
    );
    Ok(())
}

/// Our kubectl against the demo's cluster, run from the workspace root.
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(root());
        cmd
    }

    /// Runs `args` to completion, failing with the command line.
    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        run_cmd(&mut self.cmd(args))
    }

    /// Runs a `kubectl wait`-like command; a failure points at the controller's log.
    fn wait(&self, args: &[&str], what: &str, log: &Path) -> anyhow::Result<()> {
        let waited = self.cmd(args).stdout(Stdio::null()).status();
        if !waited.is_ok_and(|s| s.success()) {
            bail!("{what}; see {}", log.display());
        }
        Ok(())
    }
}

/// Step 2: the CRDs of the default install (v1beta1 only, no conversion webhook).
fn install_crds(kubectl: &Kubectl) -> anyhow::Result<()> {
    println!("==> 2/{STEPS} CRDs from deploy/crds (v1beta1, as upstream 1.0 serves them)");
    kubectl.run(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "deploy/crds",
    ])?;
    for crd in agent_sandbox_api::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        kubectl.run(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=60s",
        ])?;
    }
    Ok(())
}

/// Step 3: builds the controller and the router and starts the controller in the background
/// (replacing what a previous demo left); returns its log file.
fn start_controller(kubeconfig: &Path) -> anyhow::Result<PathBuf> {
    println!(
        "==> 3/{STEPS} controller (built from bins/agent-sandbox-controller, running in the background)"
    );
    run_cmd(cargo().args([
        "build",
        "--package",
        "agent-sandbox-controller",
        "--package",
        "agent-sandbox-router",
    ]))?;
    stop_process(&pid_file(), "agent-sandbox-controller");
    stop_process(&router_pid_file(), "agent-sandbox-router");
    fs::create_dir_all(demo_dir()).context("creating target/demo")?;
    let log_path = demo_dir().join("controller.log");
    let log = fs::File::create(&log_path).context("creating target/demo/controller.log")?;
    let child = Command::new(crate::bench::controller_binary("dev"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--leader-elect=false",
            "--extensions",
            "--metrics-bind-address=127.0.0.1:0",
            "--health-probe-bind-address=127.0.0.1:0",
        ])
        .stdout(log.try_clone().context("log handle")?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the controller")?;
    fs::write(pid_file(), child.id().to_string()).context("writing target/demo/controller.pid")?;
    Ok(log_path)
}

/// Steps 4 and 5: the examples, and what the controller made for the Sandbox, with a command run in it.
fn show_sandbox(kubectl: &Kubectl, log: &Path) -> anyhow::Result<()> {
    println!(
        "==> 4/{STEPS} {EXAMPLES}: a Sandbox with a headless Service and a PVC, the python-runtime template \
         (the in-sandbox runtime) and a warm pool of 3 of it, all under gVisor on the real node"
    );
    kubectl.run(&["apply", "-k", EXAMPLES])?;
    kubectl.wait(
        &[
            "wait",
            "--for=condition=Ready",
            &format!("sandbox/{SANDBOX}"),
            "--timeout=180s",
        ],
        "the Sandbox did not become Ready",
        log,
    )?;
    println!("==> 5/{STEPS} what the controller made, and a command run inside the Sandbox");
    kubectl.run(&["get", "sandbox,pod,service,pvc", "-o", "wide"])?;
    println!(
        "This machine's kernel is {}; inside the Sandbox:",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    kubectl.run(&["exec", SANDBOX, "--", "python3", "-c", INSIDE_SANDBOX])
}

/// Step 6: the warm pool, filled.
fn show_pool(kubectl: &Kubectl, log: &Path) -> anyhow::Result<()> {
    println!(
        "==> 6/{STEPS} the warm pool of 3 pre-warmed gVisor Sandboxes, each running the in-sandbox runtime"
    );
    kubectl.wait(
        &[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=3",
            &format!("sandboxwarmpool/{POOL}"),
            "--timeout=300s",
        ],
        "the warm pool did not fill",
        log,
    )?;
    kubectl.run(&["get", "sandboxwarmpool,sandbox"])
}

/// Step 7: a claim served from the pool, how long it took (the controller's own timestamps and the
/// wall time around kubectl); returns the claimed Sandbox's name.
fn claim(kubectl: &Kubectl, log: &Path) -> anyhow::Result<String> {
    println!("==> 7/{STEPS} {CLAIM_EXAMPLE}: a claim served from the warm pool");
    // A rerun claims afresh instead of timing a claim that is Ready already.
    run_cmd(
        kubectl
            .cmd(&[
                "delete",
                "-f",
                CLAIM_EXAMPLE,
                "--ignore-not-found",
                "--wait",
            ])
            .stdout(Stdio::null()),
    )?;
    let started = Instant::now();
    run_cmd(
        kubectl
            .cmd(&["apply", "-f", CLAIM_EXAMPLE])
            .stdout(Stdio::null()),
    )?;
    kubectl.wait(
        &[
            "wait",
            "--for=condition=Ready",
            &format!("sandboxclaim/{CLAIM}"),
            "--timeout=120s",
        ],
        "the claim did not become Ready",
        log,
    )?;
    let elapsed = started.elapsed();
    kubectl.run(&["get", "sandboxclaim", CLAIM, "-o", "wide"])?;
    let annotations = format!(
        "jsonpath=controller first observed the claim at {{.metadata.annotations.{}}}, Ready at {{.metadata.annotations.{}}}{{\"\\n\"}}",
        dotted(agent_sandbox_api::keys::annotations::CONTROLLER_FIRST_OBSERVED_AT),
        dotted(agent_sandbox_api::keys::annotations::CLAIM_FIRST_READY_AT),
    );
    kubectl.run(&["get", "sandboxclaim", CLAIM, "-o", &annotations])?;
    println!(
        "The claim was Ready {} ms after `kubectl apply` started (two kubectl start-ups included).",
        elapsed.as_millis()
    );
    let claimed = kubectl
        .cmd(&[
            "get",
            "sandboxclaim",
            CLAIM,
            "-o",
            "jsonpath={.status.sandbox.name}",
        ])
        .output()
        .context("reading the claimed Sandbox's name")?;
    Ok(String::from_utf8_lossy(&claimed.stdout).trim().to_string())
}

/// Step 8: the router in the background, and a command run in the claimed Sandbox through it.
fn run_through_router(kubeconfig: &Path, router: SocketAddr, claimed: &str) -> anyhow::Result<()> {
    println!(
        "==> 8/{STEPS} the router (bins/agent-sandbox-router, in the background on {router}) and a \
         command run in the claimed Sandbox {claimed} through it"
    );
    start_router(kubeconfig, router)?;
    let body = serde_json::json!({ "command": IN_CLAIMED_SANDBOX }).to_string();
    println!(
        "curl -s http://{router}/execute -H 'X-Sandbox-ID: {claimed}' -H 'X-Sandbox-Namespace: default' \
         -H 'Content-Type: application/json' -d '{body}'"
    );
    let answer = post_json(router, "/execute", claimed, &body)?;
    println!("{answer}");
    let stdout = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|a| a["stdout"].as_str().map(str::to_owned))
        .with_context(|| format!("the router's answer is not the runtime's: {answer}"))?;
    println!("stdout: {}", stdout.trim());
    Ok(())
}

/// Step 9: the same from Python with upstream's pinned SDK; returns the venv's python.
fn run_from_python(kubeconfig: &Path, router: SocketAddr) -> anyhow::Result<PathBuf> {
    println!(
        "==> 9/{STEPS} the same from Python: {QUICKSTART} with upstream's SDK (k8s-agent-sandbox, pinned in \
         tests/sdk/requirements.txt) claims a sandbox of {POOL}, runs Python and moves a file through the router"
    );
    let python = crate::sdk::ensure_python()?;
    println!("{} {QUICKSTART}", python.display());
    run_cmd(
        Command::new(&python)
            .arg(QUICKSTART)
            .current_dir(root())
            .env("SANDBOX_ROUTER_URL", format!("http://{router}"))
            .env("KUBECONFIG", kubeconfig),
    )?;
    Ok(python)
}

/// Starts the router in the background on `addr` against the cluster (as its admin, like the demo's
/// controller; the e2e suites run it with deploy/router's least-privilege RBAC) and waits until it
/// reports ready: its Sandbox and pod watches have listed.
fn start_router(kubeconfig: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let log_path = demo_dir().join("router.log");
    let log = fs::File::create(&log_path).context("creating target/demo/router.log")?;
    let mut child = Command::new(crate::workspace::target_dir().join("debug/agent-sandbox-router"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg(format!("--bind-address={addr}"))
        .stdout(log.try_clone().context("log handle")?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the router")?;
    fs::write(router_pid_file(), child.id().to_string())
        .context("writing target/demo/router.pid")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the router exited with {status}; see {}",
                log_path.display()
            );
        }
        if http(
            addr,
            "GET /readyz HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the router was not ready within 30 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST path` with a JSON body to Sandbox `default/sandbox` through the router; the answer's body.
fn post_json(router: SocketAddr, path: &str, sandbox: &str, body: &str) -> anyhow::Result<String> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {router}\r\nConnection: close\r\nX-Sandbox-ID: {sandbox}\r\n\
         X-Sandbox-Namespace: default\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(router, &request)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("no answer head from the router: {answer:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("POST {path} through the router: {head}\n{body}");
    }
    Ok(body.to_owned())
}

/// Sends one raw HTTP/1.1 request (`Connection: close`) and reads the whole answer.
fn http(addr: SocketAddr, request: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// What the demo runs inside the Sandbox: the kernel it sees (gVisor's, not this machine's), its
/// hostname (the Sandbox's name), and a file written to its PVC.
const INSIDE_SANDBOX: &str = "import os, platform, socket\n\
print('kernel inside the sandbox:', platform.release())\n\
print('hostname:', socket.gethostname())\n\
open('/workspace/hello.txt', 'w').write('written inside the sandbox\\n')\n\
print('/workspace (the PVC):', os.listdir('/workspace'))";

/// What the demo runs in the claimed Sandbox through the router (the runtime's `/execute`): 6 * 7,
/// the Python version and the kernel it sees (gVisor's). No single quotes, so the curl line printed
/// with it can be pasted into a shell.
const IN_CLAIMED_SANDBOX: &str =
    "python3 -c \"import platform, sys; print(6 * 7, sys.version.split()[0], platform.release())\"";

/// A label or annotation key as a kubectl JSONPath member (dots and slashes escaped).
fn dotted(key: &str) -> String {
    key.replace('.', "\\.")
}

/// Kills the process the demo started earlier and recorded in `pid_file`, if it is still running
/// and still `binary` (a recycled PID is left alone).
fn stop_process(pid_file: &Path, binary: &str) {
    let Ok(pid) = fs::read_to_string(pid_file) else {
        return;
    };
    let pid = pid.trim();
    let ours = fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe.to_string_lossy().contains(binary));
    if ours {
        let _ = Command::new("kill").arg(pid).status();
    }
    let _ = fs::remove_file(pid_file);
}

fn stop() -> anyhow::Result<()> {
    stop_process(&router_pid_file(), "agent-sandbox-router");
    stop_process(&pid_file(), "agent-sandbox-controller");
    cluster::down()?;
    println!("demo stopped");
    Ok(())
}
