//! A container that really exits (no kwok annotation: the kubelet reports the Pod's end) finishes
//! its Sandbox and its claim, and a claim's `ttlSecondsAfterFinished` counts from that end.

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use agent_sandbox_testkit::{FINISH_ANNOTATION, TestEnv, fixtures};
use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{
    BUSYBOX, TIMEOUT, bound, claim_cond, claim_condition, container, create_pool, create_sandbox,
    create_template, ensure_on_real_node, pair, pod_template, sandbox_cond, wait_claim,
    wait_sandbox,
};

/// How long after finishing the claim `done` expires.
const TTL_SECONDS: i32 = 5;

/// A gVisor pod template whose only container exits with `code` at once and is never restarted.
fn exits_with(code: u8) -> Value {
    pod_template(
        "gvisor",
        json!([container(BUSYBOX, &["sh", "-c", &format!("exit {code}")])]),
        json!({"restartPolicy": "Never"}),
    )
}

/// The phase a container exiting with `code` leaves its Pod in, and the reason the Sandbox reports.
fn outcome(code: u8) -> (&'static str, &'static str) {
    if code == 0 {
        ("Succeeded", "PodSucceeded")
    } else {
        ("Failed", "PodFailed")
    }
}

/// The exit code of the Pod's terminated container `main`.
fn exit_code(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == super::CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// Waits until Pod `name` ends in `phase`, and checks that it was the real container's exit: the
/// kubelet on the real node reports the exit code, and no kwok finish annotation is on the Pod.
async fn wait_pod_ended(env: &TestEnv, name: &str, code: u8) -> anyhow::Result<Pod> {
    let (phase, _) = outcome(code);
    let pod = wait_for_object(
        &env.api::<Pod>(),
        name,
        &format!("the Pod to end {phase}"),
        TIMEOUT,
        move |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some(phase)
        },
    )
    .await?;
    ensure_on_real_node(&pod, "gvisor")?;
    ensure!(
        exit_code(&pod) == Some(i32::from(code)),
        "Pod {name}: container exit code {:?}, the command exits {code}",
        exit_code(&pod)
    );
    ensure!(
        !pod.annotations().contains_key(FINISH_ANNOTATION),
        "Pod {name} carries the kwok finish annotation"
    );
    Ok(pod)
}

/// A Sandbox whose container exits with `code`: Finished=True and Ready=False with PodSucceeded or
/// PodFailed, and the finished Pod is kept, not replaced.
async fn sandbox_finishes(env: &TestEnv, code: u8) -> anyhow::Result<()> {
    let name = format!("exit-{code}");
    let (_, reason) = outcome(code);
    create_sandbox(env, &name, exits_with(code), json!({})).await?;
    let pod = wait_pod_ended(env, &name, code).await?;
    let finished = wait_sandbox(env, &name, &format!("Finished=True/{reason}"), move |s| {
        sandbox_cond(s, "Finished") == pair("True", reason)
    })
    .await?;
    ensure!(
        sandbox_cond(&finished, "Ready") == pair("False", reason),
        "{name}: Ready {:?}",
        sandbox_cond(&finished, "Ready")
    );
    let still = env.api::<Pod>().get(&name).await?;
    ensure!(
        still.uid() == pod.uid() && still.metadata.deletion_timestamp.is_none(),
        "{name}: the finished Pod was replaced or deleted"
    );
    Ok(())
}

/// The bound Sandbox of a claim, as soon as the claim names it.
async fn bound_sandbox(env: &TestEnv, claim: &str) -> anyhow::Result<Sandbox> {
    let claimed = wait_claim(env, claim, "the claim to be bound", |c| bound(c).is_some()).await?;
    let name = bound(&claimed).context("bound")?;
    env.api::<Sandbox>()
        .get(&name)
        .await
        .with_context(|| format!("reading claim {claim}'s Sandbox {name}"))
}

