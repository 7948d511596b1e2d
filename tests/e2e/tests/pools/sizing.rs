//! A pool fills, reports its status, scales through the scale subresource and `kubectl scale`, and
//! replaces a deleted member.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_testkit::wait::wait_for_object;
use agent_sandbox_testkit::{TestEnv, kubectl};
use anyhow::{Context, ensure};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::{
    TIMEOUT, create_pool, create_template, member_selector, names, wait_full, wait_members,
};

/// Three Ready members with the pool's labels, annotation, owner reference and secure defaults; the
/// status says so; the template carries its hash label.
pub async fn fills_with_labelled_members(env: TestEnv) -> anyhow::Result<()> {
    create_template(&env, "python", json!({})).await?;
    let pool = create_pool(&env, "warm", "python", 3, json!({})).await?;
    let members = wait_full(&env, "warm", 3).await?;
    for member in &members {
        let name = member.name_any();
        ensure!(name.starts_with("warm-"), "generateName: {name}");
        let l = member.labels();
        for (key, value) in [
            (labels::WARM_POOL_SANDBOX, name_hash("warm")),
            (labels::SANDBOX_TEMPLATE_REF_HASH, name_hash("python")),
            (labels::LAUNCH_TYPE, "warm".to_owned()),
            (labels::CREATED_BY, "controller".to_owned()),
        ] {
            ensure!(
                l.get(key) == Some(&value),
                "{name}: label {key} = {:?}",
                l.get(key)
            );
        }
        for key in [
            labels::SANDBOX_TEMPLATE_HASH,
            labels::SANDBOX_POD_TEMPLATE_HASH,
        ] {
            ensure!(
                l.get(key).is_some_and(|v| !v.is_empty()),
                "{name}: no {key}"
            );
        }
        ensure!(
            member
                .annotations()
                .get(annotations::SANDBOX_TEMPLATE_REF)
                .map(String::as_str)
                == Some("python"),
            "{name}: template annotation"
        );
        let owner = member
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
            .context("no controller reference")?;
        ensure!(
            owner.kind == "SandboxWarmPool" && Some(&owner.uid) == pool.metadata.uid.as_ref(),
            "{name}: controller {owner:?}"
        );
        let pod = &member.spec.blueprint.pod_template;
        ensure!(
            pod.spec.automount_service_account_token == Some(false),
            "{name}: token automount"
        );
        ensure!(
            pod.spec.dns_policy.as_deref() == Some("None"),
            "{name}: dnsPolicy"
        );
        ensure!(
            pod.metadata
                .annotations
                .get(annotations::SAFE_TO_EVICT)
                .map(String::as_str)
                == Some("true"),
            "{name}: safe-to-evict"
        );
    }
    let pool = env.api::<SandboxWarmPool>().get("warm").await?;
    let status = pool.status.context("status")?;
    ensure!(
        status.selector == member_selector("warm"),
        "selector {}",
        status.selector
    );

    let hash = name_hash("python");
    wait_for_object(
        &env.api::<SandboxTemplate>(),
        "python",
        "the template's hash label",
        TIMEOUT,
        move |t: Option<&SandboxTemplate>| {
            t.is_some_and(|t| t.labels().get(labels::SANDBOX_TEMPLATE_REF_HASH) == Some(&hash))
        },
    )
    .await?;
    Ok(())
}

/// The scale subresource reports the selector and resizes the pool both ways.
pub async fn scale_subresource(env: TestEnv) -> anyhow::Result<()> {
    create_template(&env, "python", json!({})).await?;
    create_pool(&env, "warm", "python", 2, json!({})).await?;
    wait_full(&env, "warm", 2).await?;
    let pools = env.api::<SandboxWarmPool>();
    let scale = pools.get_scale("warm").await?;
    ensure!(
        scale.status.as_ref().and_then(|s| s.selector.as_deref())
            == Some(member_selector("warm").as_str()),
        "scale selector {:?}",
        scale.status
    );
    let resize = |n: i32| json!({"spec": {"replicas": n}});
    pools
        .patch_scale("warm", &PatchParams::default(), &Patch::Merge(resize(4)))
        .await?;
    wait_full(&env, "warm", 4).await?;
    pools
        .patch_scale("warm", &PatchParams::default(), &Patch::Merge(resize(1)))
        .await?;
    wait_full(&env, "warm", 1).await?;
    Ok(())
}

