//! The router binary in front of a real sandbox on the local cluster's real node: the runtime image
//! under gVisor, the router as a host process with deploy/router's RBAC, requests over HTTP.

// Shared with the real_node suite, which uses all of it; this suite needs its Sandbox and pod helpers.
#[allow(dead_code)]
mod real_node_support;
mod router_support;

#[tokio::test]
async fn execute_through_the_router_and_refuse_the_rest() -> anyhow::Result<()> {
    real_node_support::run(
        "router",
        router_support::execute_through_the_router_and_refuse_the_rest,
    )
    .await
}
