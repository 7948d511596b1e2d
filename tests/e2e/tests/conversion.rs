//! Both versions served through the controller's own conversion webhook, on the local control plane.
//!
//! The API server runs on this host and cannot resolve a Service, so the controller runs in local mode
//! (`--webhook-url https://127.0.0.1:<port>/convert`) as its own ServiceAccount with the RBAC from deploy/,
//! generates its certificates into the Secret in `agent-sandbox-system` and points the four CRDs at itself. The CRDs are cluster-wide: the suite puts them back to conversion strategy
//! None at the end, whatever happened, as every other suite expects.
//!
//! Covered: each kind created as v1alpha1 reads as v1beta1 and back; `replicas: 0` is Suspended and
//! `kubectl scale --replicas=1` through v1alpha1 resumes it; a claim of a specific pool gets `warmPoolRef`;
//! kubectl shows the deprecation warning; a restarted controller reuses the Secret's CA; two replicas
//! started at once share one Secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_sandbox_testkit::controller::{Controller, install_service_account};
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use agent_sandbox_testkit::{TestEnv, crds, kubectl, workspace_root};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// Long enough for the API server and the controller on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between attempts while the API server switches to a (re)started webhook; nothing can be
/// watched for that, so the read is retried until it succeeds or [`TIMEOUT`] passes.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

const SECRET: &str = "agent-sandbox-webhook-certs";

/// The controller's namespace in deploy/ (ServiceAccount, Roles, the certificate Secret).
use agent_sandbox_testkit::controller::SYSTEM_NAMESPACE;
const CRDS: [&str; 4] = [
    "sandboxes.agents.x-k8s.io",
    "sandboxclaims.extensions.agents.x-k8s.io",
    "sandboxtemplates.extensions.agents.x-k8s.io",
    "sandboxwarmpools.extensions.agents.x-k8s.io",
];

/// A dynamic API for one kind in one version, in the test namespace.
fn api(env: &TestEnv, kind: &str, version: &str) -> Api<DynamicObject> {
    let (group, plural) = match kind {
        "Sandbox" => ("agents.x-k8s.io", "sandboxes"),
        "SandboxClaim" => ("extensions.agents.x-k8s.io", "sandboxclaims"),
        "SandboxTemplate" => ("extensions.agents.x-k8s.io", "sandboxtemplates"),
        _ => ("extensions.agents.x-k8s.io", "sandboxwarmpools"),
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(env.client.clone(), &env.namespace, &resource)
}

fn object(kind: &str, version: &str, name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    let group = if kind == "Sandbox" {
        "agents.x-k8s.io"
    } else {
        "extensions.agents.x-k8s.io"
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{group}/{version}"),
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))?)
}

fn pod_template() -> Value {
    json!({ "spec": { "containers": [{ "name": "agent", "image": "registry.invalid/agent:1" }] } })
}

/// Retries `attempt` until it succeeds or [`TIMEOUT`] passes (see [`RETRY_PAUSE`]).
async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(error.context(format!("{what}: still failing after {TIMEOUT:?}")));
            }
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Waits until the controller's log shows `needle`; used to know a controller is past its start-up
/// (a SIGTERM while its caches sync is answered only after the shutdown grace period).
async fn wait_logged(controller: &Controller, needle: &str) -> anyhow::Result<()> {
    eventually("the controller to finish starting", || {
        let logged = controller.tail(400).contains(needle);
        async move {
            ensure!(logged, "{needle:?} not logged yet");
            Ok(())
        }
    })
    .await
}

/// Logged by a replica whose Sandbox controller runs.
const STARTED: &str = "caches synced";

/// First port tried for the webhook: below the ephemeral range (32768 and up on Linux), so no outgoing
/// connection can take it while the controller restarts on the same port. `AGENT_SANDBOX_PORT_OFFSET`
/// shifts it like the cluster's own ports.
const WEBHOOK_PORT_BASE: u16 = 29443;

/// A free local port for a webhook (the API server must be told the port before the controller binds
/// it); `skip` ports are passed over (ones already handed out in this run).
fn free_port(skip: &[u16]) -> anyhow::Result<u16> {
    let offset: u16 = std::env::var("AGENT_SANDBOX_PORT_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first = WEBHOOK_PORT_BASE.saturating_add(offset);
    (first..first.saturating_add(100))
        .filter(|port| !skip.contains(port))
        .find(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).is_ok())
        .with_context(|| format!("no free port in {first}..{}", first.saturating_add(100)))
}

/// Waits until every CRD calls `url` with a caBundle, and returns the caBundle.
async fn wait_for_crds_pointing_at(env: &TestEnv, url: &str) -> anyhow::Result<Vec<u8>> {
    let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let mut bundles = Vec::new();
    for name in CRDS {
        let crd = wait_for_object(
            &api,
            name,
            "the controller to point the CRD's conversion at its webhook",
            TIMEOUT,
            |crd: Option<&CustomResourceDefinition>| {
                let config = crd
                    .and_then(|c| c.spec.conversion.as_ref())
                    .and_then(|c| c.webhook.as_ref())
                    .and_then(|w| w.client_config.as_ref());
                config.is_some_and(|c| {
                    c.url.as_deref() == Some(url) && c.ca_bundle.is_some() && c.service.is_none()
                })
            },
        )
        .await?;
        let bundle = crd
            .spec
            .conversion
            .and_then(|c| c.webhook)
            .and_then(|w| w.client_config)
            .and_then(|c| c.ca_bundle)
            .map(|b| b.0)
            .unwrap_or_default();
        bundles.push(bundle);
    }
    ensure!(
        bundles.windows(2).all(|w| w[0] == w[1]),
        "the CRDs trust different CAs"
    );
    Ok(bundles.remove(0))
}

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
    let kubeconfig = install_service_account(&env.client, &["rbac.yaml"], "conversion-sa").await?;
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

/// Where controller `name` writes its serving certificate.
fn cert_dir(env: &TestEnv, name: &str) -> PathBuf {
    workspace_root()
        .join("target/e2e-logs")
        .join(format!("{name}-{}-certs", env.namespace))
}

fn start_controller(
    env: &TestEnv,
    kubeconfig: &Path,
    name: &str,
    port: u16,
    url: &str,
) -> anyhow::Result<Controller> {
    start_controller_with(env, kubeconfig, name, port, url, &[])
}

fn start_controller_with(
    env: &TestEnv,
    kubeconfig: &Path,
    name: &str,
    port: u16,
    url: &str,
    extra: &[&str],
) -> anyhow::Result<Controller> {
    let port = format!("--webhook-port={port}");
    let url = format!("--webhook-url={url}");
    let namespace = format!("--webhook-namespace={SYSTEM_NAMESPACE}");
    let dir = format!("--webhook-cert-dir={}", cert_dir(env, name).display());
    let mut args = vec![
        port.as_str(),
        url.as_str(),
        namespace.as_str(),
        dir.as_str(),
    ];
    args.extend_from_slice(extra);
    Controller::start(name, kubeconfig, &args)
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
        // Always: the CRDs go back to strategy None before the webhook goes away.
        let reset = crds::reset_conversion(&env.client).await;
        let stopped = match controller.as_mut() {
            Some(controller) => {
                if result.is_err() {
                    eprintln!("controller log (tail):\n{}", controller.tail(60));
                }
                controller.stop().await
            }
            None => Ok(()),
        };
        match (result, reset, stopped) {
            (Err(error), _, _) => Err(error),
            (Ok(()), Err(error), _) => Err(error.context("restoring conversion strategy None")),
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
