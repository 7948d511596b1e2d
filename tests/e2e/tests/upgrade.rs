//! The upgrade of an upstream 0.x install to upstream 1.0's shape (docs/upgrade.md), on the local
//! control plane: the migration install's CRDs storing v1alpha1 (as 0.x did before v1beta1 became the
//! storage version), the controller serving the conversion webhook, objects of all four kinds created
//! through v1alpha1 — a template, a warm pool, a running and a suspended (`replicas: 0`) Sandbox, a
//! claim bound to a warm Sandbox. Then `agent-sandbox-controller migrate-storage`: its dry run refuses
//! a claim it cannot carry over (naming it and the field) and changes nothing; once that is fixed it
//! reports the counts, `--apply` rewrites everything, and a second run has nothing to do. The default
//! CRDs then install, the controller restarts without a webhook, and every object is there, unchanged in
//! meaning and Ready where it was. etcd itself is read to prove at which version each object is stored.
//!
//! The CRDs are cluster-wide: the suite puts the default install's back at the end, whatever happened.

#[allow(dead_code)]
mod webhook_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_sandbox_testkit::controller::{self, Controller};
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use agent_sandbox_testkit::{TestEnv, crds, etcd};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use webhook_support::{
    TIMEOUT, api, eventually, free_port, object, pod_template, start_controller_with,
    stop_controller, wait_for_crds_pointing_at,
};

/// The four kinds: kind, and the `group/resource` etcd keys them under.
const KINDS: [(&str, &str); 4] = [
    ("Sandbox", "agents.x-k8s.io/sandboxes"),
    (
        "SandboxTemplate",
        "extensions.agents.x-k8s.io/sandboxtemplates",
    ),
    (
        "SandboxWarmPool",
        "extensions.agents.x-k8s.io/sandboxwarmpools",
    ),
    ("SandboxClaim", "extensions.agents.x-k8s.io/sandboxclaims"),
];

/// The migration install's CRDs with v1alpha1 as the storage version: an upstream 0.x install.
fn old_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut old = crds::load_from(crds::migration_crd_dir())?;
    for crd in &mut old {
        for version in &mut crd.spec.versions {
            version.storage = version.name == "v1alpha1";
        }
    }
    Ok(old)
}

/// Makes v1beta1 the storage version of every CRD, as installing the migration CRDs over 0.x's does
/// (a replace: the controller owns the conversion config, which an apply would fight over).
async fn store_v1beta1(env: &TestEnv) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in crds::load()? {
        let name = crd.name_any();
        let mut installed = api.get(&name).await?;
        for version in &mut installed.spec.versions {
            version.storage = version.name == "v1beta1";
        }
        api.replace(&name, &PostParams::default(), &installed)
            .await
            .with_context(|| format!("making v1beta1 the storage version of {name}"))?;
    }
    Ok(())
}

/// The group/resource of `kind` in etcd.
fn resource_of(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, resource)| resource)
}

/// The apiVersion etcd stores `kind` `name` of the test namespace with.
async fn stored(env: &TestEnv, kind: &str, name: &str) -> anyhow::Result<String> {
    etcd::stored_api_version(resource_of(kind), &env.namespace, name)
        .await?
        .with_context(|| format!("etcd has no {kind} {name}"))
}

