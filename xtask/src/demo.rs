//! `cargo xtask demo`: the README's main job. Starts the local cluster (control plane, kwok nodes and the
//! real node), installs the CRDs, runs the controller (with the extension controllers) in the background,
//! shows a Sandbox becoming Ready on the real node under gVisor and runs a command inside it, fills a warm
//! pool of gVisor sandboxes running the in-sandbox runtime, claims one (printing how long the claim
//! took), deploys the router into the cluster (the default install's Deployment, from the locally built
//! image), runs a command in the claimed sandbox through it, then does the same from Python with
//! upstream's SDK and its default connection. `cargo xtask demo --stop` undoes it.

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
    /// Run the controller in the cluster, as the default install does (deploy/local-cluster/install:
    /// two leader-elected Pods from the locally built image), instead of as a host process.
    #[arg(long)]
    in_cluster: bool,
}

/// The examples (Sandbox, template, warm pool) with the local overlay: gVisor, the local Python image.
const EXAMPLES: &str = "deploy/local-cluster";
const SANDBOX: &str = "demo-sandbox";
const POOL: &str = "python-pool";
const CLAIM_EXAMPLE: &str = "deploy/examples/sandboxclaim.yaml";
const CLAIM: &str = "my-agent";
/// Upstream's Python SDK in the claim → run → files loop (deploy/examples/quickstart.py).
const QUICKSTART: &str = "deploy/examples/quickstart.py";
/// The default install's controller and router made to run on the local cluster (local images).
const INSTALL_OVERLAY: &str = "deploy/local-cluster/install";
/// The default install's router made to run on the local cluster (the locally built image).
const ROUTER_OVERLAY: &str = "deploy/local-cluster/router";
/// Where deploy/ installs the router, and the namespace's manifest (deploy/controller's).
const SYSTEM_NAMESPACE: &str = "agent-sandbox-system";
const NAMESPACE_MANIFEST: &str = "deploy/controller/namespace.yaml";
const STEPS: u8 = 9;

fn demo_dir() -> PathBuf {
    root().join("target/demo")
}

fn pid_file() -> PathBuf {
    demo_dir().join("controller.pid")
}

