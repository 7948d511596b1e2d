//! Pod traffic never leaves the machine: the real node's firewall drops every packet from the pod
//! network that would go out through any interface but the pods' bridge.
//!
//! Proving that must not send anything off the machine, so the "outside" is a network namespace this
//! test makes itself: a veth pair whose far end (in the namespace) listens on TCP and has a route back
//! to the pod network. Without the firewall a pod could reach it (the host forwards for the pods);
//! with it, the host itself reaches the listener (the control) while the pod's connection fails and
//! the firewall's DROP counter grows.

use std::process::Command;

use agent_sandbox_hostcmd::output as run;
use agent_sandbox_testkit::TestEnv;
use anyhow::{Context, ensure};
use kube::ResourceExt;
use serde_json::json;

use super::{
    busybox_sleeper, create_sandbox, ensure_on_real_node, exec, pod_template, sandbox_pod,
    wait_sandbox_ready,
};

/// The test's own "outside": a /30 from the benchmarking range, on a veth into its own namespace.
const HOST_SIDE: &str = "198.18.0.1";
const FAR_SIDE: &str = "198.18.0.2";
const PORT: &str = "18080";
/// The pods' network, which the far side routes back to (as a real outside network would not).
const POD_CIDR: &str = "10.88.0.0/16";
/// The firewall chain (table mangle) `cargo xtask cluster up` installs for forwarded traffic.
const CHAIN: &str = "AGENT-SANDBOX-FORWARD";

/// The namespace, the veth and the listener; removed on drop whatever the test's outcome.
struct Outside {
    netns: String,
    veth: String,
    listener: Option<std::process::Child>,
}

impl Outside {
    fn create(tag: &str) -> anyhow::Result<Self> {
        let netns = format!("as-outside-{tag}");
        let veth = format!("asout{tag}");
        let peer = format!("asin{tag}");
        run("ip", &["netns", "add", &netns])?;
        // From here on a failure still removes what exists.
        let mut outside = Self {
            netns: netns.clone(),
            veth: veth.clone(),
            listener: None,
        };
        let far = format!("{FAR_SIDE}/30");
        let near = format!("{HOST_SIDE}/30");
        for args in [
            vec!["link", "add", &veth, "type", "veth", "peer", "name", &peer],
            vec!["link", "set", &peer, "netns", &netns],
            vec!["addr", "add", &near, "dev", &veth],
            vec!["link", "set", &veth, "up"],
            vec!["-n", &netns, "addr", "add", &far, "dev", &peer],
            vec!["-n", &netns, "link", "set", &peer, "up"],
            vec!["-n", &netns, "link", "set", "lo", "up"],
            vec!["-n", &netns, "route", "add", POD_CIDR, "via", HOST_SIDE],
        ] {
            run("ip", &args)?;
        }
        outside.listener = Some(
            Command::new("ip")
                .args(["netns", "exec", &netns, "busybox", "nc", "-ll", "-p", PORT])
                .args(["-e", "echo", "outside"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting the listener in the test namespace")?,
        );
        Ok(outside)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(listener) = &mut self.listener {
            let _ = listener.kill();
            let _ = listener.wait();
        }
        let _ = run("ip", &["link", "del", &self.veth]);
        let _ = run("ip", &["netns", "del", &self.netns]);
    }
}

/// Packets the firewall's first rule (pod network → not the bridge) has dropped so far.
fn dropped() -> anyhow::Result<u64> {
    let listing = run(
        "iptables",
        &["-w", "-t", "mangle", "-L", CHAIN, "-v", "-x", "-n"],
    )?;
    listing
        .lines()
        .find(|l| l.contains("DROP") && l.contains(POD_CIDR))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no DROP rule for {POD_CIDR} in {CHAIN}:\n{listing}"))
}

/// Host → outside works (the route and listener are real); pod → outside fails and is counted as
/// dropped by the firewall.
pub async fn pod_traffic_never_leaves_the_machine(env: TestEnv) -> anyhow::Result<()> {
    create_sandbox(
        &env,
        "probe",
        pod_template("runc", json!([busybox_sleeper()]), json!({})),
        json!({}),
    )
    .await?;
    let sandbox = wait_sandbox_ready(&env, "probe").await?;
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "runc")?;

    let tag = format!("{}", std::process::id() % 10_000);
    let _outside = Outside::create(&tag)?;
    // The control: from the host the listener answers (bounded retries while it starts).
    let mut answered = false;
    for _ in 0..50 {
        let reply = Command::new("busybox")
            .args(["nc", "-w", "1", FAR_SIDE, PORT])
            .stdin(std::process::Stdio::null())
            .output()
            .context("running busybox nc on the host")?;
        if String::from_utf8_lossy(&reply.stdout).contains("outside") {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(
        answered,
        "the host could not reach its own test namespace at {FAR_SIDE}:{PORT}"
    );

    let before = dropped()?;
    let attempt = exec(&env, &pod.name_any(), &["nc", "-w", "3", FAR_SIDE, PORT]).await?;
    let after = dropped()?;
    ensure!(
        !attempt.stdout.contains("outside"),
        "a pod reached {FAR_SIDE}:{PORT} outside the pod network: {attempt:?}"
    );
    ensure!(
        after > before,
        "the pod's connection failed, but not because the firewall dropped it ({CHAIN} DROP \
         counter stayed at {before})"
    );
    Ok(())
}
