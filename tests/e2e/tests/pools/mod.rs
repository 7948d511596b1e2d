//! SandboxTemplate and SandboxWarmPool scenarios (e2e-and-performance.md §2.2), shared by the suite that
//! runs the controller as cluster admin and the one that runs it as its own ServiceAccount.

mod network_policy;
mod rollout;
mod sizing;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::fixtures;
pub use agent_sandbox_testkit::fixtures::IMAGE;
use agent_sandbox_testkit::wait::{wait_for_object, wait_for_set};

use k8s_openapi::api::networking::v1::NetworkPolicy;

use kube::runtime::watcher;
use serde_json::{Value, json};

/// Long enough for the controller, kwok and the API server on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(60);

type Scenario<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// Runs the scenarios concurrently, each in its own namespace prefixed `prefix`: every one, or with
/// `subset` one per kind of call the controllers make (for the RBAC suite).
pub async fn run_all(prefix: &str, subset: bool) -> Vec<anyhow::Result<()>> {
    let ns = |name: &str| format!("{prefix}-{name}");
    let mut scenarios: Vec<Scenario<'_>> = vec![
        Box::pin(
            async move { TestEnv::run(&ns("fill"), sizing::fills_with_labelled_members).await },
        ),
        Box::pin(async move { TestEnv::run(&ns("scale"), sizing::scale_subresource).await }),
        Box::pin(
            async move { TestEnv::run(&ns("orphans"), sizing::adopts_matching_orphans).await },
        ),
        Box::pin(async move { TestEnv::run(&ns("recreate"), rollout::recreate).await }),
        Box::pin(async move { TestEnv::run(&ns("np"), network_policy::secure_default).await }),
        Box::pin(async move { TestEnv::run(&ns("unmanaged"), network_policy::unmanaged).await }),
        Box::pin(async move { TestEnv::run(&ns("foreign"), network_policy::foreign).await }),
    ];
    if !subset {
        scenarios.extend([
            Box::pin(async move { TestEnv::run(&ns("kubectl"), sizing::kubectl_scale).await })
                as Scenario<'_>,
            Box::pin(async move { TestEnv::run(&ns("replace"), sizing::replaces_deleted).await }),
            Box::pin(async move { TestEnv::run(&ns("default"), rollout::default_strategy).await }),
            Box::pin(async move { TestEnv::run(&ns("replenish"), rollout::on_replenish).await }),
            Box::pin(async move { TestEnv::run(&ns("ref"), rollout::switch_template).await }),
            Box::pin(async move { TestEnv::run(&ns("labels"), rollout::label_only_change).await }),
            Box::pin(async move { TestEnv::run(&ns("custom"), network_policy::custom).await }),
        ]);
    }
    futures::future::join_all(scenarios).await
}

/// Creates template `name` with `extra` spec fields.
pub async fn create_template(
    env: &TestEnv,
    name: &str,
    extra: Value,
) -> anyhow::Result<SandboxTemplate> {
    env.create(&fixtures::template(name, extra)?).await
}

/// Creates pool `name` of `replicas` members from `template`, with `extra` spec fields.
pub async fn create_pool(
    env: &TestEnv,
    name: &str,
    template: &str,
    replicas: i32,
    extra: Value,
) -> anyhow::Result<SandboxWarmPool> {
    env.create(&fixtures::warm_pool(name, template, replicas, extra)?)
        .await
}

/// The template's single container with `image`.
pub fn containers(image: &str) -> Value {
    json!([{"name": "agent", "image": image, "ports": [{"containerPort": 8888, "name": "http"}]}])
}

/// A custom policy whose only ingress rule admits `port`: a marker that shows when the template
/// controller (which reads the same template cache as the pool controller) has seen a template change.
pub fn marker_policy(port: i32) -> Value {
    json!({"ingress": [{"ports": [{"port": port}]}], "egress": []})
}

/// Patches the template's spec with `spec` plus the marker policy `port`, and waits until the managed
/// NetworkPolicy shows the marker: the controller's template cache then holds the change.
pub async fn change_template(
    env: &TestEnv,
    template: &str,
    mut spec: Value,
    port: i32,
) -> anyhow::Result<()> {
    spec["networkPolicy"] = marker_policy(port);
    env.patch_spec::<SandboxTemplate>(template, spec).await?;
    let shows_marker = move |np: Option<&NetworkPolicy>| {
        let ingress = np
            .and_then(|np| np.spec.as_ref())
            .and_then(|s| s.ingress.as_ref());
        let ports: Vec<_> = ingress
            .into_iter()
            .flatten()
            .flat_map(|rule| rule.ports.iter().flatten())
            .filter_map(|p| p.port.clone())
            .collect();
        ports == [k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port)]
    };
    wait_for_object(
        &env.api::<NetworkPolicy>(),
        &format!("{template}-network-policy"),
        "the template's NetworkPolicy to show the change",
        TIMEOUT,
        shows_marker,
    )
    .await?;
    Ok(())
}

/// The label selector of `pool`'s members.
pub fn member_selector(pool: &str) -> String {
    format!("{}={}", labels::WARM_POOL_SANDBOX, name_hash(pool))
}

/// True when the Sandbox's Ready condition is True.
pub fn is_ready(sandbox: &Sandbox) -> bool {
    sandbox
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The image of a member's first container.
pub fn image(sandbox: &Sandbox) -> Option<&str> {
    sandbox
        .spec
        .blueprint
        .pod_template
        .spec
        .containers
        .first()
        .and_then(|c| c.image.as_deref())
}

/// Watches `pool`'s members until `cond` holds for the whole set (sorted by name) and returns them.
pub async fn wait_members(
    env: &TestEnv,
    pool: &str,
    what: &str,
    cond: impl Fn(&[Sandbox]) -> bool,
) -> anyhow::Result<Vec<Sandbox>> {
    wait_for_set(
        &env.api::<Sandbox>(),
        watcher::Config::default().labels(&member_selector(pool)),
        &format!("{what} (pool {pool})"),
        TIMEOUT,
        cond,
        |s| {
            format!(
                "{} ready={} image={:?} deleting={}",
                kube::ResourceExt::name_any(s),
                is_ready(s),
                image(s),
                s.metadata.deletion_timestamp.is_some()
            )
        },
    )
    .await
}

/// Waits until `pool` has exactly `n` members, all Ready and not deleting, and its status says so.
pub async fn wait_full(env: &TestEnv, pool: &str, n: usize) -> anyhow::Result<Vec<Sandbox>> {
    let members = wait_members(env, pool, &format!("{n} Ready members"), |members| {
        members.len() == n
            && members
                .iter()
                .all(|s| is_ready(s) && s.metadata.deletion_timestamp.is_none())
    })
    .await?;
    let want = i32::try_from(n)?;
    wait_for_object(
        &env.api::<SandboxWarmPool>(),
        pool,
        &format!("status replicas = readyReplicas = {n}"),
        TIMEOUT,
        move |p: Option<&SandboxWarmPool>| {
            p.is_some_and(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.replicas == want
                        && s.ready_replicas == want
                        && Some(s.observed_generation) == p.metadata.generation
                })
            })
        },
    )
    .await?;
    Ok(members)
}

/// The names of `members`.
pub fn names(members: &[Sandbox]) -> Vec<String> {
    members.iter().map(kube::ResourceExt::name_any).collect()
}

/// The image a template change switches to (the fixtures start with [`IMAGE`]).
pub const IMAGE_V2: &str = "registry.invalid/agent:2";
