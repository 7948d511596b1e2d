//! A Sandbox's stable identity on a real network: its hostname, and its Service's name in cluster DNS.

use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::wait::wait_for_object;
use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

use super::{
    TIMEOUT, busybox_sleeper, create_sandbox, ensure_on_real_node, exec_ok, pod_ip, pod_template,
    python_sleeper, sandbox_pod, wait_sandbox_ready,
};

/// Resolves `argv[1]` and prints its IPv4 address. CoreDNS learns the Service's endpoints from a
/// watch of its own, which the test cannot observe: the lookup is retried (NXDOMAIN, possibly cached
/// negatively for a few seconds) for at most 90 s.
const RESOLVE: &str = "\
import socket, sys, time
deadline = time.monotonic() + 90
while True:
    try:
        print(socket.gethostbyname(sys.argv[1]))
        break
    except OSError as error:
        if time.monotonic() > deadline:
            sys.exit(f'{sys.argv[1]} did not resolve: {error}')
        time.sleep(0.5)
";

/// A Sandbox with a Service: `hostname` in its container prints the Sandbox's name, and its
/// `status.serviceFQDN` (`<name>.<namespace>.svc.cluster.local`) resolves, from another Pod on the
/// real node, to the Sandbox Pod's IP (as does the Pod's own `<name>.<serviceFQDN>`).
pub async fn hostname_is_the_sandbox_name_and_service_fqdn_resolves(
    env: TestEnv,
) -> anyhow::Result<()> {
    let name = "named";
    let mut sleeper = busybox_sleeper();
    sleeper["ports"] = json!([{"containerPort": 8888, "name": "http"}]);
    create_sandbox(
        &env,
        name,
        pod_template("gvisor", json!([sleeper]), json!({})),
        json!({"service": true}),
    )
    .await?;
    // Another Pod on the real node to look the name up from (not a Sandbox: any client will do).
    let pods = env.api::<Pod>();
    let prober: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "prober"},
        "spec": pod_template("gvisor", json!([python_sleeper()]), json!({}))["spec"],
    }))?;
    pods.create(&PostParams::default(), &prober)
        .await
        .context("creating the prober Pod")?;

    let sandbox = wait_sandbox_ready(&env, name).await?;
    let fqdn = sandbox
        .status
        .as_ref()
        .map(|s| s.service_fqdn.clone())
        .unwrap_or_default();
    ensure!(
        fqdn == format!("{name}.{}.svc.cluster.local", env.namespace),
        "status.serviceFQDN = {fqdn:?}"
    );
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "gvisor")?;
    let ip = pod_ip(&pod).context("the Sandbox's Pod has no IP")?;
    let status_ips = sandbox
        .status
        .as_ref()
        .map(|s| s.pod_ips.clone())
        .unwrap_or_default();
    ensure!(
        status_ips.first() == Some(&ip),
        "status.podIPs {status_ips:?}, the Pod has {ip}"
    );

    let hostname = exec_ok(&env, &pod.name_any(), &["hostname"]).await?;
    ensure!(hostname == name, "hostname in the Sandbox is {hostname:?}");

    let prober = wait_for_object(
        &pods,
        "prober",
        "the prober Pod to be Ready",
        TIMEOUT,
        |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        },
    )
    .await?;
    ensure_on_real_node(&prober, "gvisor")?;
    ensure!(
        pod_ip(&prober) != Some(ip.clone()),
        "the prober has the Sandbox's IP"
    );
    // The Service's name, and the Pod's own name under it (hostname.subdomain), which the controller
    // sets up by making the Service the Pod's subdomain.
    let pod_fqdn = format!("{name}.{fqdn}");
    for looked_up in [&fqdn, &pod_fqdn] {
        // The trailing dot makes the name absolute: no search-list queries before it.
        let resolved = exec_ok(
            &env,
            "prober",
            &["python3", "-c", RESOLVE, &format!("{looked_up}.")],
        )
        .await?;
        ensure!(
            resolved == ip,
            "{looked_up} resolves to {resolved:?} from another Pod; the Sandbox's Pod has {ip}"
        );
    }
    Ok(())
}
