//! `cargo xtask demo`: the README's main job. Starts the local cluster (control plane, kwok nodes and the
//! real node), installs the CRDs, runs the controller (with the extension controllers) in the background,
//! shows a Sandbox becoming Ready on the real node under gVisor and runs a command inside it, fills a warm
//! pool of gVisor sandboxes, claims one and runs Python in it, printing how long the claim took.
//! `cargo xtask demo --stop` undoes it.

use std::fs;
use std::path::PathBuf;
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
    let kubeconfig = cluster::kubeconfig_path();
    let kubectl = cluster::bin_dir()?.join("kubectl");
    let kubectl_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&kubectl);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .current_dir(root());
        cmd
    };

    println!(
        "==> 2/{STEPS} CRDs from deploy/crds (strategy None: the demo runs without the conversion webhook)"
    );
    run_cmd(&mut kubectl_cmd(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "deploy/crds",
    ]))?;
    for crd in agent_sandbox_api::crd::all().context("building the CRD list")? {
        let name = crd.metadata.name.unwrap_or_default();
        let patch = r#"{"spec":{"conversion":{"strategy":"None","webhook":null}}}"#;
        run_cmd(
            kubectl_cmd(&["patch", "crd", &name, "--type=merge", "-p", patch])
                .stdout(Stdio::null()),
        )?;
        run_cmd(&mut kubectl_cmd(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=60s",
        ]))?;
    }

    println!(
        "==> 3/{STEPS} controller (built from bins/agent-sandbox-controller, running in the background)"
    );
    run_cmd(cargo().args(["build", "--package", "agent-sandbox-controller"]))?;
    stop_controller();
    fs::create_dir_all(demo_dir()).context("creating target/demo")?;
    let log_path = demo_dir().join("controller.log");
    let log = fs::File::create(&log_path).context("creating target/demo/controller.log")?;
    let child = Command::new(crate::workspace::target_dir().join("debug/agent-sandbox-controller"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
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

    println!(
        "==> 4/{STEPS} {EXAMPLES}: a Sandbox with a headless Service and a PVC, a template and a warm pool \
         of 3, all under gVisor on the real node"
    );
    run_cmd(&mut kubectl_cmd(&["apply", "-k", EXAMPLES]))?;
    let waited = kubectl_cmd(&[
        "wait",
        "--for=condition=Ready",
        &format!("sandbox/{SANDBOX}"),
        "--timeout=180s",
    ])
    .status();
    if !waited.is_ok_and(|s| s.success()) {
        bail!(
            "the Sandbox did not become Ready; see {}",
            log_path.display()
        );
    }

    println!("==> 5/{STEPS} what the controller made, and a command run inside the Sandbox");
    run_cmd(&mut kubectl_cmd(&[
        "get",
        "sandbox,pod,service,pvc",
        "-o",
        "wide",
    ]))?;
    println!(
        "This machine's kernel is {}; inside the Sandbox:",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    run_cmd(&mut kubectl_cmd(&[
        "exec",
        SANDBOX,
        "--",
        "python3",
        "-c",
        INSIDE_SANDBOX,
    ]))?;

    println!("==> 6/{STEPS} the warm pool of 3 pre-warmed gVisor Sandboxes");
    let filled = kubectl_cmd(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=3",
        &format!("sandboxwarmpool/{POOL}"),
        "--timeout=300s",
    ])
    .status();
    if !filled.is_ok_and(|s| s.success()) {
        bail!("the warm pool did not fill; see {}", log_path.display());
    }
    run_cmd(&mut kubectl_cmd(&["get", "sandboxwarmpool,sandbox"]))?;

    println!("==> 7/{STEPS} {CLAIM_EXAMPLE}: a claim served from the warm pool");
    // A rerun claims afresh instead of timing a claim that is Ready already.
    run_cmd(
        kubectl_cmd(&[
            "delete",
            "-f",
            CLAIM_EXAMPLE,
            "--ignore-not-found",
            "--wait",
        ])
        .stdout(Stdio::null()),
    )?;
    let started = Instant::now();
    run_cmd(kubectl_cmd(&["apply", "-f", CLAIM_EXAMPLE]).stdout(Stdio::null()))?;
    let claimed = kubectl_cmd(&[
        "wait",
        "--for=condition=Ready",
        &format!("sandboxclaim/{CLAIM}"),
        "--timeout=120s",
    ])
    .stdout(Stdio::null())
    .status();
    let elapsed = started.elapsed();
    if !claimed.is_ok_and(|s| s.success()) {
        bail!("the claim did not become Ready; see {}", log_path.display());
    }
    run_cmd(&mut kubectl_cmd(&[
        "get",
        "sandboxclaim",
        CLAIM,
        "-o",
        "wide",
    ]))?;
    let annotations = format!(
        "jsonpath=controller first observed the claim at {{.metadata.annotations.{}}}, Ready at {{.metadata.annotations.{}}}{{\"\\n\"}}",
        dotted(agent_sandbox_api::keys::annotations::CONTROLLER_FIRST_OBSERVED_AT),
        dotted(agent_sandbox_api::keys::annotations::CLAIM_FIRST_READY_AT),
    );
    run_cmd(&mut kubectl_cmd(&[
        "get",
        "sandboxclaim",
        CLAIM,
        "-o",
        &annotations,
    ]))?;
    println!(
        "The claim was Ready {} ms after `kubectl apply` started (two kubectl start-ups included).",
        elapsed.as_millis()
    );
    let claimed = kubectl_cmd(&[
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
    run_cmd(&mut kubectl_cmd(&[
        "exec",
        &claimed,
        "--",
        "python3",
        "-c",
        IN_CLAIMED_SANDBOX,
    ]))?;
    println!(
        "\nThe Sandbox and the claim are Ready. Try:\n  \
         eval \"$(cargo xtask cluster env)\"\n  \
         kubectl patch sandbox {SANDBOX} --type=merge -p '{{\"spec\":{{\"operatingMode\":\"Suspended\"}}}}'   # Pod goes, PVC stays\n  \
         kubectl get sandbox {SANDBOX} -o yaml\n  \
         kubectl scale sandboxwarmpool/{POOL} --replicas=5\n\
         Controller log: {}\nStop everything: cargo xtask demo --stop",
        log_path.display()
    );
    Ok(())
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
