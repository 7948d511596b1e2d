//! The default install running in the cluster as a platform team runs it, both ways:
//! deploy/controller and deploy/router (what `kubectl apply -k deploy/` applies besides the CRDs)
//! through deploy/local-cluster/install, and the Helm chart with deploy/local-cluster/helm-values.yaml,
//! from the images `cargo xtask cluster up` builds. The controller runs as Pods on the real node, as
//! its own ServiceAccount, with leader election between its two replicas, and serves a claim of a
//! gVisor warm pool; a Helm upgrade restarts only what changed; uninstalling removes what the install
//! made and leaves the users' objects alone. Each scenario installs and uninstalls, one at a time: an
//! in-cluster controller acts on every namespace, so it must never outlive its scenario.

#[allow(dead_code)]
mod real_node_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::{TestEnv, cluster, crds, fixtures, helm, kubectl, workspace_root};
use anyhow::{Context, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use real_node_support::claims::wait_pool_ready;
use real_node_support::{
    bound, claim_cond, create_pool, create_template, pair, pod_template, python_sleeper,
    sandbox_pod, wait_claim, wait_real_node,
};

/// The kustomize overlay under test, relative to the workspace root.
const OVERLAY: &str = "deploy/local-cluster/install";
/// The chart and the values that make it run on the local cluster.
const CHART: &str = "deploy/helm/agent-sandbox";
const HELM_VALUES: &str = "deploy/local-cluster/helm-values.yaml";
/// The release, and the namespace Helm keeps its record in (the chart creates its own namespace).
const RELEASE: &str = "agent-sandbox";
const RELEASE_NAMESPACE: &str = "default";
const SYSTEM_NAMESPACE: &str = "agent-sandbox-system";
const CONTROLLER: &str = "agent-sandbox-controller";
const ROUTER: &str = "sandbox-router";
const CONTROLLER_IMAGE: &str = "localhost/agent-sandbox/controller:local";
/// Two replicas of each Deployment, runc pods on a loaded 2-core machine.
const ROLLOUT_TIMEOUT: &str = "180s";
/// How long the Lease may take to name a leader after the pods are Ready.
const LEASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The user's template and warm pool in each scenario's namespace.
const POOL: &str = "agents";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn kustomize_install_serves_a_claim_from_the_cluster_and_uninstalls_cleanly()
-> anyhow::Result<()> {
    scenario(
        "install",
        kustomize_install,
        kustomize_uninstall,
        |env| async move {
            let (sandbox, pod) = serve_a_claim(&env, "task").await?;
            dispatched_to_our_priority_level().await?;
            kustomize_uninstall().await?;
            users_objects_remain(&env, &["task"], &[&sandbox], &[&pod.name_any()]).await
        },
    )
    .await
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_keep_users_objects() -> anyhow::Result<()> {
    scenario("helm", || helm_install("install", &[]), helm_uninstall, |env| async move {
        let (first, first_pod) = serve_a_claim(&env, "first").await?;
        let controllers_before = system_pods("controller").await?;
        let routers_before = system_pods("router").await?;

        // A new build of the controller (a changed pod template), nothing else.
        helm_install("upgrade", &["controller.podAnnotations.build=2"]).await?;
        let controllers_after = system_pods("controller").await?;
        ensure!(
            controllers_after.keys().all(|name| !controllers_before.contains_key(name)),
            "the upgrade kept controller Pods {controllers_before:?} (now {controllers_after:?})"
        );
        ensure!(
            system_pods("router").await? == routers_before,
            "the upgrade restarted the router, whose pod template did not change"
        );
        let pod_now = env.api::<Pod>().get(&first_pod.name_any()).await?;
        ensure!(
            pod_now.uid() == first_pod.uid(),
            "the upgrade replaced the claimed Sandbox's Pod"
        );
        let claim = env.api::<SandboxClaim>().get("first").await?;
        ensure!(
            claim_cond(&claim, "Ready") == pair("True", "DependenciesReady")
                && bound(&claim).as_deref() == Some(first.as_str()),
            "after the upgrade claim first is {:?} bound to {:?}",
            claim_cond(&claim, "Ready"),
            bound(&claim)
        );
        let (second, second_pod) = serve_a_claim(&env, "second").await?;

        helm_uninstall().await?;
        users_objects_remain(
            &env,
            &["first", "second"],
            &[&first, &second],
            &[&first_pod.name_any(), &second_pod.name_any()],
        )
        .await
    })
    .await
}

/// Installs with `install`, runs `body` in a fresh namespace, and uninstalls with `uninstall`
/// whatever happened (an in-cluster controller must not outlive the scenario); logs on failure.
async fn scenario<I, IF, U, UF, B, BF>(
    name: &str,
    install: I,
    uninstall: U,
    body: B,
) -> anyhow::Result<()>
where
    I: FnOnce() -> IF,
    IF: Future<Output = anyhow::Result<()>>,
    U: FnOnce() -> UF,
    UF: Future<Output = anyhow::Result<()>>,
    B: FnOnce(TestEnv) -> BF,
    BF: Future<Output = anyhow::Result<()>>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = cluster::client().await?;
    wait_real_node(&client).await?;
    crds::install(&client).await?;
    let result = match install().await {
        Ok(()) => {
            verify_controller_pods().await?;
            TestEnv::run(name, body).await
        }
        Err(error) => Err(error),
    };
    if result.is_err() {
        print_logs().await;
    }
    let removed = uninstall().await;
    result.and(removed)
}

/// Two controller Pods on the real node, as the install's ServiceAccount, from the local image, one
/// of them holding the leader Lease.
async fn verify_controller_pods() -> anyhow::Result<()> {
    let client = cluster::client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let controllers = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await?
        .items;
    let names: Vec<String> = controllers.iter().map(ResourceExt::name_any).collect();
    ensure!(
        controllers.len() == 2,
        "expected the Deployment's 2 controller Pods, found {names:?}"
    );
    for pod in &controllers {
        let spec = pod
            .spec
            .as_ref()
            .context("a controller Pod without a spec")?;
        ensure!(
            spec.node_name.as_deref() == Some(real_node_support::NODE)
                && spec.service_account_name.as_deref() == Some(CONTROLLER)
                && spec.containers.first().and_then(|c| c.image.as_deref())
                    == Some(CONTROLLER_IMAGE),
            "controller Pod {} runs elsewhere, as someone else or from another image: node {:?}, \
             ServiceAccount {:?}, image {:?}",
            pod.name_any(),
            spec.node_name,
            spec.service_account_name,
            spec.containers.first().and_then(|c| c.image.clone())
        );
    }
    let leases: Api<Lease> = Api::namespaced(client, SYSTEM_NAMESPACE);
    agent_sandbox_testkit::wait::wait_for_object(
        &leases,
        CONTROLLER,
        "a controller Pod to hold the leader Lease",
        LEASE_TIMEOUT,
        |lease: Option<&Lease>| {
            lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_ref())
                .is_some_and(|holder| names.iter().any(|n| holder.starts_with(n.as_str())))
        },
    )
    .await?;
    Ok(())
}