/// Waits until `kind` `name` (read at v1beta1) satisfies `done`.
async fn wait_v1beta1(
    env: &TestEnv,
    kind: &str,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<DynamicObject> {
    let api = api(env, kind, "v1beta1");
    wait_for_object(
        &api,
        name,
        what,
        TIMEOUT,
        |object: Option<&DynamicObject>| {
            object.is_some_and(|o| done(&serde_json::to_value(o).unwrap_or_default()))
        },
    )
    .await
}

/// The `Ready` condition's status and reason.
fn ready(object: &Value) -> (String, String) {
    let condition = object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let field = |key: &str| {
        condition
            .and_then(|c| c[key].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (field("status"), field("reason"))
}

fn is_ready(object: &Value) -> bool {
    ready(object).0 == "True"
}

/// What an object means, read at v1beta1: its spec, its Ready condition, the Sandbox a claim holds.
#[derive(Debug, PartialEq)]
struct Meaning {
    spec: Value,
    ready: (String, String),
    bound: Value,
}

/// Every object of the four kinds in the test namespace, by `(kind, name)`.
async fn meanings(env: &TestEnv) -> anyhow::Result<BTreeMap<(String, String), Meaning>> {
    let mut all = BTreeMap::new();
    for (kind, _) in KINDS {
        for object in api(env, kind, "v1beta1")
            .list(&ListParams::default())
            .await?
        {
            let value = serde_json::to_value(&object)?;
            all.insert(
                (kind.to_owned(), object.name_any()),
                Meaning {
                    spec: value["spec"].clone(),
                    ready: ready(&value),
                    bound: value["status"]["sandbox"]["name"].clone(),
                },
            );
        }
    }
    Ok(all)
}

/// Runs `agent-sandbox-controller migrate-storage` with `args`; returns (succeeded, stdout, stderr).
async fn migrate(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = tokio::process::Command::new(controller::binary()?)
        .arg("migrate-storage")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .context("running migrate-storage")?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok((
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    ))
}

/// The count migrate-storage reports for `kind` in `namespace` (0 if it lists none).
fn reported(stdout: &str, kind: &str, namespace: &str) -> usize {
    stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [k, ns, count] if *k == kind && *ns == namespace => count.parse::<usize>().ok(),
                _ => None,
            }
        })
        .sum()
}

/// The controller's ServiceAccount with the RBAC of deploy/controller and deploy/migration (the
/// webhook's, and `agent-sandbox-migrate-storage` bound to it): the controller and the migration both run
/// as it, proving those roles cover every call.
async fn service_account(env: &TestEnv) -> anyhow::Result<PathBuf> {
    let kubeconfig = controller::install_service_account(
        &env.client,
        &[
            "controller/rbac.yaml",
            "controller/rbac-extensions.yaml",
            "migration/rbac-webhook.yaml",
            "migration/rbac-migrate-storage.yaml",
        ],
        "upgrade-sa",
    )
    .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "agent-sandbox-migrate-storage-e2e" },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "agent-sandbox-migrate-storage",
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": "agent-sandbox-controller",
            "namespace": controller::SYSTEM_NAMESPACE,
        }],
    }))?;
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .patch(
            "agent-sandbox-migrate-storage-e2e",
            &PatchParams::apply("agent-sandbox-e2e").force(),
            &Patch::Apply(&binding),
        )
        .await
        .context("binding agent-sandbox-migrate-storage to the controller's ServiceAccount")?;
    Ok(kubeconfig)
}

