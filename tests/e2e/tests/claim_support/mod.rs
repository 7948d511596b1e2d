//! Claim scenarios and their helpers.

pub mod cold;
pub mod warm;

use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::fixtures;
use agent_sandbox_testkit::wait::wait_for_object;
use anyhow::Context;
use kube::api::PostParams;
use serde_json::Value;

/// A scenario future, boxed so a list of them has one type.
pub type Scenario = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Long enough for a cold start on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The claim's Ready (status, reason).
pub fn ready(claim: &SandboxClaim) -> Option<(String, String)> {
    claim
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub use agent_sandbox_testkit::fixtures::bound;

/// Creates template `tpl` and pool `pool` of `replicas` from it.
pub async fn template_and_pool(
    env: &TestEnv,
    template_extra: Value,
    pool: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    env.api()
        .create(
            &PostParams::default(),
            &fixtures::template("tpl", template_extra)?,
        )
        .await
        .context("creating the template")?;
    env.api()
        .create(
            &PostParams::default(),
            &fixtures::warm_pool(pool, "tpl", replicas, serde_json::json!({}))?,
        )
        .await
        .context("creating the pool")?;
    Ok(())
}

/// Creates a claim.
pub async fn create_claim(
    env: &TestEnv,
    name: &str,
    pool: &str,
    extra: Value,
) -> anyhow::Result<SandboxClaim> {
    env.create(&fixtures::claim(name, pool, extra)?).await
}

/// Waits until the claim is Ready and bound; returns it.
pub async fn wait_claim_ready(env: &TestEnv, name: &str) -> anyhow::Result<SandboxClaim> {
    wait_for_object(
        &env.api::<SandboxClaim>(),
        name,
        "the claim to be Ready and bound",
        TIMEOUT,
        |c: Option<&SandboxClaim>| {
            c.is_some_and(|c| ready(c).is_some_and(|(s, _)| s == "True") && bound(c).is_some())
        },
    )
    .await
}

/// The controller UID of a Sandbox.
pub fn controller_uid(sandbox: &Sandbox) -> Option<String> {
    sandbox
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}
