//! `cargo xtask demo`: the README's main job. Starts the local cluster (control plane, kwok nodes and the
//! real node), installs the CRDs, runs the controller (with the extension controllers) in the background,
//! shows a Sandbox becoming Ready on the real node under gVisor and runs a command inside it, fills a warm
//! pool of gVisor sandboxes, claims one and runs Python in it, printing how long the claim took.
//! `cargo xtask demo --stop` undoes it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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
const STEPS: u8 = 7;

fn demo_dir() -> PathBuf {
    root().join("target/demo")
}

fn pid_file() -> PathBuf {
    demo_dir().join("controller.pid")
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
        program: cluster::bin_dir()?.join("kubectl"),
        kubeconfig: cluster::kubeconfig_path(),
    };
    println!(
        "==> 2/{STEPS} CRDs from deploy/crds (strategy None: the demo runs without the conversion webhook)"
    );
    install_crds(&kubectl)?;
    println!(
        "==> 3/{STEPS} controller (built from bins/agent-sandbox-controller, running in the background)"
    );
    let log = start_controller(&kubectl.kubeconfig)?;
    println!(
        "==> 4/{STEPS} {EXAMPLES}: a Sandbox with a headless Service and a PVC, a template and a warm pool \
         of 3, all under gVisor on the real node"
    );
    kubectl.run(&["apply", "-k", EXAMPLES])?;
    let sandbox = format!("sandbox/{SANDBOX}");
    let ready = ["wait", "--for=condition=Ready", &sandbox, "--timeout=180s"];
    wait(
        &mut kubectl.cmd(&ready),
        "the Sandbox did not become Ready",
        &log,
    )?;
    println!("==> 5/{STEPS} what the controller made, and a command run inside the Sandbox");
    show_sandbox(&kubectl)?;
    println!("==> 6/{STEPS} the warm pool of 3 pre-warmed gVisor Sandboxes");
    let pool = format!("sandboxwarmpool/{POOL}");
    let filled = [
        "wait",
        "--for=jsonpath={.status.readyReplicas}=3",
        &pool,
        "--timeout=300s",
    ];
    wait(
        &mut kubectl.cmd(&filled),
        "the warm pool did not fill",
        &log,
    )?;
    kubectl.run(&["get", "sandboxwarmpool,sandbox"])?;
    println!("==> 7/{STEPS} {CLAIM_EXAMPLE}: a claim served from the warm pool");
    claim(&kubectl, &log)?;
    println!(
        "\nThe Sandbox and the claim are Ready. Try:\n  \
         eval \"$(cargo xtask cluster env)\"\n  \
         kubectl patch sandbox {SANDBOX} --type=merge -p '{{\"spec\":{{\"operatingMode\":\"Suspended\"}}}}'   # Pod goes, PVC stays\n  \
         kubectl get sandbox {SANDBOX} -o yaml\n  \
         kubectl scale sandboxwarmpool/{POOL} --replicas=5\n\
         Controller log: {}\nStop everything: cargo xtask demo --stop",
        log.display()
    );
    Ok(())
}

/// Our kubectl, pointed at the local cluster, run from the workspace root.
struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(root());
        cmd
    }

    /// Runs kubectl with its output shown.
    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        run_cmd(&mut self.cmd(args))
    }

    /// Runs kubectl with its output hidden.
    fn quietly(&self, args: &[&str]) -> anyhow::Result<()> {
        run_cmd(self.cmd(args).stdout(Stdio::null()))
    }
}

/// Runs a `kubectl wait`; when it fails, says `failed` and points at the controller's log.
fn wait(cmd: &mut Command, failed: &str, log: &Path) -> anyhow::Result<()> {
    if !cmd.status().is_ok_and(|s| s.success()) {
        bail!("{failed}; see {}", log.display());
    }
    Ok(())
}

