//! A claim served from a warm pool of real gVisor Sandboxes runs code at once.

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool};
use agent_sandbox_testkit::wait::wait_for_object;
use agent_sandbox_testkit::{TestEnv, fixtures};
use anyhow::{Context, ensure};
use kube::ResourceExt;
use serde_json::json;

use super::{
    NODE, TIMEOUT, bound, claim_cond, create_pool, create_template, ensure_on_real_node, exec_ok,
    pair, pod_template, python_sleeper, sandbox_cond, sandbox_pod, wait_claim, wait_sandboxes,
};

/// Waits until the pool reports `n` Ready members.
pub async fn wait_pool_ready(env: &TestEnv, pool: &str, n: i32) -> anyhow::Result<()> {
    wait_for_object(
        &env.api::<SandboxWarmPool>(),
        pool,
        &format!("{n} Ready members"),
        TIMEOUT,
        move |p: Option<&SandboxWarmPool>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.ready_replicas == n && s.replicas == n)
        },
    )
    .await?;
    Ok(())
}

/// A template with runtime class gvisor and the python image, a pool of 2 filled with real Pods,
/// and a claim: the claim is Ready, bound to a warm member now controlled by the claim, whose Pod (on
/// the real node, under gVisor) runs `python3 -c 'print(6*7)'` and prints 42; the pool refills to 2
/// Ready members besides it.
pub async fn claim_from_gvisor_warm_pool_runs_a_process(env: TestEnv) -> anyhow::Result<()> {
    create_template(
        &env,
        "python-gvisor",
        pod_template("gvisor", json!([python_sleeper()]), json!({})),
    )
    .await?;
    create_pool(&env, "warm", "python-gvisor", 2).await?;
    wait_pool_ready(&env, "warm", 2).await?;

    let claim = env
        .create(&fixtures::claim("agent", "warm", json!({}))?)
        .await?;
    let ready = wait_claim(&env, "agent", "the claim to be Ready and bound", |c| {
        claim_cond(c, "Ready").is_some_and(|(s, _)| s == "True") && bound(c).is_some()
    })
    .await?;
    let name = bound(&ready).context("bound")?;
    let sandbox = env.api::<Sandbox>().get(&name).await?;
    ensure!(
        sandbox
            .labels()
            .get(labels::LAUNCH_TYPE)
            .map(String::as_str)
            == Some(labels::LAUNCH_TYPE_WARM),
        "{name} was not taken from the pool: labels {:?}",
        sandbox.labels()
    );
    let controller = sandbox
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone());
    ensure!(
        controller == claim.uid(),
        "{name} is controlled by {controller:?}, not by the claim"
    );
    let node = sandbox.status.as_ref().map(|s| s.node_name.as_str());
    ensure!(node == Some(NODE), "{name}: status.nodeName = {node:?}");
    ensure!(
        claim_cond(&ready, "Ready") == pair("True", "DependenciesReady"),
        "claim Ready {:?}",
        claim_cond(&ready, "Ready")
    );

    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "gvisor")?;
    let printed = exec_ok(&env, &pod.name_any(), &["python3", "-c", "print(6*7)"]).await?;
    ensure!(printed == "42", "python3 printed {printed:?}");

    // The pool replaces the member it lost with another real Pod.
    wait_sandboxes(
        &env,
        "the pool to have 2 Ready members besides the claimed one",
        |all| {
            all.iter()
                .filter(|s| {
                    s.metadata.deletion_timestamp.is_none()
                        && s.owner_references()
                            .iter()
                            .any(|r| r.controller == Some(true) && r.kind == "SandboxWarmPool")
                        && sandbox_cond(s, "Ready") == pair("True", "DependenciesReady")
                })
                .count()
                == 2
        },
    )
    .await?;
    Ok(())
}
