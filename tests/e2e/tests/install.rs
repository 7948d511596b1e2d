//! The default install running in the cluster as a platform team runs it: deploy/controller and
//! deploy/router (what `kubectl apply -k deploy/` applies besides the CRDs) from the images `cargo
//! xtask cluster up` builds, through deploy/local-cluster/install. The controller runs as a Pod on
//! the real node, as its own ServiceAccount, with leader election between its two replicas, and
//! serves a claim of a gVisor warm pool; uninstalling removes what the install made and leaves the
//! users' objects alone. Each scenario installs and uninstalls, one at a time: an in-cluster
//! controller acts on every namespace, so it must never outlive its scenario.

#[allow(dead_code)]
mod real_node_support;

use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::{TestEnv, cluster, crds, fixtures, kubectl, workspace_root};
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

/// The overlay under test, relative to the workspace root.
const OVERLAY: &str = "deploy/local-cluster/install";
const SYSTEM_NAMESPACE: &str = "agent-sandbox-system";
const CONTROLLER: &str = "agent-sandbox-controller";
const ROUTER: &str = "sandbox-router";
const CONTROLLER_IMAGE: &str = "localhost/agent-sandbox/controller:local";
/// Two replicas of each Deployment, runc pods on a loaded 2-core machine.
const ROLLOUT_TIMEOUT: &str = "180s";
/// How long the Lease may take to name a leader after the pods are Ready.
const LEASE_TIMEOUT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn kustomize_install_serves_a_claim_from_the_cluster_and_uninstalls_cleanly()
-> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let client = cluster::client().await?;
    wait_real_node(&client).await?;
    crds::install(&client).await?;
    let installed = install().await;
    let result = match installed {
        Ok(()) => TestEnv::run("install", serve_and_uninstall).await,
        Err(error) => Err(error),
    };
    if result.is_err() {
        print_logs().await;
    }
    // Whatever happened: no in-cluster controller may outlive the scenario.
    let removed = uninstall().await;
    result.and(removed)
}

/// The controller in the cluster serves a claim; then the install goes and the user's objects stay.
async fn serve_and_uninstall(env: TestEnv) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), SYSTEM_NAMESPACE);
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
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), SYSTEM_NAMESPACE);
    let lease = agent_sandbox_testkit::wait::wait_for_object(
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
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();

    // A user's template, warm pool of one gVisor sandbox and a claim: only the in-cluster
    // controller runs, so it is what fills the pool and binds the claim.
    create_template(
        &env,
        "agents",
        pod_template("gvisor", json!([python_sleeper()]), json!({})),
    )
    .await?;
    create_pool(&env, "agents", "agents", 1).await?;
    wait_pool_ready(&env, "agents", 1).await?;
    env.create(&fixtures::claim("task", "agents", json!({}))?)
        .await?;
    let claim = wait_claim(&env, "task", "the claim to be Ready", |c| {
        claim_cond(c, "Ready") == pair("True", "DependenciesReady") && bound(c).is_some()
    })
    .await?;
    let sandbox_name = bound(&claim).context("the Ready claim names no Sandbox")?;
    let sandbox = env.api::<Sandbox>().get(&sandbox_name).await?;
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure!(
        pod.spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            == Some("gvisor"),
        "the claimed Sandbox's Pod does not run under gVisor"
    );
    eprintln!("[install] the claim was served by the in-cluster controller (leader {holder})");

    // The API server put the controller's requests in the install's own priority level.
    let dispatched = dispatched_to_our_priority_level().await?;
    ensure!(
        dispatched > 0,
        "the API server dispatched no request under FlowSchema {CONTROLLER}"
    );

    // Uninstalling the install's objects leaves the CRDs and with them every user object.
    uninstall().await?;
    for (kind, present) in [
        (
            "SandboxTemplate agents",
            env.api::<SandboxTemplate>()
                .get_opt("agents")
                .await?
                .is_some(),
        ),
        (
            "SandboxWarmPool agents",
            env.api::<SandboxWarmPool>()
                .get_opt("agents")
                .await?
                .is_some(),
        ),
        (
            "SandboxClaim task",
            env.api::<SandboxClaim>().get_opt("task").await?.is_some(),
        ),
        (
            "the claimed Sandbox",
            env.api::<Sandbox>().get_opt(&sandbox_name).await?.is_some(),
        ),
        (
            "the claimed Sandbox's Pod",
            env.api::<Pod>().get_opt(&pod.name_any()).await?.is_some(),
        ),
    ] {
        ensure!(present, "uninstalling the controller deleted {kind}");
    }
    let gone = kubectl::output(&["get", "namespace", SYSTEM_NAMESPACE]).await?;
    ensure!(
        !gone.status.success(),
        "namespace {SYSTEM_NAMESPACE} is still there after the uninstall"
    );
    Ok(())
}

/// Requests the API server dispatched under FlowSchema and priority level `agent-sandbox-controller`
/// (deploy/controller/apf.yaml), from its metrics.
async fn dispatched_to_our_priority_level() -> anyhow::Result<u64> {
    let out = kubectl::output(&["get", "--raw", "/metrics"]).await?;
    ensure!(
        out.status.success(),
        "reading the API server's metrics: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = format!("flow_schema=\"{CONTROLLER}\"");
    let level = format!("priority_level=\"{CONTROLLER}\"");
    Ok(text
        .lines()
        .filter(|line| line.starts_with("apiserver_flowcontrol_dispatched_requests_total{"))
        .filter(|line| line.contains(&ours) && line.contains(&level))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// `kubectl apply -k` the overlay and wait for both Deployments to roll out.
async fn install() -> anyhow::Result<()> {
    kubectl::ok(&["apply", "--kustomize", &overlay()]).await?;
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
async fn uninstall() -> anyhow::Result<()> {
    kubectl::ok(&[
        "delete",
        "--kustomize",
        &overlay(),
        "--ignore-not-found",
        "--wait",
        "--timeout",
        ROLLOUT_TIMEOUT,
    ])
    .await
    .context("uninstalling")
}

async fn print_logs() {
    for deployment in [CONTROLLER, ROUTER] {
        let args = [
            "logs",
            "--namespace",
            SYSTEM_NAMESPACE,
            &format!("deployment/{deployment}"),
            "--all-containers",
            "--tail",
            "60",
        ];
        if let Ok(out) = kubectl::output(&args).await {
            eprintln!(
                "{deployment} log (tail):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn overlay() -> String {
    workspace_root().join(OVERLAY).display().to_string()
}
