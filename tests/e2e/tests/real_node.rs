//! Sandboxes, pools and claims on the local cluster's real node `node-0` (containerd, runc, gVisor,
//! a real kubelet, CNI networking, CoreDNS, hostPath PVs), driven by the real controller binary with
//! `--extensions`. Every other suite runs on kwok fakes; these prove the same objects make real
//! processes, hostnames, DNS names and storage. One test per scenario, one scenario at a time (each
//! starts its own controller), each in its own namespace.

mod real_node_support;

use real_node_support::{
    apiserver, claims, dns, exits, firewall, network_policy, run, runtime, storage,
};

#[tokio::test]
async fn gvisor_sandbox_runs_a_real_process() -> anyhow::Result<()> {
    run("runtime", runtime::gvisor_sandbox_runs_a_real_process).await
}

#[tokio::test]
async fn hostname_is_the_sandbox_name_and_service_fqdn_resolves() -> anyhow::Result<()> {
    run(
        "dns",
        dns::hostname_is_the_sandbox_name_and_service_fqdn_resolves,
    )
    .await
}

#[tokio::test]
async fn pvc_data_survives_suspend_and_resume() -> anyhow::Result<()> {
    run("suspend", storage::pvc_data_survives_suspend_and_resume).await
}

#[tokio::test]
async fn shutdown_delete_removes_pod_and_pvc() -> anyhow::Result<()> {
    run("shutdown", storage::shutdown_delete_removes_pod_and_pvc).await
}

#[tokio::test]
async fn claim_from_gvisor_warm_pool_runs_a_process() -> anyhow::Result<()> {
    run("claim", claims::claim_from_gvisor_warm_pool_runs_a_process).await
}

#[tokio::test]
async fn pod_exit_drives_sandbox_and_claim_conditions() -> anyhow::Result<()> {
    run("exits", exits::pod_exit_drives_sandbox_and_claim_conditions).await
}

#[tokio::test]
async fn pod_traffic_never_leaves_the_machine() -> anyhow::Result<()> {
    run("firewall", firewall::pod_traffic_never_leaves_the_machine).await
}

#[tokio::test]
async fn pods_reach_the_api_server_through_its_service() -> anyhow::Result<()> {
    run(
        "apiserver",
        apiserver::pods_reach_the_api_server_through_its_service,
    )
    .await
}

#[tokio::test]
async fn the_secure_default_isolates_a_sandbox() -> anyhow::Result<()> {
    run(
        "netpol-default",
        network_policy::the_secure_default_isolates_a_sandbox,
    )
    .await
}

#[tokio::test]
async fn a_custom_policy_allows_only_what_it_names() -> anyhow::Result<()> {
    run(
        "netpol-custom",
        network_policy::a_custom_policy_allows_only_what_it_names,
    )
    .await
}

#[tokio::test]
async fn an_unmanaged_template_gets_no_policy() -> anyhow::Result<()> {
    run(
        "netpol-unmanaged",
        network_policy::an_unmanaged_template_gets_no_policy,
    )
    .await
}