/// Claim `name` of the user's warm pool (made on first use: a template and a pool of one gVisor
/// sandbox), Ready; its Sandbox's name and Pod. Only the in-cluster controller runs, so it is what
/// fills the pool and binds the claim.
async fn serve_a_claim(env: &TestEnv, name: &str) -> anyhow::Result<(String, Pod)> {
    if env.api::<SandboxTemplate>().get_opt(POOL).await?.is_none() {
        create_template(
            env,
            POOL,
            pod_template("gvisor", json!([python_sleeper()]), json!({})),
        )
        .await?;
        create_pool(env, POOL, POOL, 1).await?;
    }
    wait_pool_ready(env, POOL, 1).await?;
    env.create(&fixtures::claim(name, POOL, json!({}))?).await?;
    let claim = wait_claim(env, name, "the claim to be Ready", |c| {
        claim_cond(c, "Ready") == pair("True", "DependenciesReady") && bound(c).is_some()
    })
    .await?;
    let sandbox_name = bound(&claim).context("the Ready claim names no Sandbox")?;
    let sandbox = env.api::<Sandbox>().get(&sandbox_name).await?;
    let pod = sandbox_pod(env, &sandbox).await?;
    ensure!(
        pod.spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            == Some("gvisor"),
        "the claimed Sandbox's Pod does not run under gVisor"
    );
    Ok((sandbox_name, pod))
}

