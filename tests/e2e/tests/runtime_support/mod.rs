//! What the suites driving the in-sandbox runtime through our router share (the upstream Python
//! SDK's and our Rust client's): the python-runtime template as `deploy/local-cluster` renders it,
//! and the default install's router running in the cluster (what a port-forward connection
//! reaches: Service sandbox-router-svc in agent-sandbox-system).

use std::future::Future;

use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_testkit::{kubectl, workspace_root};
use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use tokio::process::Command;

/// The overlay whose python-runtime template the suites use: deploy/examples' template with the
/// locally imported runtime image.
const OVERLAY: &str = "deploy/local-cluster";
/// The template's name there.
pub const TEMPLATE: &str = "python-runtime";

/// The default install's router, made to run in the local cluster from the locally built image.
const IN_CLUSTER_ROUTER: &str = "deploy/local-cluster/router";
/// Where the SDKs look for Service sandbox-router-svc by default.
const ROUTER_NAMESPACE: &str = "agent-sandbox-system";
/// How long the router's Deployment may take to roll out (two runc pods on the real node).
const ROLLOUT_TIMEOUT: &str = "180s";

/// The SandboxTemplate `python-runtime` as `kubectl kustomize deploy/local-cluster` renders it.
pub async fn overlay_template() -> anyhow::Result<SandboxTemplate> {
    let output = Command::new(kubectl::binary())
        .arg("kustomize")
        .arg(workspace_root().join(OVERLAY))
        .output()
        .await
        .context("running kubectl kustomize")?;
    ensure!(
        output.status.success(),
        "kubectl kustomize {OVERLAY}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).context("kustomize output")?;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)?;
        if value["kind"].as_str() == Some("SandboxTemplate")
            && value["metadata"]["name"].as_str() == Some(TEMPLATE)
        {
            return serde_yaml::from_value(value).context("reading the python-runtime template");
        }
    }
    bail!("{OVERLAY} renders no SandboxTemplate {TEMPLATE}")
}

/// Runs `body` with the router Deployment of deploy/local-cluster/router rolled out (its
/// namespace, ServiceAccount and RBAC must be there already:
/// `router_support::router_kubeconfig` applies them from deploy/), then removes it; the router
/// pods' logs are printed when `body` failed.
pub async fn with_in_cluster_router(
    body: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let router = overlay_path(IN_CLUSTER_ROUTER);
    kubectl::ok(&["apply", "--kustomize", &router]).await?;
    let rolled_out = kubectl::ok(&[
        "rollout",
        "status",
        "deployment/sandbox-router",
        "--namespace",
        ROUTER_NAMESPACE,
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .context("the in-cluster router did not roll out");
    let result = match rolled_out {
        Ok(()) => body.await,
        Err(err) => Err(err),
    };
    if result.is_err() {
        print_in_cluster_router_logs().await;
    }
    let removed = kubectl::ok(&[
        "delete",
        "--kustomize",
        &router,
        "--ignore-not-found",
        "--wait",
    ])
    .await
    .context("removing the in-cluster router");
    result.and(removed)
}

/// The last lines of every in-cluster router pod's log, for a failed run.
async fn print_in_cluster_router_logs() {
    let args = [
        "logs",
        "--namespace",
        ROUTER_NAMESPACE,
        "--selector",
        "app=sandbox-router",
        "--prefix",
        "--tail",
        "40",
    ];
    match kubectl::output(&args).await {
        Ok(out) => eprintln!(
            "in-cluster router logs (tail):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => eprintln!("in-cluster router logs: {error:#}"),
    }
}

fn overlay_path(overlay: &str) -> String {
    workspace_root().join(overlay).display().to_string()
}
