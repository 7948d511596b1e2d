//! Cold claims and the claim lifecycle.

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use agent_sandbox_testkit::wait::{wait_deleted, wait_for, wait_for_object};
use agent_sandbox_testkit::{TestEnv, kubectl};
use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    TIMEOUT, bound, controller_uid, create_claim, ready, template_and_pool, wait_claim_ready,
};

/// Whole seconds from now: the API server keeps `metav1.Time` at second precision.
fn in_seconds(seconds: i64) -> anyhow::Result<String> {
    Ok(Timestamp::from_second(Timestamp::now().as_second() + seconds)?.to_string())
}

/// Claims on a pool of 0 replicas start cold, with env and volumes; `kubectl get` shows them Ready
/// and bound.
pub async fn cold_claims(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(
        &env,
        json!({"envVarsInjectionPolicy": "Allowed", "volumeClaimTemplatesPolicy": "Allowed"}),
        "empty",
        0,
    )
    .await?;
    let started = std::time::Instant::now();
    create_claim(&env, "plain", "empty", json!({})).await?;
    create_claim(
        &env,
        "with-env",
        "empty",
        json!({"env": [{"name": "GREETING", "value": "hi"}]}),
    )
    .await?;
    create_claim(
        &env,
        "with-volume",
        "empty",
        json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
    )
    .await?;
    let sandboxes: Api<Sandbox> = env.api();
    for name in ["plain", "with-env", "with-volume"] {
        let claim = wait_claim_ready(&env, name).await?;
        ensure!(
            bound(&claim).as_deref() == Some(name),
            "{name} bound to {:?}",
            bound(&claim)
        );
        let sandbox = sandboxes.get(name).await?;
        ensure!(
            controller_uid(&sandbox) == claim.uid(),
            "{name}: the claim controls its Sandbox"
        );
        ensure!(
            sandbox
                .labels()
                .get("agents.x-k8s.io/launch-type")
                .map(String::as_str)
                == Some("cold"),
            "{name}: launch type"
        );
    }
    eprintln!(
        "[claims] 3 cold claims Ready in {} ms",
        started.elapsed().as_millis()
    );
    let pod = env.api::<Pod>().get("with-env").await?;
    let vars = pod
        .spec
        .as_ref()
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    ensure!(
        vars.iter()
            .any(|v| v.name == "GREETING" && v.value.as_deref() == Some("hi")),
        "env injected: {vars:?}"
    );
    env.api::<PersistentVolumeClaim>()
        .get("data-with-volume")
        .await
        .context("the claim's volume")?;
    let output = kubectl::output(&["get", "sandboxclaim", "plain", "-n", &env.namespace]).await?;
    let table = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = table.lines().nth(1).unwrap_or_default();
    ensure!(
        row.contains("True") && row.split_whitespace().any(|c| c == "plain"),
        "{table}"
    );
    Ok(())
}

/// A cold claim from a template with a Service: its status carries the Sandbox's Service FQDN, and
/// its Pod the claim's UID (label `agents.x-k8s.io/claim-uid`).
pub async fn service_fqdn_and_claim_uid_reach_the_claim_and_pod(
    env: TestEnv,
) -> anyhow::Result<()> {
    template_and_pool(&env, json!({"service": true}), "empty", 0).await?;
    create_claim(&env, "svc", "empty", json!({})).await?;
    let fqdn = format!("svc.{}.svc.cluster.local", env.namespace);
    let claim = wait_for_object(
        &env.api::<SandboxClaim>(),
        "svc",
        "the claim to be Ready with the Service FQDN",
        TIMEOUT,
        |c: Option<&SandboxClaim>| {
            c.and_then(|c| c.status.as_ref())
                .is_some_and(|s| s.sandbox.service_fqdn == fqdn)
                && c.and_then(ready).is_some_and(|(s, _)| s == "True")
        },
    )
    .await?;
    let pod = env.api::<Pod>().get("svc").await?;
    ensure!(
        pod.labels().get("agents.x-k8s.io/claim-uid") == claim.uid().as_ref(),
        "claim-uid on the Pod: {:?}",
        pod.labels()
    );
    Ok(())
}

/// A claim whose Sandbox cannot have its Service (the claim's name, which the Sandbox and Service
/// take, is 64 characters): the claim reports Ready=False/InvalidConfiguration and no Pod is made.
pub async fn invalid_configuration_reaches_the_claim(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(&env, json!({"service": true}), "empty", 0).await?;
    let name = "c".repeat(64);
    create_claim(&env, &name, "empty", json!({})).await?;
    wait_for_object(
        &env.api::<SandboxClaim>(),
        &name,
        "Ready=False/InvalidConfiguration",
        TIMEOUT,
        |c: Option<&SandboxClaim>| {
            c.and_then(ready) == Some(("False".into(), "InvalidConfiguration".into()))
        },
    )
    .await?;
    ensure!(
        env.api::<Pod>().get_opt(&name).await?.is_none(),
        "no Pod for an invalid configuration"
    );
    Ok(())
}

