//! The migration install (deploy/migration): both versions served through the controller's own
//! conversion webhook, on the local control plane.
//!
//! The API server runs on this host and cannot resolve a Service, so the controller runs in local mode
//! (`--enable-webhook=true --webhook-url https://127.0.0.1:<port>/convert`) as its own ServiceAccount with
//! the RBAC of deploy/controller and deploy/migration, generates its certificates into the Secret in
//! `agent-sandbox-system` and points the four CRDs at itself. The CRDs are cluster-wide: the suite puts
//! the default install's back at the end, whatever happened, as every other suite expects.
//!
//! Covered: each kind created as v1alpha1 reads as v1beta1 and back; `replicas: 0` is Suspended and
//! `kubectl scale --replicas=1` through v1alpha1 resumes it; a claim of a specific pool gets `warmPoolRef`;
//! kubectl shows the deprecation warning; a restarted controller reuses the Secret's CA; two replicas
//! started at once share one Secret.

mod webhook_support;

use std::path::{Path, PathBuf};

use agent_sandbox_testkit::controller::{Controller, install_service_account};
use agent_sandbox_testkit::wait::wait_deleted;
use agent_sandbox_testkit::{TestEnv, crds, kubectl};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use webhook_support::{
    CRDS, SECRET, STARTED, SYSTEM_NAMESPACE, TIMEOUT, api, cert_dir, eventually, free_port, object,
    pod_template, start_controller, start_controller_with, stop_controller,
    wait_for_crds_pointing_at, wait_logged,
};

async fn secret_ca(env: &TestEnv) -> anyhow::Result<(Vec<u8>, String)> {
    let secret = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NAMESPACE)
        .get(SECRET)
        .await
        .context("reading the webhook certificate Secret")?;
    let ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .map(|b| b.0.clone())
        .context("the Secret has no ca.crt")?;
    Ok((ca, secret.resource_version().unwrap_or_default()))
}

/// Creates `created` as v1alpha1, then returns it read as v1beta1 and read back as v1alpha1.
async fn through_both_versions(
    env: &TestEnv,
    created: DynamicObject,
) -> anyhow::Result<(DynamicObject, DynamicObject)> {
    let kind = created
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    let name = created.name_any();
    let alpha = api(env, &kind, "v1alpha1");
    alpha
        .create(&PostParams::default(), &created)
        .await
        .with_context(|| format!("creating {kind} {name} as v1alpha1"))?;
    let beta = api(env, &kind, "v1beta1")
        .get(&name)
        .await
        .with_context(|| format!("reading {kind} {name} as v1beta1"))?;
    let back = alpha
        .get(&name)
        .await
        .with_context(|| format!("reading {kind} {name} back as v1alpha1"))?;
    Ok((beta, back))
}

async fn every_kind_reads_in_both_versions(env: &TestEnv) -> anyhow::Result<()> {
    // The first conversion may still reach the API server's previous view of the CRD: retry it.
    let sandbox = object(
        "Sandbox",
        "v1alpha1",
        "suspended",
        json!({ "replicas": 0, "podTemplate": pod_template() }),
    )?;
    let (beta, back) = eventually("creating the first v1alpha1 object", || {
        let sandbox = sandbox.clone();
        async move { through_both_versions(env, sandbox).await }
    })
    .await?;
    ensure!(
        beta.data["spec"]["operatingMode"] == "Suspended",
        "replicas 0 reads as {beta:?}"
    );
    ensure!(beta.data["spec"]["podTemplate"] == pod_template());
    ensure!(
        back.data["spec"]["replicas"] == 0,
        "v1alpha1 read back: {back:?}"
    );

    let template = json!({ "podTemplate": pod_template() });
    let (beta, back) = through_both_versions(
        env,
        object("SandboxTemplate", "v1alpha1", "tmpl", template)?,
    )
    .await?;
    ensure!(
        beta.data["spec"]["podTemplate"] == pod_template(),
        "{beta:?}"
    );
    // The schema defaults the rest of the spec, and the v1beta1-only volumeClaimTemplatesPolicy
    // travels in an annotation.
    ensure!(
        back.data["spec"]["podTemplate"] == pod_template(),
        "{back:?}"
    );

    let pool = json!({ "replicas": 2, "sandboxTemplateRef": { "name": "tmpl" } });
    let (beta, back) = through_both_versions(
        env,
        object("SandboxWarmPool", "v1alpha1", "fast-pool", pool.clone())?,
    )
    .await?;
    ensure!(beta.data["spec"]["replicas"] == 2, "{beta:?}");
    ensure!(
        beta.data["spec"]["sandboxTemplateRef"]["name"] == "tmpl",
        "{beta:?}"
    );
    ensure!(back.data["spec"]["replicas"] == 2, "{back:?}");

    let claim = json!({ "sandboxTemplateRef": { "name": "tmpl" }, "warmpool": "fast-pool" });
    let (beta, back) = through_both_versions(
        env,
        object("SandboxClaim", "v1alpha1", "claim", claim.clone())?,
    )
    .await?;
    ensure!(
        beta.data["spec"]["warmPoolRef"]["name"] == "fast-pool",
        "a claim of a specific pool maps to warmPoolRef: {beta:?}"
    );
    ensure!(back.data["spec"]["warmpool"] == "fast-pool", "{back:?}");
    ensure!(
        back.data["spec"]["sandboxTemplateRef"]["name"] == "tmpl",
        "{back:?}"
    );

    // And the other way: a v1beta1 Sandbox reads as v1alpha1 with replicas 1.
    api(env, "Sandbox", "v1beta1")
        .create(
            &PostParams::default(),
            &object(
                "Sandbox",
                "v1beta1",
                "running",
                json!({ "podTemplate": pod_template(), "operatingMode": "Running" }),
            )?,
        )
        .await
        .context("creating a v1beta1 Sandbox")?;
    let alpha = api(env, "Sandbox", "v1alpha1").get("running").await?;
    ensure!(alpha.data["spec"]["replicas"] == 1, "{alpha:?}");
    ensure!(
        alpha.data["spec"].get("operatingMode").is_none(),
        "{alpha:?}"
    );
    Ok(())
}

