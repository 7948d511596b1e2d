//! The template's managed NetworkPolicy: the secure default, a custom policy, switching to Unmanaged,
//! and a foreign policy of the reserved name, which is never overwritten.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::{TIMEOUT, create_template};

const POLICY: &str = "python-network-policy";

fn controlled_by(np: &NetworkPolicy, template: &SandboxTemplate) -> bool {
    np.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == template.metadata.uid.as_ref())
}

async fn wait_owned_policy(
    env: &TestEnv,
    template: &SandboxTemplate,
) -> anyhow::Result<NetworkPolicy> {
    wait_for_object(
        &env.api::<NetworkPolicy>(),
        POLICY,
        "the template's NetworkPolicy",
        TIMEOUT,
        |np: Option<&NetworkPolicy>| np.is_some_and(|np| controlled_by(np, template)),
    )
    .await
}

fn spec_json(np: &NetworkPolicy) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(
        np.spec.as_ref().context("policy spec")?,
    )?)
}

/// The secure default policy, exactly; the template's hash label is written once (a later pass,
/// here the one recreating a deleted policy, leaves the template's resourceVersion alone).
pub async fn secure_default(env: TestEnv) -> anyhow::Result<()> {
    let template = create_template(&env, "python", json!({})).await?;
    let np = wait_owned_policy(&env, &template).await?;
    let want = json!({
        "podSelector": {"matchLabels": {"agents.x-k8s.io/sandbox-template-ref-hash": name_hash("python")}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agent-sandbox-system"}},
            "podSelector": {"matchLabels": {"app": "sandbox-router"}}
        }]}],
        "egress": [{"to": [
            {"ipBlock": {"cidr": "0.0.0.0/0",
                "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                    "127.0.0.0/8"]}},
            {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10", "::1/128"]}}
        ]}]
    });
    ensure!(spec_json(&np)? == want, "policy spec {}", spec_json(&np)?);

    let labelled = wait_for_object(
        &env.api::<SandboxTemplate>(),
        "python",
        "the template's hash label",
        TIMEOUT,
        |t: Option<&SandboxTemplate>| t.is_some_and(|t| !t.labels().is_empty()),
    )
    .await?;
    env.api::<NetworkPolicy>()
        .delete(POLICY, &DeleteParams::default())
        .await?;
    let recreated = wait_for_object(
        &env.api::<NetworkPolicy>(),
        POLICY,
        "the deleted policy to be recreated",
        TIMEOUT,
        |p: Option<&NetworkPolicy>| p.is_some_and(|p| p.uid() != np.uid()),
    )
    .await?;
    ensure!(spec_json(&recreated)? == want, "recreated spec");
    let after = env.api::<SandboxTemplate>().get("python").await?;
    ensure!(
        after.resource_version() == labelled.resource_version(),
        "a pass rewrote the template: {:?} -> {:?}",
        labelled.resource_version(),
        after.resource_version()
    );
    Ok(())
}

/// A custom policy keeps the controller's selector and both policy types; an edit is applied.
pub async fn custom(env: TestEnv) -> anyhow::Result<()> {
    let rules = json!({"ingress": [{"ports": [{"port": 8888, "protocol": "TCP"}]}], "egress": []});
    let template = create_template(&env, "python", json!({"networkPolicy": rules})).await?;
    let np = wait_owned_policy(&env, &template).await?;
    let spec = spec_json(&np)?;
    ensure!(
        spec["podSelector"]
            == json!({"matchLabels": {"agents.x-k8s.io/sandbox-template-ref-hash": name_hash("python")}})
            && spec["policyTypes"] == json!(["Ingress", "Egress"])
            && spec["ingress"] == rules["ingress"]
            && spec.get("egress").is_none_or(|e| e == &json!([])),
        "custom policy {spec}"
    );
    env.patch_spec::<SandboxTemplate>(
        "python",
        json!({"networkPolicy": {"ingress": [], "egress": []}}),
    )
    .await?;
    wait_for_object(
        &env.api::<NetworkPolicy>(),
        POLICY,
        "the policy to deny all ingress",
        TIMEOUT,
        |p: Option<&NetworkPolicy>| {
            p.and_then(|p| p.spec.as_ref())
                .is_some_and(|s| s.ingress.as_ref().is_none_or(Vec::is_empty))
        },
    )
    .await?;
    Ok(())
}

/// Switching to Unmanaged deletes the policy the template controls.
pub async fn unmanaged(env: TestEnv) -> anyhow::Result<()> {
    let template = create_template(&env, "python", json!({})).await?;
    let np = wait_owned_policy(&env, &template).await?;
    env.patch_spec::<SandboxTemplate>("python", json!({"networkPolicyManagement": "Unmanaged"}))
        .await?;
    wait_deleted(&env.api::<NetworkPolicy>(), &np, TIMEOUT).await
}

/// A policy of the reserved name that the template does not control is reported and left alone;
/// once it is gone the template creates its own.
pub async fn foreign(env: TestEnv) -> anyhow::Result<()> {
    let foreign: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": POLICY},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))?;
    let policies = env.api::<NetworkPolicy>();
    let foreign = policies.create(&PostParams::default(), &foreign).await?;
    let template = create_template(&env, "python", json!({})).await?;
    wait_event(&env, "NetworkPolicyConflict", "python").await?;
    let now = policies.get(POLICY).await?;
    ensure!(
        now.resource_version() == foreign.resource_version() && !controlled_by(&now, &template),
        "the foreign policy was changed"
    );
    policies.delete(POLICY, &DeleteParams::default()).await?;
    wait_owned_policy(&env, &template).await?;
    Ok(())
}

/// Watches the namespace's Events until one with `reason` about `regarding` appears.
async fn wait_event(env: &TestEnv, reason: &str, regarding: &str) -> anyhow::Result<Event> {
    let events = watcher(env.api::<Event>(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut events = std::pin::pin!(events);
    let found = tokio::time::timeout(TIMEOUT, async {
        while let Some(event) = events.next().await {
            if let Ok(event) = event
                && event.reason.as_deref() == Some(reason)
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
            {
                return Some(event);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => Ok(event),
        _ => bail!(
            "no {reason} Event about {regarding} within {}s",
            TIMEOUT.as_secs()
        ),
    }
}
