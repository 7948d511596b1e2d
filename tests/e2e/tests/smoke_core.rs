//! Smoke tests of the local control plane itself: scheduling onto kwok nodes, pod lifecycle stages,
//! garbage collection, storage, service-account tokens.

use agent_sandbox_testkit::wait::{DEFAULT_TIMEOUT, wait_deleted, wait_for_object};
use agent_sandbox_testkit::{FINISH_ANNOTATION, TestEnv};
use anyhow::{Context, ensure};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

fn pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": { "containers": [{ "name": "main", "image": "registry.invalid/sleep:1" }] }
    }))?)
}

fn condition_true(pod: &Pod, kind: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn running_and_ready(pod: Option<&Pod>) -> bool {
    pod.is_some_and(|p| phase(p) == Some("Running") && condition_true(p, "Ready"))
}

async fn create_running_pod(env: &TestEnv, name: &str) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = env.api();
    pods.create(&PostParams::default(), &pod(name)?).await?;
    wait_for_object(
        &pods,
        name,
        "the pod to be Running and Ready",
        DEFAULT_TIMEOUT,
        running_and_ready,
    )
    .await
}

#[tokio::test]
async fn pod_is_scheduled_to_a_kwok_node_and_becomes_ready() -> anyhow::Result<()> {
    TestEnv::run("pod-ready", |env| async move {
        let pod = create_running_pod(&env, "web").await?;
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("pod has no node")?;
        ensure!(
            node.starts_with("kwok-node-"),
            "scheduled to {node}, not a kwok node"
        );
        ensure!(
            condition_true(&pod, "PodScheduled"),
            "PodScheduled is not True"
        );
        let status = pod.status.context("no status")?;
        ensure!(status.pod_ip.is_some(), "kwok gave the pod no IP");
        let ready = status.container_statuses.unwrap_or_default();
        ensure!(
            ready.len() == 1 && ready[0].ready,
            "container not ready: {ready:?}"
        );
        Ok(())
    })
    .await
}

async fn finish_pod(
    env: &TestEnv,
    name: &str,
    outcome: &str,
    exit_code: i32,
) -> anyhow::Result<()> {
    create_running_pod(env, name).await?;
    let pods: Api<Pod> = env.api();
    let patch = json!({ "metadata": { "annotations": { FINISH_ANNOTATION: outcome } } });
    pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let done = wait_for_object(
        &pods,
        name,
        &format!("the pod to reach {outcome}"),
        DEFAULT_TIMEOUT,
        |p: Option<&Pod>| p.is_some_and(|p| phase(p) == Some(outcome)),
    )
    .await?;
    let statuses = done
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    let code = statuses
        .first()
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    ensure!(
        code == Some(exit_code),
        "expected exit code {exit_code}, got {code:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_running_pod_can_be_driven_to_succeeded() -> anyhow::Result<()> {
    TestEnv::run("pod-succeeded", |env| async move {
        finish_pod(&env, "job", "Succeeded", 0).await
    })
    .await
}

#[tokio::test]
async fn a_running_pod_can_be_driven_to_failed() -> anyhow::Result<()> {
    TestEnv::run("pod-failed", |env| async move {
        finish_pod(&env, "job", "Failed", 1).await
    })
    .await
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() -> anyhow::Result<()> {
    TestEnv::run("gc", |env| async move {
        let cms: Api<ConfigMap> = env.api();
        let owner: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "owner" } }))?;
        let owner = cms.create(&PostParams::default(), &owner).await?;
        let uid = owner.uid().context("owner has no uid")?;
        let owner_ref =
            json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid }]);
        let mut dependents = Vec::new();
        for name in ["dependent-a", "dependent-b"] {
            let cm: ConfigMap = serde_json::from_value(
                json!({ "metadata": { "name": name, "ownerReferences": owner_ref } }),
            )?;
            dependents.push(cms.create(&PostParams::default(), &cm).await?);
        }
        let pods: Api<Pod> = env.api();
        let mut owned_pod = pod("dependent-pod")?;
        owned_pod.metadata.owner_references = Some(serde_json::from_value(owner_ref.clone())?);
        let owned_pod = pods.create(&PostParams::default(), &owned_pod).await?;

        cms.delete("owner", &DeleteParams::background()).await?;
        for dependent in &dependents {
            wait_deleted(&cms, dependent, DEFAULT_TIMEOUT).await?;
        }
        wait_deleted(&pods, &owned_pod, DEFAULT_TIMEOUT).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_claim_of_the_default_storage_class_is_bound() -> anyhow::Result<()> {
    TestEnv::run("pvc-bound", |env| async move {
        let pvcs: Api<PersistentVolumeClaim> = env.api();
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "data" },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": "1Gi" } }
            }
        }))?;
        pvcs.create(&PostParams::default(), &claim).await?;
        let bound = wait_for_object(
            &pvcs,
            "data",
            "the claim to be Bound",
            DEFAULT_TIMEOUT,
            |c: Option<&PersistentVolumeClaim>| {
                c.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.phase.as_deref())
                    == Some("Bound")
            },
        )
        .await?;
        let spec = bound.spec.context("claim has no spec")?;
        ensure!(
            spec.storage_class_name.as_deref() == Some("standard"),
            "class: {:?}",
            spec.storage_class_name
        );
        ensure!(spec.volume_name.is_some(), "bound claim names no volume");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_service_account_token_can_be_minted_and_used() -> anyhow::Result<()> {
    TestEnv::run("sa-token", |env| async move {
        let sas: Api<ServiceAccount> = env.api();
        let sa: ServiceAccount =
            serde_json::from_value(json!({ "metadata": { "name": "robot" } }))?;
        sas.create(&PostParams::default(), &sa).await?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let minted = sas
            .create_token_request("robot", &PostParams::default(), &request)
            .await?;
        let token = minted
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .context("TokenRequest returned no token")?;

        // A client that authenticates with the minted token only.
        let mut config = agent_sandbox_testkit::cluster::config().await?;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..kube::config::AuthInfo::default()
        };
        let robot = Client::try_from(config)?;
        let review = Api::<SelfSubjectReview>::all(robot)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .context("calling the API with the minted token")?;
        let user = review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username);
        let expected = format!("system:serviceaccount:{}:robot", env.namespace);
        ensure!(
            user.as_deref() == Some(expected.as_str()),
            "authenticated as {user:?}, expected {expected}"
        );
        Ok(())
    })
    .await
}