async fn v1alpha1_requests_carry_the_deprecation_warning(env: &TestEnv) -> anyhow::Result<()> {
    let output = kubectl::output(&[
        "get",
        "sandboxes.v1alpha1.agents.x-k8s.io",
        "-n",
        &env.namespace,
    ])
    .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "kubectl failed: {stderr}");
    ensure!(
        stderr.contains("agents.x-k8s.io/v1alpha1 Sandbox is deprecated"),
        "no deprecation warning on stderr: {stderr:?}"
    );
    ensure!(stdout.contains("suspended"), "kubectl listed: {stdout}");
    Ok(())
}

/// Installs the controller's ServiceAccount and RBAC from deploy/, removes the certificate Secret an
/// earlier run left, and returns a kubeconfig of that ServiceAccount: the webhook then proves the RBAC
/// covers creating the Secret and patching the CRDs.
async fn service_account(env: &TestEnv) -> anyhow::Result<PathBuf> {
    let kubeconfig = install_service_account(
        &env.client,
        &["controller/rbac.yaml", "migration/rbac-webhook.yaml"],
        "conversion-sa",
    )
    .await?;
    delete_secret(env).await?;
    Ok(kubeconfig)
}

/// Removes the certificate Secret (if any) and waits until it is gone.
async fn delete_secret(env: &TestEnv) -> anyhow::Result<()> {
    let secrets = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NAMESPACE);
    if let Some(old) = secrets.get_opt(SECRET).await? {
        secrets.delete(SECRET, &Default::default()).await?;
        wait_deleted(&secrets, &old, TIMEOUT).await?;
    }
    Ok(())
}

/// Two replicas starting at once with no Secret serve under one CA: whichever loses the race for the
/// Secret uses the winner's certificates. They elect a leader, and the standby serves conversions too.
async fn concurrent_replicas_share_one_secret(
    env: &TestEnv,
    kubeconfig: &Path,
) -> anyhow::Result<()> {
    delete_secret(env).await?;
    let lease = format!("--leader-election-id=conversion-{}", env.namespace);
    let election = [
        "--leader-elect=true",
        "--leader-election-namespace=agent-sandbox-system",
        lease.as_str(),
    ];
    let mut replicas = Vec::new();
    let mut ports = Vec::new();
    for name in ["conversion-replica-a", "conversion-replica-b"] {
        let port = free_port(&ports)?;
        ports.push(port);
        let url = format!("https://127.0.0.1:{port}/convert");
        let controller = start_controller_with(env, kubeconfig, name, port, &url, &election)?;
        replicas.push((controller, cert_dir(env, name)));
    }
    let dirs: Vec<PathBuf> = replicas.iter().map(|(_, dir)| dir.clone()).collect();
    let secrets = Api::<Secret>::namespaced(env.client.clone(), SYSTEM_NAMESPACE);
    let shared = eventually("both replicas serving the Secret's certificate", || {
        let (dirs, secrets) = (dirs.clone(), secrets.clone());
        async move {
            let stored = secrets
                .get(SECRET)
                .await?
                .data
                .and_then(|d| d.get("tls.crt").map(|b| b.0.clone()))
                .context("the Secret has no tls.crt")?;
            for dir in &dirs {
                let served = std::fs::read(dir.join("tls.crt"))
                    .with_context(|| format!("reading {}", dir.display()))?;
                ensure!(
                    served == stored,
                    "{} differs from the Secret",
                    dir.display()
                );
            }
            Ok(())
        }
    })
    .await;
    let mut results = vec![shared];
    // One replica leads (its Sandbox controller has started), the other stands by. The standby is
    // stopped first: stopping the leader first would make the standby lead as it is being stopped.
    let leader = eventually("one replica to lead", || {
        let logs: Vec<String> = replicas.iter().map(|(c, _)| c.tail(400)).collect();
        async move {
            let leading: Vec<usize> = (0..logs.len())
                .filter(|&i| logs[i].contains(STARTED))
                .collect();
            match leading.as_slice() {
                [one] => Ok(*one),
                _ => bail!("replicas leading: {leading:?}"),
            }
        }
    })
    .await;
    let order: Vec<usize> = match &leader {
        Ok(leader) => (0..replicas.len())
            .filter(|i| i != leader)
            .chain([*leader])
            .collect(),
        Err(_) => (0..replicas.len()).collect(),
    };
    results.push(leader.map(|_| ()));
    for i in order {
        let controller = &mut replicas[i].0;
        results.push(controller.ensure_running());
        results.push(controller.stop().await);
        if results.iter().any(Result::is_err) {
            eprintln!("replica log (tail):\n{}", controller.tail(40));
        }
    }
    results.into_iter().collect()
}