/// Step 1: the 0.x install with its objects, all stored at v1alpha1; returns the running controller.
async fn old_install(env: &TestEnv, kubeconfig: &Path) -> anyhow::Result<Controller> {
    crds::apply(&env.client, old_crds()?).await?;
    let port = free_port(&[])?;
    let url = format!("https://127.0.0.1:{port}/convert");
    let controller = start_controller_with(
        env,
        kubeconfig,
        "upgrade-webhook",
        port,
        &url,
        &["--extensions"],
    )?;
    wait_for_crds_pointing_at(env, &url).await?;
    let objects = [
        (
            "SandboxTemplate",
            "tmpl",
            json!({ "podTemplate": pod_template() }),
        ),
        (
            "SandboxWarmPool",
            "pool",
            json!({ "replicas": 1, "sandboxTemplateRef": { "name": "tmpl" } }),
        ),
        (
            "Sandbox",
            "running",
            json!({ "replicas": 1, "podTemplate": pod_template() }),
        ),
        (
            "Sandbox",
            "suspended",
            json!({ "replicas": 0, "podTemplate": pod_template() }),
        ),
    ];
    for (kind, name, spec) in objects {
        let created = object(kind, "v1alpha1", name, spec)?;
        // The first conversion may still reach the API server's previous view of the CRD: retry it.
        eventually(&format!("creating {kind} {name} as v1alpha1"), || {
            let (api, created) = (api(env, kind, "v1alpha1"), created.clone());
            async move { Ok(api.create(&PostParams::default(), &created).await?) }
        })
        .await?;
    }
    wait_v1beta1(
        env,
        "SandboxWarmPool",
        "pool",
        "the pool to be ready",
        |p| p["status"]["readyReplicas"] == 1,
    )
    .await?;
    let claims = [
        (
            "claim",
            json!({ "sandboxTemplateRef": { "name": "tmpl" }, "warmpool": "pool" }),
        ),
        // A 0.x claim without a warm pool: v1beta1 names the shadow pool 0.x's migration would make.
        (
            "orphan",
            json!({ "sandboxTemplateRef": { "name": "tmpl" }, "warmpool": "none" }),
        ),
    ];
    for (name, spec) in claims {
        api(env, "SandboxClaim", "v1alpha1")
            .create(
                &PostParams::default(),
                &object("SandboxClaim", "v1alpha1", name, spec)?,
            )
            .await
            .with_context(|| format!("creating claim {name} as v1alpha1"))?;
    }
    wait_v1beta1(
        env,
        "SandboxClaim",
        "claim",
        "the claim to be bound and Ready",
        |c| {
            is_ready(c)
                && c["status"]["sandbox"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("pool-"))
        },
    )
    .await?;
    wait_v1beta1(
        env,
        "Sandbox",
        "running",
        "Sandbox running to be Ready",
        is_ready,
    )
    .await?;
    wait_v1beta1(
        env,
        "Sandbox",
        "suspended",
        "Sandbox suspended to report it",
        |s| ready(s) == ("False".into(), "SandboxSuspended".into()),
    )
    .await?;
    // The pool refilled after the claim took its member.
    wait_v1beta1(env, "SandboxWarmPool", "pool", "the pool to refill", |p| {
        p["status"]["readyReplicas"] == 1
    })
    .await?;
    for (kind, name) in [("SandboxTemplate", "tmpl"), ("Sandbox", "suspended")] {
        let version = stored(env, kind, name).await?;
        ensure!(
            version.ends_with("/v1alpha1"),
            "{kind} {name} is stored as {version}, not v1alpha1"
        );
    }
    Ok(controller)
}

