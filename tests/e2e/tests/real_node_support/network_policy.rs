//! NetworkPolicies are enforced on the real node (kube-router's network-policy controller, started
//! by `cargo xtask cluster up`), and a template's managed policy does what docs/templates-and-pools.md
//! says. Every "cannot reach" is paired with a control that reaches the same address and port from a
//! pod no policy selects (or from the host), so a refusal proves the policy, not a closed port.

use std::time::Duration;

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_testkit::{TestEnv, fixtures};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::claims::wait_pool_ready;
use super::{
    BUSYBOX, PYTHON, container, create_pool, create_sandbox, ensure_on_real_node, exec, pod_ip,
    pod_template, sandbox_pod, wait_sandbox_ready, wait_sandboxes,
};

/// Opens a TCP connection to `argv[1]:argv[2]` and prints `connected` or `refused <why>`; exits 0
/// either way, so any other exit is a failure of the check itself.
const CONNECT: &str = "\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print('connected')
except OSError as error:
    print('refused', error)
";

/// The node's bridge address: CoreDNS answers TCP there on port 53.
const NODE_ADDRESS: &str = "10.88.0.1";
/// The `kubernetes` Service.
const API_SERVER: &str = "10.96.0.1";
/// Where clouds serve instance metadata; the scenario puts a listener there for its control.
const METADATA_ADDRESS: &str = "169.254.169.254";
/// The port every listener of these scenarios serves.
const PORT: u16 = 8888;

/// A python container serving HTTP on [`PORT`] (and `extra_port` if given), Ready once every port
/// is bound (the servers bind before any thread serves).
fn listener(extra_port: Option<u16>) -> Value {
    let ports: Vec<String> = std::iter::once(PORT)
        .chain(extra_port)
        .map(|p| p.to_string())
        .collect();
    let script = format!(
        "import http.server, threading\n\
         servers = [http.server.ThreadingHTTPServer(('', p), http.server.SimpleHTTPRequestHandler) for p in ({},)]\n\
         for server in servers:\n    threading.Thread(target=server.serve_forever, daemon=True).start()\n\
         threading.Event().wait()\n",
        ports.join(", ")
    );
    let mut listener = container(PYTHON, &["python3", "-c", &script]);
    listener["readinessProbe"] = json!({"tcpSocket": {"port": PORT}, "periodSeconds": 1});
    listener
}

/// Whether Pod `pod` of the scenario's namespace opens a TCP connection to `host:port`.
async fn connects(env: &TestEnv, pod: &str, host: &str, port: u16) -> anyhow::Result<bool> {
    let out = exec(
        env,
        pod,
        &["python3", "-c", CONNECT, host, &port.to_string()],
    )
    .await?;
    match out.stdout.split_whitespace().next() {
        Some("connected") if out.code == 0 => Ok(true),
        Some("refused") if out.code == 0 => Ok(false),
        _ => bail!("checking {host}:{port} from Pod {pod} failed: {out:?}"),
    }
}

/// Whether the host (this test process) opens a TCP connection to `host:port` within 3 s.
fn host_connects(host: &str, port: u16) -> anyhow::Result<bool> {
    let address = std::net::SocketAddr::new(host.parse().context("a pod IP")?, port);
    Ok(std::net::TcpStream::connect_timeout(&address, Duration::from_secs(3)).is_ok())
}

/// A Sandbox named `name` with no template (so no managed policy selects its Pod), running
/// `container` in a Pod with `labels`; returns its Ready Pod.
async fn unselected(
    env: &TestEnv,
    name: &str,
    container: Value,
    labels: Value,
) -> anyhow::Result<Pod> {
    let mut template = pod_template("runc", json!([container]), json!({}));
    template["metadata"] = json!({ "labels": labels });
    create_sandbox(env, name, template, json!({})).await?;
    let sandbox = wait_sandbox_ready(env, name).await?;
    let pod = sandbox_pod(env, &sandbox).await?;
    ensure_on_real_node(&pod, "runc")?;
    Ok(pod)
}

/// A template named `name` (gVisor, serving HTTP) with the given spec fields, and its pool of
/// `replicas`, filled; returns the pool's Pods.
async fn template_pool(
    env: &TestEnv,
    name: &str,
    fields: Value,
    replicas: i32,
) -> anyhow::Result<Vec<Pod>> {
    let mut spec =
        json!({"podTemplate": pod_template("gvisor", json!([listener(None)]), json!({}))});
    if let (Some(spec), Some(fields)) = (spec.as_object_mut(), fields.as_object()) {
        spec.extend(fields.clone());
    }
    env.create(&fixtures::template(name, spec)?).await?;
    create_pool(env, name, name, replicas).await?;
    wait_pool_ready(env, name, replicas).await?;
    let members = wait_sandboxes(env, "the pool's members", |all: &[Sandbox]| {
        all.iter()
            .filter(|s| s.name_any().starts_with(&format!("{name}-")))
            .count()
            == replicas as usize
    })
    .await?;
    let mut pods = Vec::new();
    for sandbox in members
        .iter()
        .filter(|s| s.name_any().starts_with(&format!("{name}-")))
    {
        pods.push(sandbox_pod(env, sandbox).await?);
    }
    Ok(pods)
}

fn ip_of(pod: &Pod) -> anyhow::Result<String> {
    pod_ip(pod).with_context(|| format!("Pod {} has no IP", pod.name_any()))
}