async fn scenarios(env: &TestEnv, running: &mut Option<Controller>) -> anyhow::Result<()> {
    let port = free_port(&[])?;
    let url = format!("https://127.0.0.1:{port}/convert");
    let kubeconfig = service_account(env).await?;
    let controller = running.insert(start_controller(
        env,
        &kubeconfig,
        "conversion-webhook",
        port,
        &url,
    )?);
    let trusted = wait_for_crds_pointing_at(env, &url).await?;
    let (ca, version) = secret_ca(env).await?;
    ensure!(trusted == ca, "the CRDs trust a CA other than the Secret's");

    every_kind_reads_in_both_versions(env).await?;
    v1alpha1_requests_carry_the_deprecation_warning(env).await?;

    // A restart finds the Secret and keeps its CA: the API server's trust still holds.
    controller.stop().await?;
    let controller = running.insert(start_controller(
        env,
        &kubeconfig,
        "conversion-webhook-restarted",
        port,
        &url,
    )?);
    let sandboxes = api(env, "Sandbox", "v1alpha1");
    let read = eventually("reading v1alpha1 through the restarted webhook", || {
        let sandboxes = sandboxes.clone();
        async move { Ok(sandboxes.get("suspended").await?) }
    })
    .await?;
    ensure!(read.data["spec"]["replicas"] == 0, "{read:?}");
    let (ca_after, version_after) = secret_ca(env).await?;
    ensure!(ca_after == ca, "the restarted controller made a new CA");
    ensure!(
        version_after == version,
        "the restarted controller rewrote the Secret"
    );
    ensure!(wait_for_crds_pointing_at(env, &url).await? == ca);

    scaling_through_v1alpha1_resumes(env).await?;
    controller.ensure_running()?;
    wait_logged(controller, STARTED).await?;
    controller.stop().await?;
    *running = None;

    concurrent_replicas_share_one_secret(env, &kubeconfig).await
}

/// `kubectl scale --replicas=1` on the v1alpha1 scale subresource resumes a suspended Sandbox.
async fn scaling_through_v1alpha1_resumes(env: &TestEnv) -> anyhow::Result<()> {
    let output = kubectl::output(&[
        "scale",
        "sandboxes.v1alpha1.agents.x-k8s.io/suspended",
        "--replicas=1",
        "-n",
        &env.namespace,
    ])
    .await?;
    ensure!(
        output.status.success(),
        "kubectl scale failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let beta = api(env, "Sandbox", "v1beta1").get("suspended").await?;
    ensure!(
        beta.data["spec"]["operatingMode"] == "Running",
        "scaled to 1 reads as {beta:?}"
    );
    let alpha = api(env, "Sandbox", "v1alpha1").get("suspended").await?;
    ensure!(alpha.data["spec"]["replicas"] == 1, "{alpha:?}");
    Ok(())
}

#[tokio::test]
async fn both_versions_are_served_through_the_controllers_webhook() -> anyhow::Result<()> {
    TestEnv::run("conversion", |env| async move {
        crds::install_with_webhook(&env.client).await?;
        let mut controller = None;
        let result = scenarios(&env, &mut controller).await;
        // Always: the default CRDs come back (strategy None before the webhook goes away).
        let reset = crds::restore_default(&env.client).await;
        let stopped = stop_controller(&mut controller, result.is_err()).await;
        match (result, reset, stopped) {
            (Err(error), _, _) => Err(error),
            (Ok(()), Err(error), _) => Err(error.context("restoring the default CRDs")),
            (Ok(()), Ok(()), stopped) => stopped,
        }
    })
    .await
}

/// Fails loudly if the helper ever stops matching [`CRDS`] to what deploy/crds installs.
#[test]
fn the_suite_knows_every_crd() -> anyhow::Result<()> {
    let mut installed: Vec<String> = crds::load()?.iter().map(ResourceExt::name_any).collect();
    installed.sort();
    let mut ours: Vec<String> = CRDS.iter().map(|s| (*s).to_owned()).collect();
    ours.sort();
    if installed != ours {
        bail!("deploy/crds has {installed:?}, the suite expects {ours:?}");
    }
    Ok(())
}
