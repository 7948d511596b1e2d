//! The runtime class of the pod template decides what really runs the Sandbox: gVisor's own kernel
//! or the host's (runc).

use agent_sandbox_testkit::TestEnv;
use anyhow::{Context, ensure};
use kube::ResourceExt;
use serde_json::json;

use super::{
    NODE, busybox_sleeper, create_sandbox, ensure_on_real_node, exec, exec_ok, pod_template,
    sandbox_pod, wait_sandbox_ready,
};

/// What gVisor's kernel writes first into its (synthetic) kernel log.
const GVISOR_BANNER: &str = "Starting gVisor";

/// A gVisor Sandbox and a runc Sandbox, both Ready on the real node: in the gVisor one `dmesg` shows
/// gVisor's banner and `uname -r` is not the host's kernel release; in the runc one `uname -r` is the
/// host's and `dmesg` shows no gVisor banner.
pub async fn gvisor_sandbox_runs_a_real_process(env: TestEnv) -> anyhow::Result<()> {
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading the host's kernel release")?
        .trim()
        .to_owned();
    for runtime in ["gvisor", "runc"] {
        create_sandbox(
            &env,
            runtime,
            pod_template(runtime, json!([busybox_sleeper()]), json!({})),
            json!({}),
        )
        .await?;
    }
    let (gvisor, runc) = futures::future::try_join(
        wait_sandbox_ready(&env, "gvisor"),
        wait_sandbox_ready(&env, "runc"),
    )
    .await?;
    let mut pods = Vec::new();
    for (sandbox, runtime) in [(&gvisor, "gvisor"), (&runc, "runc")] {
        let node = sandbox.status.as_ref().map(|s| s.node_name.as_str());
        ensure!(node == Some(NODE), "{runtime}: status.nodeName = {node:?}");
        let pod = sandbox_pod(&env, sandbox).await?;
        ensure_on_real_node(&pod, runtime)?;
        pods.push(pod.name_any());
    }
    let (gvisor_pod, runc_pod) = (&pods[0], &pods[1]);

    let kernel_log = exec_ok(&env, gvisor_pod, &["dmesg"]).await?;
    ensure!(
        kernel_log.contains(GVISOR_BANNER),
        "gVisor's dmesg shows no {GVISOR_BANNER:?}:\n{kernel_log}"
    );
    let release = exec_ok(&env, gvisor_pod, &["uname", "-r"]).await?;
    ensure!(
        release != host_release,
        "the gVisor Sandbox reports the host's kernel release {host_release:?}"
    );

    let release = exec_ok(&env, runc_pod, &["uname", "-r"]).await?;
    ensure!(
        release == host_release,
        "the runc Sandbox reports kernel {release:?}, the host runs {host_release:?}"
    );
    // Under runc `dmesg` reads the host's log or is refused; either way gVisor's banner is absent.
    let kernel_log = exec(&env, runc_pod, &["dmesg"]).await?;
    ensure!(
        !kernel_log.stdout.contains(GVISOR_BANNER),
        "the runc Sandbox's dmesg shows gVisor's banner:\n{}",
        kernel_log.stdout
    );
    Ok(())
}