/// After an uninstall: its namespace is gone, and the user's template, pool, claims, Sandboxes and
/// their Pods are all still there (the CRDs stay, and nothing deleted them).
async fn users_objects_remain(
    env: &TestEnv,
    claims: &[&str],
    sandboxes: &[&str],
    pods: &[&str],
) -> anyhow::Result<()> {
    kubectl::ok(&[
        "wait",
        "--for=delete",
        &format!("namespace/{SYSTEM_NAMESPACE}"),
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .context("the install's namespace is still there after the uninstall")?;
    let mut missing = Vec::new();
    if env.api::<SandboxTemplate>().get_opt(POOL).await?.is_none() {
        missing.push(format!("SandboxTemplate {POOL}"));
    }
    if env.api::<SandboxWarmPool>().get_opt(POOL).await?.is_none() {
        missing.push(format!("SandboxWarmPool {POOL}"));
    }
    for claim in claims {
        if env.api::<SandboxClaim>().get_opt(claim).await?.is_none() {
            missing.push(format!("SandboxClaim {claim}"));
        }
    }
    for sandbox in sandboxes {
        if env.api::<Sandbox>().get_opt(sandbox).await?.is_none() {
            missing.push(format!("Sandbox {sandbox}"));
        }
    }
    for pod in pods {
        if env.api::<Pod>().get_opt(pod).await?.is_none() {
            missing.push(format!("Pod {pod}"));
        }
    }
    ensure!(
        missing.is_empty(),
        "uninstalling deleted the user's {}",
        missing.join(", ")
    );
    Ok(())
}

/// The Pods of one component of the install: name → UID.
async fn system_pods(component: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let pods: Api<Pod> = Api::namespaced(cluster::client().await?, SYSTEM_NAMESPACE);
    Ok(pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/component={component}")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect())
}

/// The API server put the controller's requests in the install's own priority level
/// (deploy/controller/apf.yaml): its metrics count requests dispatched under it.
async fn dispatched_to_our_priority_level() -> anyhow::Result<()> {
    let out = kubectl::output(&["get", "--raw", "/metrics"]).await?;
    ensure!(
        out.status.success(),
        "reading the API server's metrics: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = format!("flow_schema=\"{CONTROLLER}\"");
    let level = format!("priority_level=\"{CONTROLLER}\"");
    let dispatched: f64 = text
        .lines()
        .filter(|line| line.starts_with("apiserver_flowcontrol_dispatched_requests_total{"))
        .filter(|line| line.contains(&ours) && line.contains(&level))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(
        dispatched > 0.0,
        "the API server dispatched no request under FlowSchema {CONTROLLER}"
    );
    Ok(())
}

/// `kubectl apply -k` the overlay and wait for both Deployments to roll out.
async fn kustomize_install() -> anyhow::Result<()> {
    kubectl::ok(&["apply", "--kustomize", &in_workspace(OVERLAY)]).await?;
    for deployment in [CONTROLLER, ROUTER] {
        kubectl::ok(&[
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            "--namespace",
            SYSTEM_NAMESPACE,
            "--timeout",
            ROLLOUT_TIMEOUT,
        ])
        .await
        .with_context(|| format!("Deployment {deployment} did not roll out"))?;
    }
    Ok(())
}

/// `kubectl delete -k` the overlay, waiting until everything (its namespace included) is gone.
async fn kustomize_uninstall() -> anyhow::Result<()> {
    kubectl::ok(&[
        "delete",
        "--kustomize",
        &in_workspace(OVERLAY),
        "--ignore-not-found",
        "--wait",
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .context("uninstalling")
}

/// `helm install` or `helm upgrade` the chart with the local values and `set` (string values),
/// waiting until every Deployment is rolled out.
async fn helm_install(verb: &str, set: &[&str]) -> anyhow::Result<()> {
    let kubeconfig = cluster::kubeconfig_path().display().to_string();
    let mut args = vec![
        verb,
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--values",
        HELM_VALUES,
        "--wait",
        "--timeout",
        ROLLOUT_TIMEOUT,
    ];
    for value in set {
        args.extend(["--set-string", value]);
    }
    helm::ok(&args).await.map(|_| ())
}

/// `helm uninstall`, waiting until what the release made is gone; a release that is not there is
/// fine (the install failed).
async fn helm_uninstall() -> anyhow::Result<()> {
    let kubeconfig = cluster::kubeconfig_path().display().to_string();
    helm::ok(&[
        "uninstall",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
        "--ignore-not-found",
        "--wait",
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .map(|_| ())
}

async fn print_logs() {
    for component in ["controller", "router"] {
        let selector = format!("app.kubernetes.io/component={component}");
        let args = [
            "logs",
            "--namespace",
            SYSTEM_NAMESPACE,
            "--selector",
            &selector,
            "--prefix",
            "--tail",
            "60",
        ];
        if let Ok(out) = kubectl::output(&args).await {
            eprintln!(
                "{component} logs (tail):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn in_workspace(path: &str) -> String {
    workspace_root().join(path).display().to_string()
}