/// A host route to [`METADATA_ADDRESS`] through a pod on the bridge; removed on drop.
struct MetadataRoute;

impl MetadataRoute {
    fn via(pod_ip: &str) -> anyhow::Result<Self> {
        agent_sandbox_hostcmd::output(
            "ip",
            &[
                "route",
                "replace",
                METADATA_ADDRESS,
                "via",
                pod_ip,
                "dev",
                "asbr0",
            ],
        )?;
        Ok(Self)
    }
}

impl Drop for MetadataRoute {
    fn drop(&mut self) {
        let _ = agent_sandbox_hostcmd::output("ip", &["route", "del", METADATA_ADDRESS]);
    }
}

/// The secure default (no `spec.networkPolicy`): a sandbox reaches neither another sandbox of its
/// template, nor the API server, nor the node, nor the metadata address, all of which a pod no
/// policy selects reaches; and the host still reaches the sandboxes (the kubelet's probes do).
pub async fn the_secure_default_isolates_a_sandbox(env: TestEnv) -> anyhow::Result<()> {
    let pods = template_pool(&env, "secure", json!({}), 2).await?;
    let (a, b) = (pods[0].name_any(), ip_of(&pods[1])?);
    // A metadata server of our own: a runc pod holding the address, routed to by the host.
    let metadata = unselected(
        &env,
        "metadata",
        {
            let mut c = container(
                BUSYBOX,
                &[
                    "sh",
                    "-c",
                    &format!(
                        "ip addr add {METADATA_ADDRESS}/32 dev eth0 && exec httpd -f -p {PORT}"
                    ),
                ],
            );
            c["securityContext"] = json!({"capabilities": {"add": ["NET_ADMIN"]}});
            c
        },
        json!({}),
    )
    .await?;
    let _route = MetadataRoute::via(&ip_of(&metadata)?)?;
    let control = unselected(&env, "control", listener(None), json!({})).await?;
    let control = control.name_any();

    // Another sandbox of the template admits nobody but the router (ingress), so its control is the
    // host, which every policy lets reach its node's pods (the kubelet's probes need it).
    ensure!(
        host_connects(&b, PORT)?,
        "control: the host cannot reach a sandbox of the secure template at {b}:{PORT}"
    );
    ensure!(
        !connects(&env, &a, &b, PORT).await?,
        "a sandbox under the secure default reached another sandbox of its template at {b}:{PORT}"
    );
    for (what, host, port) in [
        ("the API server", API_SERVER, 443),
        ("the node", NODE_ADDRESS, 53),
        ("the metadata address", METADATA_ADDRESS, PORT),
    ] {
        ensure!(
            connects(&env, &control, host, port).await?,
            "control: a pod no policy selects cannot reach {what} at {host}:{port}"
        );
        ensure!(
            !connects(&env, &a, host, port).await?,
            "a sandbox under the secure default reached {what} at {host}:{port}"
        );
    }
    Ok(())
}

/// A template's own `spec.networkPolicy`: its sandbox reaches exactly the pod and port the egress
/// rule names, and nothing else the rule leaves out.
pub async fn a_custom_policy_allows_only_what_it_names(env: TestEnv) -> anyhow::Result<()> {
    let allowed = unselected(
        &env,
        "allowed",
        listener(Some(9999)),
        json!({"role": "allowed-target"}),
    )
    .await?;
    let other = unselected(&env, "other", listener(None), json!({})).await?;
    let sandbox = template_pool(
        &env,
        "custom",
        json!({"networkPolicy": {
            "ingress": [],
            "egress": [{
                "to": [{"podSelector": {"matchLabels": {"role": "allowed-target"}}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }],
        }}),
        1,
    )
    .await?
    .remove(0)
    .name_any();
    let (allowed_ip, other_ip) = (ip_of(&allowed)?, ip_of(&other)?);
    ensure!(
        connects(&env, &sandbox, &allowed_ip, PORT).await?,
        "the sandbox cannot reach {allowed_ip}:{PORT}, which its template's policy allows"
    );
    for (what, host, port) in [
        ("another port of the allowed pod", allowed_ip.as_str(), 9999),
        ("a pod the policy does not name", other_ip.as_str(), PORT),
    ] {
        ensure!(
            host_connects(host, port)?,
            "control: the host cannot reach {what} at {host}:{port}"
        );
        ensure!(
            !connects(&env, &sandbox, host, port).await?,
            "the sandbox reached {what} at {host}:{port}"
        );
    }
    Ok(())
}

/// `networkPolicyManagement: Unmanaged`: no policy object, and the sandboxes reach each other and
/// the API server as any pod does.
pub async fn an_unmanaged_template_gets_no_policy(env: TestEnv) -> anyhow::Result<()> {
    let pods = template_pool(
        &env,
        "open",
        json!({"networkPolicyManagement": "Unmanaged"}),
        2,
    )
    .await?;
    let policies = env.api::<NetworkPolicy>().list(&Default::default()).await?;
    ensure!(
        policies.items.is_empty(),
        "an Unmanaged template's namespace has NetworkPolicies {:?}",
        policies
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    let (a, b) = (pods[0].name_any(), ip_of(&pods[1])?);
    for (what, host, port) in [
        ("another sandbox of the template", b.as_str(), PORT),
        ("the API server", API_SERVER, 443),
    ] {
        ensure!(
            connects(&env, &a, host, port).await?,
            "a sandbox of an Unmanaged template cannot reach {what} at {host}:{port}"
        );
    }
    Ok(())
}
