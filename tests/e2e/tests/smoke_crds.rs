//! Our CRDs against the real API server: the default install is upstream 1.0's (v1beta1 only, no
//! webhook), every example manifest applies with `kubectl apply` (client- and server-side), and invalid
//! objects are rejected with the schema's own message.

use std::path::PathBuf;

use agent_sandbox_testkit::{TestEnv, crds, kubectl, workspace_root};
use anyhow::{Context, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
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

async fn install(client: &Client) -> anyhow::Result<&'static [CustomResourceDefinition]> {
    let installed = crds::ensure_installed(client).await?;
    let mut names: Vec<String> = installed.iter().map(ResourceExt::name_any).collect();
    names.sort();
    ensure!(
        names == EXPECTED_CRDS,
        "deploy/crds holds {names:?}, expected {EXPECTED_CRDS:?}"
    );
    Ok(installed)
}

#[tokio::test]
async fn the_crds_install_and_become_established() -> anyhow::Result<()> {
    TestEnv::run("crds-install", |env| async move {
        install(&env.client).await.map(drop)
    })
    .await
}

/// `kubectl apply` (with `extra` flags) of every example manifest into the test namespace succeeds, and
/// each object is then stored.
async fn examples_apply(env: &TestEnv, extra: &[&str]) -> anyhow::Result<()> {
    install(&env.client).await?;
    for file in example_files()? {
        let path = file.to_string_lossy().into_owned();
        let mut args = vec!["apply", "-n", env.namespace.as_str(), "-f", path.as_str()];
        args.extend_from_slice(extra);
        let output = kubectl::output(&args).await?;
        ensure!(
            output.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            let api = api_for(
                env,
                value["apiVersion"].as_str().unwrap_or_default(),
                value["kind"].as_str().unwrap_or_default(),
            )
            .await?;
            let name = value["metadata"]["name"].as_str().unwrap_or_default();
            api.get(name)
                .await
                .with_context(|| format!("{} applied but {name} is not stored", file.display()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_example_manifest_applies_client_side() -> anyhow::Result<()> {
    TestEnv::run("crds-examples-csa", |env| async move {
        examples_apply(&env, &[]).await
    })
    .await
}

#[tokio::test]
async fn every_example_manifest_applies_server_side() -> anyhow::Result<()> {
    TestEnv::run("crds-examples-ssa", |env| async move {
        examples_apply(&env, &["--server-side"]).await
    })
    .await
}

/// The default install's CRDs, as the API server has them: v1beta1 alone, no conversion webhook; a
/// v1alpha1 request finds nothing.
#[tokio::test]
async fn the_default_install_serves_only_v1beta1_without_a_webhook() -> anyhow::Result<()> {
    TestEnv::run("crds-v1beta1-only", |env| async move {
        for crd in install(&env.client).await? {
            let versions: Vec<(&str, bool, bool)> = crd
                .spec
                .versions
                .iter()
                .map(|v| (v.name.as_str(), v.served, v.storage))
                .collect();
            ensure!(
                versions == [("v1beta1", true, true)],
                "{} has versions {versions:?}",
                crd.name_any()
            );
            let strategy = crd.spec.conversion.as_ref().map(|c| c.strategy.as_str());
            ensure!(
                strategy.is_none_or(|s| s == "None"),
                "{} converts by {strategy:?}",
                crd.name_any()
            );
        }
        let mut sandbox = sandbox_v1beta1("old");
        sandbox["apiVersion"] = json!("agents.x-k8s.io/v1alpha1");
        match create(&env, sandbox).await {
            Err(error) => ensure!(
                format!("{error:#}").contains("agents.x-k8s.io/v1alpha1"),
                "unexpected error: {error:#}"
            ),
            Ok(created) => bail!("v1alpha1 is served: {created:?}"),
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

/// The objects `kubectl kustomize deploy/<dir>` renders (what `kubectl apply -k` would create).
async fn rendered(dir: &str) -> anyhow::Result<Vec<Value>> {
    let path = workspace_root().join("deploy").join(dir);
    let output = kubectl::output(&["kustomize", &path.to_string_lossy()]).await?;
    ensure!(
        output.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// `kind/name` of every object.
fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The served versions and conversion strategy of every CRD among `objects`.
fn crd_shapes(objects: &[Value]) -> Vec<(Vec<String>, String)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|crd| {
            let versions = crd["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["served"] == true)
                .filter_map(|v| v["name"].as_str().map(str::to_owned))
                .collect();
            let strategy = crd["spec"]["conversion"]["strategy"]
                .as_str()
                .unwrap_or("None");
            (versions, strategy.to_owned())
        })
        .collect()
}

/// The controller Deployment's container args.
fn controller_args(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "agent-sandbox-controller")
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_default_install_has_no_webhook_and_only_v1beta1_crds() -> anyhow::Result<()> {
    let objects = rendered(".").await?;
    let webhook: Vec<String> = names(&objects)
        .into_iter()
        .filter(|name| name.contains("webhook"))
        .collect();
    ensure!(
        webhook.is_empty(),
        "the default install creates {webhook:?}"
    );
    let text = serde_json::to_string(&objects)?;
    ensure!(
        !text.contains("9443"),
        "the default install mentions port 9443"
    );
    let shapes = crd_shapes(&objects);
    ensure!(
        shapes.len() == 4 && shapes.iter().all(|(v, s)| v == &["v1beta1"] && s == "None"),
        "the default CRDs: {shapes:?}"
    );
    let args = controller_args(&objects);
    ensure!(
        !args
            .iter()
            .any(|a| a.starts_with("--enable-webhook") || a.starts_with("--webhook")),
        "the controller is started with {args:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_migration_install_adds_v1alpha1_and_the_webhook() -> anyhow::Result<()> {
    let objects = rendered("migration").await?;
    let names = names(&objects);
    for wanted in [
        "Service/agent-sandbox-webhook-service",
        "ClusterRole/agent-sandbox-controller-webhook",
        "Role/agent-sandbox-controller-webhook-certs",
        "ClusterRole/agent-sandbox-migrate-storage",
        "Service/sandbox-router-svc",
    ] {
        ensure!(
            names.iter().any(|n| n == wanted),
            "no {wanted} in {names:?}"
        );
    }
    let shapes = crd_shapes(&objects);
    ensure!(
        shapes.len() == 4
            && shapes
                .iter()
                .all(|(v, s)| v == &["v1beta1", "v1alpha1"] && s == "Webhook"),
        "the migration CRDs: {shapes:?}"
    );
    ensure!(
        controller_args(&objects).contains(&"--enable-webhook=true".to_owned()),
        "the controller does not serve the webhook"
    );
    Ok(())
}

/// What deploy/local-cluster/local-images changes in every Deployment: the image, the pull policy
/// and the RuntimeClass. Removed from a rendered object, it leaves what `kubectl apply -k deploy/`
/// applies.
fn without_local_changes(mut object: Value) -> Value {
    if object["kind"] == "Deployment" {
        let spec = &mut object["spec"]["template"]["spec"];
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("runtimeClassName");
        }
        if let Some(container) = spec["containers"][0].as_object_mut() {
            container.remove("image");
            container.remove("imagePullPolicy");
        }
    }
    object
}

#[tokio::test]
async fn the_local_cluster_install_is_the_default_install_with_local_images() -> anyhow::Result<()>
{
    let default: Vec<Value> = rendered(".")
        .await?
        .into_iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .map(without_local_changes)
        .collect();
    let local = rendered("local-cluster/install").await?;
    for deployment in local.iter().filter(|o| o["kind"] == "Deployment") {
        let spec = &deployment["spec"]["template"]["spec"];
        let image = spec["containers"][0]["image"].as_str().unwrap_or_default();
        ensure!(
            image.starts_with("localhost/agent-sandbox/")
                && spec["containers"][0]["imagePullPolicy"] == "Never"
                && spec["runtimeClassName"] == "runc",
            "Deployment {} of the local install: image {image:?}, pull policy {}, RuntimeClass {}",
            deployment["metadata"]["name"],
            spec["containers"][0]["imagePullPolicy"],
            spec["runtimeClassName"]
        );
    }
    let local: Vec<Value> = local.into_iter().map(without_local_changes).collect();
    ensure!(
        names(&local) == names(&default),
        "the local install makes {:?}, the default install {:?}",
        names(&local),
        names(&default)
    );
    for (ours, theirs) in local.iter().zip(&default) {
        ensure!(
            ours == theirs,
            "{} differs from the default install's beyond the image, pull policy and RuntimeClass",
            names(std::slice::from_ref(ours)).join("")
        );
    }
    Ok(())
}
