//! Warm claims: adoption from filled pools, and many claims racing for few warm Sandboxes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxWarmPool};
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use super::{
    TIMEOUT, bound, controller_uid, create_claim, ready, template_and_pool, wait_claim_ready,
};

/// How long a pool of 50 may take to fill on a loaded machine.
const FILL_TIMEOUT: Duration = Duration::from_secs(240);

async fn wait_pool_ready(env: &TestEnv, pool: &str, replicas: i32) -> anyhow::Result<()> {
    wait_for_object(
        &env.api::<SandboxWarmPool>(),
        pool,
        "the pool to be full and Ready",
        FILL_TIMEOUT,
        move |p: Option<&SandboxWarmPool>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.ready_replicas >= replicas)
        },
    )
    .await
    .map(|_| ())
}

/// `claims` claims against a filled pool of `replicas`: all Ready, each bound to its own Sandbox,
/// warm ones carrying the pod-name annotation by the time the claim is Ready.
pub async fn claims_against_a_pool(
    env: TestEnv,
    replicas: i32,
    claims: usize,
) -> anyhow::Result<()> {
    template_and_pool(&env, json!({}), "pool", replicas).await?;
    wait_pool_ready(&env, "pool", replicas).await?;
    let started = Instant::now();
    let names: Vec<String> = (0..claims).map(|i| format!("c{i}")).collect();
    futures::future::try_join_all(
        names
            .iter()
            .map(|n| create_claim(&env, n, "pool", json!({}))),
    )
    .await?;
    let ready_claims =
        futures::future::try_join_all(names.iter().map(|n| wait_claim_ready(&env, n))).await?;
    eprintln!(
        "[claims] {claims} claims on a pool of {replicas} Ready in {} ms",
        started.elapsed().as_millis()
    );
    let sandboxes: Api<Sandbox> = env.api();
    let mut seen = BTreeSet::new();
    let mut warm = 0;
    for claim in &ready_claims {
        let name = bound(claim).context("bound")?;
        ensure!(seen.insert(name.clone()), "{name} bound twice");
        let sandbox = sandboxes.get(&name).await?;
        ensure!(
            controller_uid(&sandbox) == claim.uid(),
            "{name} is controlled by its claim"
        );
        if sandbox
            .labels()
            .get("agents.x-k8s.io/launch-type")
            .map(String::as_str)
            == Some("warm")
        {
            warm += 1;
            ensure!(
                !sandbox
                    .annotations()
                    .contains_key("agents.x-k8s.io/pod-name"),
                "{name}: no pod-name annotation written on adoption"
            );
            // The warm Pod, named like its Sandbox, gets the claim's UID once adopted.
            let uid = claim.uid();
            wait_for_object(
                &env.api::<Pod>(),
                &name,
                "the claim-uid label on the adopted Pod",
                TIMEOUT,
                |p: Option<&Pod>| {
                    p.is_some_and(|p| p.labels().get("agents.x-k8s.io/claim-uid") == uid.as_ref())
                },
            )
            .await?;
        }
    }
    ensure!(
        warm >= claims.min(replicas as usize).min(1),
        "at least one claim was served warm ({warm})"
    );
    Ok(())
}

/// 200 claims at once against a pool of 50: each ends bound to exactly one Sandbox, no Sandbox is
/// bound twice, and after deleting every claim only the pool's members remain.
pub async fn two_hundred_claims_race_for_fifty(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(&env, json!({}), "pool", 50).await?;
    wait_pool_ready(&env, "pool", 50).await?;
    let names: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    let started = Instant::now();
    futures::future::try_join_all(
        names
            .iter()
            .map(|n| create_claim(&env, n, "pool", json!({}))),
    )
    .await?;
    let claims =
        futures::future::try_join_all(names.iter().map(|n| wait_claim_ready(&env, n))).await?;
    eprintln!(
        "[claims] 200 claims racing for 50 Ready in {} ms",
        started.elapsed().as_millis()
    );
    let sandboxes: Api<Sandbox> = env.api();
    let mut seen = BTreeSet::new();
    let mut bound_sandboxes = Vec::new();
    let all = sandboxes.list(&ListParams::default()).await?.items;
    for claim in &claims {
        let name = bound(claim).context("bound")?;
        ensure!(seen.insert(name.clone()), "{name} bound twice");
        ensure!(ready(claim).is_some_and(|(s, _)| s == "True"));
        let owned: Vec<&Sandbox> = all
            .iter()
            .filter(|s| controller_uid(s) == claim.uid())
            .collect();
        ensure!(
            owned.len() == 1,
            "{} owns {} Sandboxes",
            claim.name_any(),
            owned.len()
        );
        bound_sandboxes.extend(owned.into_iter().cloned());
    }
    env.api::<SandboxClaim>()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    // Garbage collection removes every claimed Sandbox (watched, one by one)...
    for sandbox in &bound_sandboxes {
        wait_deleted(&sandboxes, sandbox, TIMEOUT).await?;
    }
    // ...and leaves only the pool's members.
    let strays: Vec<String> = sandboxes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|s| {
            !s.owner_references()
                .iter()
                .any(|r| r.kind == "SandboxWarmPool")
        })
        .map(ResourceExt::name_any)
        .collect();
    ensure!(strays.is_empty(), "Sandboxes left: {strays:?}");
    let pods = env.api::<Pod>().list(&ListParams::default()).await?.items;
    let stray_pods: Vec<String> = pods
        .iter()
        .filter(|p| !p.labels().contains_key("agents.x-k8s.io/warm-pool-sandbox"))
        .map(ResourceExt::name_any)
        .collect();
    ensure!(
        stray_pods.is_empty(),
        "Pods left that belong to no pool member: {stray_pods:?}"
    );
    let pvcs = env
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .items;
    ensure!(pvcs.is_empty(), "PVCs left: {}", pvcs.len());
    Ok(())
}
