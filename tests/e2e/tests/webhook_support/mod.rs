//! What the suites of the conversion webhook (conversion.rs) and of the upgrade (upgrade.rs) share:
//! dynamic objects of either version, a controller serving the webhook in local mode on a free port,
//! and waiting for the CRDs to point at it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_sandbox_testkit::controller::Controller;
use agent_sandbox_testkit::wait::wait_for_object;
use agent_sandbox_testkit::{TestEnv, workspace_root};
use anyhow::{Context, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

/// Long enough for the API server and the controller on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between attempts while the API server switches to a (re)started webhook; nothing can be
/// watched for that, so the read is retried until it succeeds or [`TIMEOUT`] passes.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

pub const SECRET: &str = "agent-sandbox-webhook-certs";

/// The controller's namespace in deploy/ (ServiceAccount, Roles, the certificate Secret).
pub use agent_sandbox_testkit::controller::SYSTEM_NAMESPACE;
pub const CRDS: [&str; 4] = [
    "sandboxes.agents.x-k8s.io",
    "sandboxclaims.extensions.agents.x-k8s.io",
    "sandboxtemplates.extensions.agents.x-k8s.io",
    "sandboxwarmpools.extensions.agents.x-k8s.io",
];

/// A dynamic API for one kind in one version, in the test namespace.
pub fn api(env: &TestEnv, kind: &str, version: &str) -> Api<DynamicObject> {
    let (group, plural) = match kind {
        "Sandbox" => ("agents.x-k8s.io", "sandboxes"),
        "SandboxClaim" => ("extensions.agents.x-k8s.io", "sandboxclaims"),
        "SandboxTemplate" => ("extensions.agents.x-k8s.io", "sandboxtemplates"),
        _ => ("extensions.agents.x-k8s.io", "sandboxwarmpools"),
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(env.client.clone(), &env.namespace, &resource)
}

pub fn object(kind: &str, version: &str, name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    let group = if kind == "Sandbox" {
        "agents.x-k8s.io"
    } else {
        "extensions.agents.x-k8s.io"
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{group}/{version}"),
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))?)
}

pub fn pod_template() -> Value {
    json!({ "spec": { "containers": [{ "name": "agent", "image": "registry.invalid/agent:1" }] } })
}

/// Retries `attempt` until it succeeds or [`TIMEOUT`] passes (see [`RETRY_PAUSE`]).
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(error.context(format!("{what}: still failing after {TIMEOUT:?}")));
            }
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Waits until the controller's log shows `needle`; used to know a controller is past its start-up
/// (a SIGTERM while its caches sync is answered only after the shutdown grace period).
pub async fn wait_logged(controller: &Controller, needle: &str) -> anyhow::Result<()> {
    eventually("the controller to finish starting", || {
        let logged = controller.tail(400).contains(needle);
        async move {
            ensure!(logged, "{needle:?} not logged yet");
            Ok(())
        }
    })
    .await
}

/// Logged by a replica whose Sandbox controller runs.
pub const STARTED: &str = "caches synced";

/// First port tried for the webhook: below the ephemeral range (32768 and up on Linux), so no outgoing
/// connection can take it while the controller restarts on the same port. `AGENT_SANDBOX_PORT_OFFSET`
/// shifts it like the cluster's own ports.
pub const WEBHOOK_PORT_BASE: u16 = 29443;

/// A free local port for a webhook (the API server must be told the port before the controller binds
/// it); `skip` ports are passed over (ones already handed out in this run).
pub fn free_port(skip: &[u16]) -> anyhow::Result<u16> {
    let offset: u16 = std::env::var("AGENT_SANDBOX_PORT_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first = WEBHOOK_PORT_BASE.saturating_add(offset);
    (first..first.saturating_add(100))
        .filter(|port| !skip.contains(port))
        .find(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).is_ok())
        .with_context(|| format!("no free port in {first}..{}", first.saturating_add(100)))
}

/// Waits until every CRD calls `url` with a caBundle, and returns the caBundle.
pub async fn wait_for_crds_pointing_at(env: &TestEnv, url: &str) -> anyhow::Result<Vec<u8>> {
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let mut bundles = Vec::new();
    for name in CRDS {
        let crd = wait_for_object(
            &api,
            name,
            "the controller to point the CRD's conversion at its webhook",
            TIMEOUT,
            |crd: Option<&CustomResourceDefinition>| {
                let config = crd
                    .and_then(|c| c.spec.conversion.as_ref())
                    .and_then(|c| c.webhook.as_ref())
                    .and_then(|w| w.client_config.as_ref());
                config.is_some_and(|c| {
                    c.url.as_deref() == Some(url) && c.ca_bundle.is_some() && c.service.is_none()
                })
            },
        )
        .await?;
        let bundle = crd
            .spec
            .conversion
            .and_then(|c| c.webhook)
            .and_then(|w| w.client_config)
            .and_then(|c| c.ca_bundle)
            .map(|b| b.0)
            .unwrap_or_default();
        bundles.push(bundle);
    }
    ensure!(
        bundles.windows(2).all(|w| w[0] == w[1]),
        "the CRDs trust different CAs"
    );
    Ok(bundles.remove(0))
}

/// Where controller `name` writes its serving certificate.
pub fn cert_dir(env: &TestEnv, name: &str) -> PathBuf {
    workspace_root()
        .join("target/e2e-logs")
        .join(format!("{name}-{}-certs", env.namespace))
}

pub fn start_controller(
    env: &TestEnv,
    kubeconfig: &Path,
    name: &str,
    port: u16,
    url: &str,
) -> anyhow::Result<Controller> {
    start_controller_with(env, kubeconfig, name, port, url, &[])
}

pub fn start_controller_with(
    env: &TestEnv,
    kubeconfig: &Path,
    name: &str,
    port: u16,
    url: &str,
    extra: &[&str],
) -> anyhow::Result<Controller> {
    let port = format!("--webhook-port={port}");
    let url = format!("--webhook-url={url}");
    let namespace = format!("--webhook-namespace={SYSTEM_NAMESPACE}");
    let dir = format!("--webhook-cert-dir={}", cert_dir(env, name).display());
    let mut args = vec![
        "--enable-webhook=true",
        port.as_str(),
        url.as_str(),
        namespace.as_str(),
        dir.as_str(),
    ];
    args.extend_from_slice(extra);
    Controller::start(name, kubeconfig, &args)
}

/// Stops the suite's controller, if one still runs, printing the tail of its log when the suite failed.
pub async fn stop_controller(
    controller: &mut Option<Controller>,
    failed: bool,
) -> anyhow::Result<()> {
    match controller.as_mut() {
        Some(controller) => {
            if failed {
                eprintln!("controller log (tail):\n{}", controller.tail(60));
            }
            controller.stop().await
        }
        None => Ok(()),
    }
}