async fn finish_pod(env: &TestEnv, name: &str) -> anyhow::Result<()> {
    let finish = json!({"metadata": {"annotations": {agent_sandbox_testkit::FINISH_ANNOTATION: "Succeeded"}}});
    env.api::<Pod>()
        .patch(name, &PatchParams::default(), &Patch::Merge(finish))
        .await?;
    Ok(())
}

async fn wait_expired(env: &TestEnv, name: &str) -> anyhow::Result<SandboxClaim> {
    wait_for_object(
        &env.api::<SandboxClaim>(),
        name,
        "Ready=False/ClaimExpired",
        TIMEOUT,
        |c: Option<&SandboxClaim>| {
            c.and_then(ready) == Some(("False".into(), "ClaimExpired".into()))
        },
    )
    .await
}

/// `ttlSecondsAfterFinished` counts from the Pod finishing and wins over a later shutdownTime;
/// Retain (the default) deletes the Sandbox and keeps the claim.
pub async fn ttl_after_the_pod_finishes(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(&env, json!({}), "empty", 0).await?;
    create_claim(
        &env,
        "short",
        "empty",
        json!({"lifecycle": {"ttlSecondsAfterFinished": 1, "shutdownTime": in_seconds(3600)?}}),
    )
    .await?;
    wait_claim_ready(&env, "short").await?;
    let sandbox = env.api::<Sandbox>().get("short").await?;
    finish_pod(&env, "short").await?;
    let claim = wait_expired(&env, "short").await?;
    ensure!(
        finished(&claim),
        "the Finished condition is mirrored and kept"
    );
    wait_deleted(&env.api::<Sandbox>(), &sandbox, TIMEOUT).await?;
    ensure!(
        env.api::<SandboxClaim>().get_opt("short").await?.is_some(),
        "Retain keeps the claim"
    );
    Ok(())
}

fn finished(claim: &SandboxClaim) -> bool {
    claim.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Finished" && c.status == "True")
    })
}

/// A shutdownTime earlier than the TTL deadline ends the claim first. The shutdownTime is set once
/// the claim is Ready and its Pod finished, so the test does not race the cold start.
pub async fn earlier_of_ttl_and_shutdown_time_wins(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(&env, json!({}), "empty", 0).await?;
    create_claim(
        &env,
        "soon",
        "empty",
        json!({"lifecycle": {"ttlSecondsAfterFinished": 3600, "shutdownPolicy": "Retain"}}),
    )
    .await?;
    wait_claim_ready(&env, "soon").await?;
    let sandbox = env.api::<Sandbox>().get("soon").await?;
    finish_pod(&env, "soon").await?;
    wait_for_object(
        &env.api::<SandboxClaim>(),
        "soon",
        "the Finished condition mirrored on the claim",
        TIMEOUT,
        |c: Option<&SandboxClaim>| c.is_some_and(finished),
    )
    .await?;
    let shutdown = in_seconds(2)?;
    set_lifecycle(&env, "soon", json!({"shutdownTime": shutdown})).await?;
    wait_expired(&env, "soon").await?;
    ensure!(
        Timestamp::now() >= shutdown.parse::<Timestamp>()?,
        "never before shutdownTime"
    );
    wait_deleted(&env.api::<Sandbox>(), &sandbox, TIMEOUT).await?;
    Ok(())
}

async fn set_lifecycle(
    env: &TestEnv,
    name: &str,
    lifecycle: serde_json::Value,
) -> anyhow::Result<()> {
    env.api::<SandboxClaim>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"lifecycle": lifecycle}})),
        )
        .await
        .with_context(|| format!("setting the lifecycle of claim {name}"))?;
    Ok(())
}

/// DeleteForeground removes the claim after its Sandbox and Pod are gone.
pub async fn delete_foreground(env: TestEnv) -> anyhow::Result<()> {
    template_and_pool(&env, json!({}), "empty", 0).await?;
    create_claim(&env, "fg", "empty", json!({})).await?;
    let claim = wait_claim_ready(&env, "fg").await?;
    // Expire it only now: a shutdownTime set at creation would race the cold start.
    set_lifecycle(
        &env,
        "fg",
        json!({"shutdownTime": in_seconds(0)?, "shutdownPolicy": "DeleteForeground"}),
    )
    .await?;
    wait_for(
        &env.api::<SandboxClaim>(),
        "fg",
        "the claim to be deleted",
        TIMEOUT,
        kube::runtime::wait::conditions::is_deleted(&claim.uid().unwrap_or_default()),
    )
    .await?;
    ensure!(
        env.api::<Sandbox>().get_opt("fg").await?.is_none(),
        "Sandbox gone first"
    );
    ensure!(
        env.api::<Pod>().get_opt("fg").await?.is_none(),
        "Pod gone first"
    );
    Ok(())
}