/// `kubectl scale sandboxwarmpool/<name> --replicas=N` works.
pub async fn kubectl_scale(env: TestEnv) -> anyhow::Result<()> {
    create_template(&env, "python", json!({})).await?;
    create_pool(&env, "warm", "python", 1, json!({})).await?;
    wait_full(&env, "warm", 1).await?;
    for replicas in ["3", "0"] {
        let output = kubectl::output(&[
            "-n",
            &env.namespace,
            "scale",
            "sandboxwarmpool/warm",
            &format!("--replicas={replicas}"),
        ])
        .await?;
        ensure!(
            output.status.success(),
            "kubectl scale failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        wait_full(&env, "warm", replicas.parse()?).await?;
    }
    Ok(())
}

/// A deleted member is replaced by a new one.
pub async fn replaces_deleted(env: TestEnv) -> anyhow::Result<()> {
    create_template(&env, "python", json!({})).await?;
    create_pool(&env, "warm", "python", 2, json!({})).await?;
    let before = names(&wait_full(&env, "warm", 2).await?);
    let victim = before.first().context("no member")?.clone();
    env.api::<Sandbox>()
        .delete(&victim, &DeleteParams::default())
        .await?;
    let after = wait_members(&env, "warm", "a replacement member", |members| {
        members.len() == 2
            && members.iter().all(super::is_ready)
            && !names(members).contains(&victim)
    })
    .await?;
    ensure!(
        names(&after).contains(&before[1]),
        "the other member was kept"
    );
    wait_for_object(
        &env.api::<SandboxWarmPool>(),
        "warm",
        "status readyReplicas = 2",
        TIMEOUT,
        |p: Option<&SandboxWarmPool>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.ready_replicas == 2 && s.replicas == 2)
        },
    )
    .await?;
    Ok(())
}

/// A Sandbox labelled for the pool (and its template) but controlled by nothing is adopted when its
/// blueprint matches the template, and deleted when it does not.
pub async fn adopts_matching_orphans(env: TestEnv) -> anyhow::Result<()> {
    create_template(&env, "python", json!({})).await?;
    create_pool(&env, "seed", "python", 1, json!({})).await?;
    let seed = wait_full(&env, "seed", 1).await?;
    let blueprint = seed.first().context("no seed member")?.spec.clone();
    let sandboxes = env.api::<Sandbox>();
    let mut orphans = Vec::new();
    for (name, image) in [("fresh", super::IMAGE), ("stale", super::IMAGE_V2)] {
        let mut orphan = Sandbox::new(name, blueprint.clone());
        orphan.metadata.labels = Some(
            [
                (labels::WARM_POOL_SANDBOX.to_owned(), name_hash("warm")),
                (
                    labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
                    name_hash("python"),
                ),
            ]
            .into(),
        );
        if let Some(container) = orphan
            .spec
            .blueprint
            .pod_template
            .spec
            .containers
            .first_mut()
        {
            container.image = Some(image.to_owned());
        }
        orphans.push(sandboxes.create(&Default::default(), &orphan).await?);
    }
    let pool = create_pool(&env, "warm", "python", 1, json!({})).await?;
    let uid = pool.metadata.uid.clone().context("pool uid")?;
    let adopted = |s: &Sandbox| {
        s.labels().get(labels::LAUNCH_TYPE).map(String::as_str) == Some("warm")
            && s.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == uid)
    };
    wait_members(&env, "warm", "the matching orphan adopted", |m| {
        names(m) == ["fresh"] && m.iter().all(adopted)
    })
    .await?;
    agent_sandbox_testkit::wait::wait_deleted(&sandboxes, &orphans[1], TIMEOUT).await
}
