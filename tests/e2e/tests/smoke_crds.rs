//! Our CRDs against the real API server: they install, the example manifests are accepted, and invalid
//! objects are rejected with the schema's own message.

use std::path::PathBuf;

use agent_sandbox_testkit::{TestEnv, crds, workspace_root};
use anyhow::{Context, bail, ensure};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

const EXPECTED_CRDS: [&str; 4] = [
    "sandboxclaims.extensions.agents.x-k8s.io",
    "sandboxes.agents.x-k8s.io",
    "sandboxtemplates.extensions.agents.x-k8s.io",
    "sandboxwarmpools.extensions.agents.x-k8s.io",
];

/// A dynamic API for `apiVersion`/`kind` in the test namespace (or cluster-wide for cluster kinds).
async fn api_for(
    env: &TestEnv,
    api_version: &str,
    kind: &str,
) -> anyhow::Result<Api<DynamicObject>> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = pinned_kind(&env.client, &gvk)
        .await
        .with_context(|| format!("discovering {api_version} {kind}"))?;
    Ok(match caps.scope {
        Scope::Namespaced => Api::namespaced_with(env.client.clone(), &env.namespace, &resource),
        Scope::Cluster => Api::all_with(env.client.clone(), &resource),
    })
}

/// Sends a create; the outer error is a test setup failure, the inner one the API server's answer.
async fn create(
    env: &TestEnv,
    object: Value,
) -> anyhow::Result<Result<DynamicObject, kube::Error>> {
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let api = api_for(env, &api_version, &kind).await?;
    let object: DynamicObject =
        serde_json::from_value(object).context("not a Kubernetes object")?;
    Ok(api.create(&PostParams::default(), &object).await)
}

/// Asserts that the API server rejected a request as Invalid (422) with `needles` in its message.
fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
    needles: &[&str],
) -> anyhow::Result<()> {
    match result {
        Ok(obj) => bail!("the API server accepted an invalid object: {obj:?}"),
        Err(kube::Error::Api(status)) => {
            ensure!(
                status.code == 422,
                "expected 422 Invalid, got {}: {}",
                status.code,
                status.message
            );
            for needle in needles {
                ensure!(
                    status.message.contains(needle),
                    "message {:?} lacks {needle:?}",
                    status.message
                );
            }
            Ok(())
        }
        Err(other) => bail!("expected a 422 from the API server, got {other}"),
    }
}

fn sandbox_v1beta1(name: &str) -> Value {
    json!({
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": { "name": name },
        "spec": {
            "podTemplate": { "spec": { "containers": [{ "name": "agent", "image": "registry.invalid/agent:1" }] } }
        }
    })
}

fn example_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = workspace_root().join("deploy").join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // kustomization.yaml bundles the manifests (`kubectl apply -k`); it is not one itself.
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    ensure!(
        !files.is_empty(),
        "no example manifests in {}",
        dir.display()
    );
    Ok(files)
}

async fn install(client: &Client) -> anyhow::Result<()> {
    let installed = crds::ensure_installed(client).await?;
    let mut names: Vec<String> = installed.iter().map(ResourceExt::name_any).collect();
    names.sort();
    ensure!(
        names == EXPECTED_CRDS,
        "deploy/crds holds {names:?}, expected {EXPECTED_CRDS:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_crds_install_and_become_established() -> anyhow::Result<()> {
    TestEnv::run(
        "crds-install",
        |env| async move { install(&env.client).await },
    )
    .await
}

#[tokio::test]
async fn every_example_manifest_is_accepted() -> anyhow::Result<()> {
    TestEnv::run("crds-examples", |env| async move {
        install(&env.client).await?;
        for file in example_files()? {
            let text = std::fs::read_to_string(&file)?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = Value::deserialize(doc)?;
                if value.is_null() {
                    continue;
                }
                let created = create(&env, value)
                    .await?
                    .with_context(|| format!("the API server rejected {}", file.display()))?;
                ensure!(created.uid().is_some(), "{} was not stored", file.display());
            }
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unknown_enum_value_is_rejected() -> anyhow::Result<()> {
    TestEnv::run("crds-bad-enum", |env| async move {
        install(&env.client).await?;
        let mut sandbox = sandbox_v1beta1("bad-mode");
        sandbox["spec"]["operatingMode"] = json!("Sleeping");
        assert_rejected(
            create(&env, sandbox).await?,
            &["spec.operatingMode", "Unsupported value: \"Sleeping\""],
        )?;
        let claim = json!({
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
            "kind": "SandboxClaim",
            "metadata": { "name": "bad-policy" },
            "spec": { "warmPoolRef": { "name": "pool" }, "lifecycle": { "shutdownPolicy": "Shred" } }
        });
        assert_rejected(
            create(&env, claim).await?,
            &["spec.lifecycle.shutdownPolicy", "Unsupported value: \"Shred\""],
        )
    })
    .await
}

#[tokio::test]
async fn two_replicas_on_a_v1alpha1_sandbox_are_rejected() -> anyhow::Result<()> {
    TestEnv::run("crds-replicas", |env| async move {
        install(&env.client).await?;
        let mut sandbox = sandbox_v1beta1("two");
        sandbox["apiVersion"] = json!("agents.x-k8s.io/v1alpha1");
        sandbox["spec"]["replicas"] = json!(2);
        assert_rejected(
            create(&env, sandbox).await?,
            &["spec.replicas", "should be less than or equal to 1"],
        )
    })
    .await
}

#[tokio::test]
async fn volume_claim_templates_of_a_v1beta1_sandbox_are_immutable() -> anyhow::Result<()> {
    TestEnv::run("crds-immutable", |env| async move {
        install(&env.client).await?;
        let mut sandbox = sandbox_v1beta1("with-volume");
        sandbox["spec"]["volumeClaimTemplates"] = json!([{
            "metadata": { "name": "workspace" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
        }]);
        create(&env, sandbox).await?.context("creating a valid Sandbox with a volume")?;
        let api = api_for(&env, "agents.x-k8s.io/v1beta1", "Sandbox").await?;
        let change = json!({ "spec": { "volumeClaimTemplates": [{
            "metadata": { "name": "workspace" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "2Gi" } } }
        }] } });
        assert_rejected(
            api.patch("with-volume", &PatchParams::default(), &Patch::Merge(&change)).await,
            &["volumeClaimTemplates is immutable"],
        )?;
        let removal = json!({ "spec": { "volumeClaimTemplates": null } });
        assert_rejected(
            api.patch("with-volume", &PatchParams::default(), &Patch::Merge(&removal)).await,
            &["volumeClaimTemplates is immutable"],
        )
    })
    .await
}