/// Applies the CRDs, switched to conversion strategy None, and waits until they are served.
fn install_crds(kubectl: &Kubectl) -> anyhow::Result<()> {
    kubectl.run(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "deploy/crds",
    ])?;
    for crd in agent_sandbox_api::crd::all().context("building the CRD list")? {
        let name = crd.metadata.name.unwrap_or_default();
        let patch = r#"{"spec":{"conversion":{"strategy":"None","webhook":null}}}"#;
        kubectl.quietly(&["patch", "crd", &name, "--type=merge", "-p", patch])?;
        kubectl.run(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=60s",
        ])?;
    }
    Ok(())
}

/// Builds the controller and starts it in the background (replacing one a previous demo left);
/// returns its log file.
fn start_controller(kubeconfig: &Path) -> anyhow::Result<PathBuf> {
    run_cmd(cargo().args(["build", "--package", "agent-sandbox-controller"]))?;
    stop_controller();
    fs::create_dir_all(demo_dir()).context("creating target/demo")?;
    let log_path = demo_dir().join("controller.log");
    let log = fs::File::create(&log_path).context("creating target/demo/controller.log")?;
    let child = Command::new(crate::bench::controller_binary("dev"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--leader-elect=false",
            "--enable-webhook=false",
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

/// Lists what the controller made for the Sandbox and runs [`INSIDE_SANDBOX`] in it.
fn show_sandbox(kubectl: &Kubectl) -> anyhow::Result<()> {
    kubectl.run(&["get", "sandbox,pod,service,pvc", "-o", "wide"])?;
    println!(
        "This machine's kernel is {}; inside the Sandbox:",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    kubectl.run(&["exec", SANDBOX, "--", "python3", "-c", INSIDE_SANDBOX])
}

/// Claims a Sandbox from the pool, says how long that took (the controller's own timestamps and
/// the wall time around kubectl) and runs [`IN_CLAIMED_SANDBOX`] in it.
fn claim(kubectl: &Kubectl, log: &Path) -> anyhow::Result<()> {
    // A rerun claims afresh instead of timing a claim that is Ready already.
    kubectl.quietly(&[
        "delete",
        "-f",
        CLAIM_EXAMPLE,
        "--ignore-not-found",
        "--wait",
    ])?;
    let started = Instant::now();
    kubectl.quietly(&["apply", "-f", CLAIM_EXAMPLE])?;
    let claim = format!("sandboxclaim/{CLAIM}");
    let ready = ["wait", "--for=condition=Ready", &claim, "--timeout=120s"];
    wait(
        kubectl.cmd(&ready).stdout(Stdio::null()),
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
    let claimed = String::from_utf8_lossy(&claimed.stdout).trim().to_string();
    println!("Python inside the claimed Sandbox {claimed}:");
    kubectl.run(&["exec", &claimed, "--", "python3", "-c", IN_CLAIMED_SANDBOX])
}

/// What the demo runs inside the Sandbox: the kernel it sees (gVisor's, not this machine's), its
/// hostname (the Sandbox's name), and a file written to its PVC.
const INSIDE_SANDBOX: &str = "import os, platform, socket\n\
print('kernel inside the sandbox:', platform.release())\n\
print('hostname:', socket.gethostname())\n\
open('/workspace/hello.txt', 'w').write('written inside the sandbox\\n')\n\
print('/workspace (the PVC):', os.listdir('/workspace'))";

/// What the demo runs in the claimed Sandbox.
const IN_CLAIMED_SANDBOX: &str = "import platform, sys\n\
print('6 * 7 =', 6 * 7, '| Python', sys.version.split()[0], 'on kernel', platform.release())";

/// A label or annotation key as a kubectl JSONPath member (dots and slashes escaped).
fn dotted(key: &str) -> String {
    key.replace('.', "\\.")
}

/// Kills the demo controller started earlier, if it is still running.
fn stop_controller() {
    let Ok(pid) = fs::read_to_string(pid_file()) else {
        return;
    };
    let pid = pid.trim();
    let ours = fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|exe| exe.to_string_lossy().contains("agent-sandbox-controller"));
    if ours {
        let _ = Command::new("kill").arg(pid).status();
    }
    let _ = fs::remove_file(pid_file());
}

fn stop() -> anyhow::Result<()> {
    stop_controller();
    cluster::down()?;
    println!("demo stopped");
    Ok(())
}