async fn scenario(env: &TestEnv, running: &mut Option<Controller>) -> anyhow::Result<()> {
    let account = service_account(env).await?;
    let old = running.insert(old_install(env, &account).await?);
    // Step 2: the migration install's CRDs (v1beta1 stored): storedVersions lists both.
    store_v1beta1(env).await?;

    // Step 3: the dry run refuses the claim it cannot carry over, naming it, and changes nothing.
    let (ok, stdout, stderr) = migrate(&account, &[]).await?;
    ensure!(
        !ok,
        "the dry run passed with a claim of a missing shadow pool:\n{stdout}"
    );
    let refusal = format!(
        "SandboxClaim {}/orphan: spec.warmPoolRef.name: names SandboxWarmPool shadow-pool-tmpl, \
         which does not exist",
        env.namespace
    );
    ensure!(
        stdout.contains(&refusal),
        "no refusal line {refusal:?} in:\n{stdout}"
    );
    ensure!(
        stderr.trim()
            == "error: refusing to migrate: 1 object(s) cannot be stored at v1beta1 \
         (listed above); nothing was changed",
        "stderr: {stderr}"
    );
    ensure!(
        stored(env, "Sandbox", "suspended")
            .await?
            .ends_with("/v1alpha1")
    );

    // What the message suggests: delete the claim (or create the pool).
    let claims = api(env, "SandboxClaim", "v1beta1");
    let orphan = claims.get("orphan").await?;
    claims.delete("orphan", &DeleteParams::default()).await?;
    wait_deleted(&claims, &orphan, TIMEOUT).await?;

    // Step 4: the dry run reports what it would rewrite, per kind and namespace, and changes nothing.
    let before = meanings(env).await?;
    let sandboxes = before.keys().filter(|(kind, _)| kind == "Sandbox").count();
    let (ok, stdout, stderr) = migrate(&account, &[]).await?;
    ensure!(ok, "the dry run failed: {stderr}\n{stdout}");
    for (kind, count) in [
        ("Sandbox", sandboxes),
        ("SandboxTemplate", 1),
        ("SandboxWarmPool", 1),
        ("SandboxClaim", 1),
    ] {
        let got = reported(&stdout, kind, &env.namespace);
        ensure!(
            got == count,
            "the dry run counts {got} {kind}, expected {count}:\n{stdout}"
        );
    }
    ensure!(stdout.contains("dry run"), "{stdout}");
    ensure!(
        stored(env, "Sandbox", "suspended")
            .await?
            .ends_with("/v1alpha1")
    );

    // Step 5: the migration; every object is then stored at v1beta1 and the CRDs are 1.0's.
    let (ok, stdout, stderr) = migrate(&account, &["--apply"]).await?;
    ensure!(ok, "the migration failed: {stderr}\n{stdout}");
    for (kind, name) in before.keys() {
        let version = stored(env, kind, name).await?;
        ensure!(
            version.ends_with("/v1beta1"),
            "{kind} {name} is still stored as {version}"
        );
    }
    let crd_api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in crds::load()? {
        let installed = crd_api.get(&crd.name_any()).await?;
        let versions: Vec<&str> = installed
            .spec
            .versions
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        let stored_versions = installed
            .status
            .as_ref()
            .and_then(|s| s.stored_versions.clone());
        let strategy = installed
            .spec
            .conversion
            .as_ref()
            .map(|c| c.strategy.as_str());
        ensure!(
            versions == ["v1beta1"]
                && stored_versions == Some(vec!["v1beta1".to_owned()])
                && strategy.is_none_or(|s| s == "None"),
            "{}: versions {versions:?}, storedVersions {stored_versions:?}, conversion {strategy:?}",
            crd.name_any()
        );
    }

    // Step 6: a second run has nothing to do.
    let (ok, stdout, stderr) = migrate(&account, &["--apply"]).await?;
    ensure!(
        ok && stdout.starts_with("nothing to do"),
        "second run: {stderr}\n{stdout}"
    );

    // Step 7: the default install, and the controller without a webhook.
    old.stop().await?;
    *running = None;
    crds::install(&env.client)
        .await
        .context("installing the default CRDs after the migration")?;
    *running = Some(Controller::start(
        "upgrade-after",
        &account,
        &["--extensions"],
    )?);
    wait_v1beta1(
        env,
        "SandboxClaim",
        "claim",
        "the claim to stay Ready",
        is_ready,
    )
    .await?;
    wait_v1beta1(
        env,
        "Sandbox",
        "running",
        "Sandbox running to stay Ready",
        is_ready,
    )
    .await?;
    let after = meanings(env).await?;
    for (key, meaning) in &before {
        let Some(now) = after.get(key) else {
            bail!("{key:?} is gone after the upgrade");
        };
        ensure!(
            now == meaning,
            "{key:?} changed: {meaning:?} became {now:?}"
        );
    }
    let suspended = &after[&("Sandbox".to_owned(), "suspended".to_owned())];
    ensure!(
        suspended.spec["operatingMode"] == "Suspended",
        "{suspended:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_0x_install_moves_to_v1beta1_only_losing_nothing() -> anyhow::Result<()> {
    TestEnv::run("upgrade", |env| async move {
        let mut controller = None;
        let result = scenario(&env, &mut controller).await;
        let stopped = stop_controller(&mut controller, result.is_err()).await;
        // Always: the default CRDs come back (after the controller, whose webhook they stop using).
        let restored = crds::restore_default(&env.client).await;
        match (result, stopped, restored) {
            (Err(error), _, _) => Err(error),
            (Ok(()), Err(error), _) => Err(error),
            (Ok(()), Ok(()), restored) => restored.context("restoring the default CRDs"),
        }
    })
    .await
}