/// A claim whose Sandbox's container exits 0, with `ttlSecondsAfterFinished`: the claim mirrors
/// Finished=True/PodSucceeded, then expires (Ready=False/ClaimExpired) no earlier than the TTL after
/// that transition; its Sandbox is deleted and, by the default Retain policy, the claim is kept with
/// its Finished condition.
async fn claim_expires_after_success(env: &TestEnv) -> anyhow::Result<()> {
    create_template(env, "exit-zero", exits_with(0)).await?;
    create_pool(env, "zero", "exit-zero", 0).await?;
    env.create(&fixtures::claim(
        "done",
        "zero",
        json!({"lifecycle": {"ttlSecondsAfterFinished": TTL_SECONDS}}),
    )?)
    .await?;
    let sandbox = bound_sandbox(env, "done").await?;
    wait_pod_ended(env, &sandbox.name_any(), 0).await?;
    let finished = wait_claim(env, "done", "Finished=True/PodSucceeded", |c| {
        claim_cond(c, "Finished") == pair("True", "PodSucceeded")
    })
    .await?;
    // Ready's lastTransitionTime does not mark the expiry (Ready was False already, so it keeps the
    // time it turned False); what must hold is that the claim is not expired before its TTL ran out.
    let finished_at = claim_condition(&finished, "Finished")
        .context("Finished")?
        .last_transition_time
        .0;
    let ttl_ends = finished_at + std::time::Duration::from_secs(TTL_SECONDS.unsigned_abs().into());
    let seen_at = k8s_openapi::jiff::Timestamp::now();
    ensure!(
        seen_at >= ttl_ends || claim_cond(&finished, "Ready") != pair("False", "ClaimExpired"),
        "claim expired at or before {seen_at}, less than {TTL_SECONDS}s after it finished at {finished_at}"
    );
    let expired = wait_claim(env, "done", "Ready=False/ClaimExpired", |c| {
        claim_cond(c, "Ready") == pair("False", "ClaimExpired")
    })
    .await?;
    let finished = claim_condition(&expired, "Finished").context("Finished kept on expiry")?;
    ensure!(
        (finished.status.as_str(), finished.reason.as_str()) == ("True", "PodSucceeded"),
        "claim Finished {finished:?}"
    );
    wait_deleted(&env.api::<Sandbox>(), &sandbox, TIMEOUT).await?;
    ensure!(
        env.api::<SandboxClaim>().get_opt("done").await?.is_some(),
        "Retain deleted the claim"
    );
    Ok(())
}

/// A claim whose Sandbox's container exits 1 (no lifecycle): the claim mirrors Finished=True/PodFailed
/// and Ready=False/PodFailed, and its Sandbox stays, Finished too.
async fn claim_reports_failure(env: &TestEnv) -> anyhow::Result<()> {
    create_template(env, "exit-one", exits_with(1)).await?;
    create_pool(env, "one", "exit-one", 0).await?;
    env.create(&fixtures::claim("crashed", "one", json!({}))?)
        .await?;
    let sandbox = bound_sandbox(env, "crashed").await?;
    wait_pod_ended(env, &sandbox.name_any(), 1).await?;
    wait_claim(
        env,
        "crashed",
        "Finished=True/PodFailed and Ready=False/PodFailed",
        |c| {
            claim_cond(c, "Finished") == pair("True", "PodFailed")
                && claim_cond(c, "Ready") == pair("False", "PodFailed")
        },
    )
    .await?;
    let kept = env.api::<Sandbox>().get(&sandbox.name_any()).await?;
    ensure!(
        kept.uid() == sandbox.uid() && sandbox_cond(&kept, "Finished") == pair("True", "PodFailed"),
        "the failed claim's Sandbox: Finished {:?}",
        sandbox_cond(&kept, "Finished")
    );
    Ok(())
}

/// Containers that exit by themselves with 0 and with 1, under a Sandbox and under a claim each:
/// the conditions the kwok suites get from the finish annotation, here from real exits.
pub async fn pod_exit_drives_sandbox_and_claim_conditions(env: TestEnv) -> anyhow::Result<()> {
    futures::try_join!(
        sandbox_finishes(&env, 0),
        sandbox_finishes(&env, 1),
        claim_expires_after_success(&env),
        claim_reports_failure(&env),
    )?;
    Ok(())
}
