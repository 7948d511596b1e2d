//! Upstream's Python SDK (`k8s-agent-sandbox` 1.0.8 from PyPI, pinned in tests/sdk/requirements.txt,
//! unchanged) drives claims of a gVisor warm pool on the real node through our router and runtime:
//! the pytest suite in tests/sdk, one test per scenario there.

// Shared with the real_node and router suites, which use all of them; this one needs the controller
// scenario runner, the pool helpers and the router's kubeconfig.
#[allow(dead_code)]
mod real_node_support;
#[allow(dead_code)]
mod router_support;
mod runtime_support;
mod sdk_support;

#[tokio::test]
async fn upstream_python_sdk_through_the_router() -> anyhow::Result<()> {
    real_node_support::run("sdk", sdk_support::upstream_sdk_suite).await
}