/// The `kubectl port-forward` to the router's Service that the demo leaves running.
fn port_forward_pid_file() -> PathBuf {
    demo_dir().join("port-forward.pid")
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
    let log = if args.in_cluster {
        install_in_cluster(&kubectl)?
    } else {
        // A previous `--in-cluster` demo's controller would act on the same objects.
        kubectl.run(&[
            "delete",
            "deployment/agent-sandbox-controller",
            "--namespace",
            SYSTEM_NAMESPACE,
            "--ignore-not-found",
        ])?;
        start_controller(&kubectl.kubeconfig)?
    };
    show_sandbox(&kubectl, &log)?;
    show_pool(&kubectl, &log)?;
    let claimed = claim(&kubectl, &log)?;
    let router = SocketAddr::from(([127, 0, 0, 1], cluster::ports::demo_router()));
    run_through_router(&kubectl, router, &claimed, &log)?;
    let python = run_from_python(&kubectl.kubeconfig)?;
    println!(
        "\nThe Sandbox, the claim and the router are up. Try:\n  \
         eval \"$(cargo xtask cluster env)\"\n  \
         KUBECONFIG={kubeconfig} {python} {QUICKSTART}\n  \
         kubectl patch sandbox {SANDBOX} --type=merge -p '{{\"spec\":{{\"operatingMode\":\"Suspended\"}}}}'   # Pod goes, PVC stays\n  \
         kubectl scale sandboxwarmpool/{POOL} --replicas=5\n  \
         kubectl logs -n {SYSTEM_NAMESPACE} deployment/sandbox-router   # the router, in the cluster\n\
         The router answers on http://{router} too (a kubectl port-forward to its Service).\n\
         Logs: {} (docs/using-sandboxes.md explains the rest)\n\
         Stop everything: cargo xtask demo --stop",
        log,
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
    fn wait(&self, args: &[&str], what: &str, log: &str) -> anyhow::Result<()> {
        let waited = self.cmd(args).stdout(Stdio::null()).status();
        if !waited.is_ok_and(|s| s.success()) {
            bail!("{what}; see {log}");
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

/// Step 3: builds the controller and starts it in the background (replacing what a previous demo
/// left); returns where its log is.
fn start_controller(kubeconfig: &Path) -> anyhow::Result<String> {
    println!(
        "==> 3/{STEPS} controller (built from bins/agent-sandbox-controller, running in the background)"
    );
    run_cmd(cargo().args(["build", "--package", "agent-sandbox-controller"]))?;
    stop_process(&pid_file(), "agent-sandbox-controller");
    // kubectl is a link to the cluster's multi-call `kube` binary.
    stop_process(&port_forward_pid_file(), "kube");
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
    Ok(log_path.display().to_string())
}

/// Step 3 with `--in-cluster`: the default install's controller and router in the cluster from the
/// locally built images; returns how to read the controller's log.
fn install_in_cluster(kubectl: &Kubectl) -> anyhow::Result<String> {
    println!(
        "==> 3/{STEPS} controller in the cluster ({INSTALL_OVERLAY}: deploy/controller and deploy/router \
         from the locally built images, two leader-elected controller Pods on the real node)"
    );
    stop_process(&pid_file(), "agent-sandbox-controller");
    stop_process(&port_forward_pid_file(), "kube");
    let log = format!("`kubectl logs -n {SYSTEM_NAMESPACE} deployment/agent-sandbox-controller`");
    kubectl.run(&["apply", "-k", INSTALL_OVERLAY])?;
    kubectl.wait(
        &[
            "rollout",
            "status",
            "deployment/agent-sandbox-controller",
            "--namespace",
            SYSTEM_NAMESPACE,
            "--timeout=180s",
        ],
        "the controller's Deployment did not roll out",
        &log,
    )?;
    kubectl.run(&["get", "pods", "--namespace", SYSTEM_NAMESPACE, "-o", "wide"])?;
    Ok(log)
}

/// Steps 4 and 5: the examples, and what the controller made for the Sandbox, with a command run in it.
fn show_sandbox(kubectl: &Kubectl, log: &str) -> anyhow::Result<()> {
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
fn show_pool(kubectl: &Kubectl, log: &str) -> anyhow::Result<()> {
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
fn claim(kubectl: &Kubectl, log: &str) -> anyhow::Result<String> {
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

/// Step 8: the router in the cluster, port-forwarded to `router`, and a command run in the claimed
/// Sandbox through it.
fn run_through_router(
    kubectl: &Kubectl,
    router: SocketAddr,
    claimed: &str,
    log: &str,
) -> anyhow::Result<()> {
    println!(
        "==> 8/{STEPS} the router in the cluster ({ROUTER_OVERLAY}: deploy/router's Deployment and Service \
         sandbox-router-svc from the locally built image), port-forwarded to {router}, and a command run in \
         the claimed Sandbox {claimed} through it"
    );
    kubectl.run(&["apply", "-f", NAMESPACE_MANIFEST])?;
    kubectl.run(&["apply", "-k", ROUTER_OVERLAY])?;
    kubectl.wait(
        &[
            "rollout",
            "status",
            "deployment/sandbox-router",
            "--namespace",
            SYSTEM_NAMESPACE,
            "--timeout=180s",
        ],
        "the router's Deployment did not roll out (kubectl describe pods -n agent-sandbox-system)",
        log,
    )?;
    start_port_forward(kubectl, router)?;
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

/// Step 9: the same from Python with upstream's pinned SDK and its default connection (a `kubectl
/// port-forward` of its own to the router's Service); returns the venv's python.
fn run_from_python(kubeconfig: &Path) -> anyhow::Result<PathBuf> {
    println!(
        "==> 9/{STEPS} the same from Python: {QUICKSTART} with upstream's SDK (k8s-agent-sandbox, pinned in \
         tests/sdk/requirements.txt) claims a sandbox of {POOL}, runs Python and moves a file through the router"
    );
    let python = crate::sdk::ensure_python()?;
    println!("{} {QUICKSTART}", python.display());
    // The SDK runs `kubectl port-forward` itself: our kubectl first on PATH.
    let path = std::env::join_paths(std::iter::once(cluster::bin_dir()?).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    run_cmd(
        Command::new(&python)
            .arg(QUICKSTART)
            .current_dir(root())
            .env_remove("SANDBOX_ROUTER_URL")
            .env("PATH", path)
            .env("KUBECONFIG", kubeconfig),
    )?;
    Ok(python)
}

/// Starts `kubectl port-forward` from `addr` to the router's Service in the background (left running
/// for the curl line the demo prints) and waits until the router answers ready through it.
fn start_port_forward(kubectl: &Kubectl, addr: SocketAddr) -> anyhow::Result<()> {
    let log_path = demo_dir().join("port-forward.log");
    let log = fs::File::create(&log_path).context("creating target/demo/port-forward.log")?;
    let mut child = kubectl
        .cmd(&[
            "port-forward",
            "--namespace",
            SYSTEM_NAMESPACE,
            "service/sandbox-router-svc",
            "--address",
            &addr.ip().to_string(),
            &format!("{}:8080", addr.port()),
        ])
        .stdout(log.try_clone().context("log handle")?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting kubectl port-forward")?;
    fs::write(port_forward_pid_file(), child.id().to_string())
        .context("writing target/demo/port-forward.pid")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "kubectl port-forward exited with {status}; see {}",
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
                "the router did not answer ready through the port-forward within 30 s; see {}",
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
    stop_process(&port_forward_pid_file(), "kube");
    stop_process(&pid_file(), "agent-sandbox-controller");
    cluster::down()?;
    println!("demo stopped");
    Ok(())
}
