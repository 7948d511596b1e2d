//! Rollouts: what happens to existing members when the template (or the pool's template reference)
//! changes, for each update strategy.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool};
use agent_sandbox_testkit::TestEnv;
use anyhow::{Context, ensure};
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::json;

use super::{
    IMAGE, IMAGE_V2, change_template, containers, create_pool, create_template, image,
    marker_policy, names, wait_full, wait_members,
};

/// A template with a custom policy (the marker [`change_template`] waits on) and a pool of two.
async fn pool_of_two(env: &TestEnv, strategy: Option<&str>) -> anyhow::Result<Vec<Sandbox>> {
    create_template(env, "python", json!({"networkPolicy": marker_policy(1000)})).await?;
    let extra = strategy.map_or_else(|| json!({}), |s| json!({"updateStrategy": {"type": s}}));
    create_pool(env, "warm", "python", 2, extra).await?;
    wait_full(env, "warm", 2).await
}

async fn change_image(env: &TestEnv) -> anyhow::Result<()> {
    change_template(
        env,
        "python",
        json!({"podTemplate": {"spec": {"containers": containers(IMAGE_V2)}}}),
        1001,
    )
    .await
}

fn on_image(members: &[Sandbox], name: &str) -> Option<String> {
    members
        .iter()
        .find(|s| s.name_any() == name)
        .and_then(|s| image(s).map(str::to_owned))
}

/// OnReplenish set explicitly: a member that goes away is replaced from the new template; the
/// other keeps the old one.
pub async fn on_replenish(env: TestEnv) -> anyhow::Result<()> {
    let before = names(&pool_of_two(&env, Some("OnReplenish")).await?);
    change_image(&env).await?;
    let victim = before.first().context("no member")?.clone();
    env.api::<Sandbox>()
        .delete(&victim, &DeleteParams::default())
        .await?;
    let members = wait_members(&env, "warm", "the deleted member replaced", |m| {
        m.len() == 2 && !names(m).contains(&victim) && m.iter().all(super::is_ready)
    })
    .await?;
    ensure!(
        on_image(&members, &before[1]).as_deref() == Some(IMAGE),
        "the untouched member kept the old template"
    );
    let replacement = members
        .iter()
        .find(|s| s.name_any() != before[1])
        .context("no replacement")?;
    ensure!(
        image(replacement) == Some(IMAGE_V2),
        "replacement image {:?}",
        image(replacement)
    );
    Ok(())
}

/// Default strategy (OnReplenish): existing members keep the old template; new ones get the new one.
pub async fn default_strategy(env: TestEnv) -> anyhow::Result<()> {
    let before = names(&pool_of_two(&env, None).await?);
    change_image(&env).await?;
    env.patch_spec::<SandboxWarmPool>("warm", json!({"replicas": 3}))
        .await?;
    let members = wait_full(&env, "warm", 3).await?;
    for name in &before {
        ensure!(
            on_image(&members, name).as_deref() == Some(IMAGE),
            "{name} was replaced or changed: {:?}",
            names(&members)
        );
    }
    let new = members
        .iter()
        .find(|s| !before.contains(&s.name_any()))
        .context("no new member")?;
    ensure!(
        image(new) == Some(IMAGE_V2),
        "new member image {:?}",
        image(new)
    );
    Ok(())
}

/// Recreate: stale members are replaced by members of the new template.
pub async fn recreate(env: TestEnv) -> anyhow::Result<()> {
    let before = names(&pool_of_two(&env, Some("Recreate")).await?);
    change_image(&env).await?;
    wait_members(
        &env,
        "warm",
        "every member rebuilt from the new template",
        |m| {
            m.len() == 2
                && m.iter().all(|s| {
                    super::is_ready(s)
                        && image(s) == Some(IMAGE_V2)
                        && !before.contains(&s.name_any())
                })
        },
    )
    .await?;
    wait_full(&env, "warm", 2).await?;
    Ok(())
}

/// Recreate, switching `sandboxTemplateRef` to another template: every member is rebuilt from it.
pub async fn switch_template(env: TestEnv) -> anyhow::Result<()> {
    let before = names(&pool_of_two(&env, Some("Recreate")).await?);
    let mut other = json!({"networkPolicy": marker_policy(2000)});
    other["podTemplate"] = json!({"spec": {"containers": containers(IMAGE_V2)}});
    create_template(&env, "other", other).await?;
    // The template controller has seen "other" once its policy exists: the shared cache has it.
    change_template(&env, "other", json!({}), 2001).await?;
    env.patch_spec::<SandboxWarmPool>("warm", json!({"sandboxTemplateRef": {"name": "other"}}))
        .await?;
    let hash = name_hash("other");
    wait_members(
        &env,
        "warm",
        "every member rebuilt from the other template",
        |m| {
            m.len() == 2
                && m.iter().all(|s| {
                    super::is_ready(s)
                        && !before.contains(&s.name_any())
                        && s.labels().get(labels::SANDBOX_TEMPLATE_REF_HASH) == Some(&hash)
                })
        },
    )
    .await?;
    Ok(())
}

/// Recreate, but only the pod template's labels change: no member is replaced.
pub async fn label_only_change(env: TestEnv) -> anyhow::Result<()> {
    let before = names(&pool_of_two(&env, Some("Recreate")).await?);
    change_template(
        &env,
        "python",
        json!({"podTemplate": {"metadata": {"labels": {"team": "blue"}}}}),
        1001,
    )
    .await?;
    // The pass that adds the third member runs with the changed template in its cache.
    env.patch_spec::<SandboxWarmPool>("warm", json!({"replicas": 3}))
        .await?;
    let members = wait_full(&env, "warm", 3).await?;
    for name in &before {
        ensure!(
            names(&members).contains(name),
            "{name} was replaced by a label-only change: {:?}",
            names(&members)
        );
    }
    Ok(())
}
