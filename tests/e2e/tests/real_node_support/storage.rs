//! A Sandbox's volume claim on real storage (hostPath PVs bind-mounted into the container): data
//! outlives the Pod across suspend and resume, and expiry with `Delete` removes Pod and claim.

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_testkit::TestEnv;
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{
    TIMEOUT, busybox_sleeper, create_sandbox, ensure_on_real_node, exec_ok, in_seconds, pair,
    pod_template, sandbox_cond, sandbox_pod, wait_sandbox, wait_sandbox_ready,
};

/// Where the claim is mounted in the container.
const MOUNT: &str = "/data";

/// A gVisor pod template whose container mounts the volume `data` (the claim) at [`MOUNT`].
fn with_data_volume() -> Value {
    let mut sleeper = busybox_sleeper();
    sleeper["volumeMounts"] = json!([{"name": "data", "mountPath": MOUNT}]);
    pod_template("gvisor", json!([sleeper]), json!({}))
}

/// One volume claim template `data` of the default StorageClass.
fn data_claim() -> Value {
    json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]})
}

/// Waits until the Sandbox's claim `data-<sandbox>` is Bound.
async fn wait_bound(env: &TestEnv, sandbox: &str) -> anyhow::Result<PersistentVolumeClaim> {
    wait_for_object(
        &env.api::<PersistentVolumeClaim>(),
        &format!("data-{sandbox}"),
        "the Sandbox's PVC to be Bound",
        TIMEOUT,
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await
}

/// A file written on the mounted PVC survives suspension: the Pod is deleted (the claim stays, the
/// same object), and on resume a new Pod (another UID) reads the same content.
pub async fn pvc_data_survives_suspend_and_resume(env: TestEnv) -> anyhow::Result<()> {
    let name = "keeper";
    create_sandbox(&env, name, with_data_volume(), data_claim()).await?;
    let sandbox = wait_sandbox_ready(&env, name).await?;
    let pvc = wait_bound(&env, name).await?;
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "gvisor")?;
    let first_uid = pod.uid().context("pod uid")?;
    let proof = format!("written in {} by Pod {first_uid}", env.namespace);
    let file = format!("{MOUNT}/proof");
    let written = exec_ok(
        &env,
        &pod.name_any(),
        &[
            "sh",
            "-c",
            r#"printf '%s' "$1" > "$2" && sync && cat "$2""#,
            "sh",
            &proof,
            &file,
        ],
    )
    .await?;
    ensure!(
        written == proof,
        "read back {written:?} right after writing"
    );

    env.patch_spec::<Sandbox>(name, json!({"operatingMode": "Suspended"}))
        .await?;
    wait_deleted(&env.api::<Pod>(), &pod, TIMEOUT).await?;
    let suspended = wait_sandbox(&env, name, "Suspended=True/PodTerminated", |s| {
        sandbox_cond(s, "Suspended") == pair("True", "PodTerminated")
    })
    .await?;
    ensure!(
        sandbox_cond(&suspended, "Ready") == pair("False", "SandboxSuspended"),
        "Ready while suspended: {:?}",
        sandbox_cond(&suspended, "Ready")
    );
    let kept = env
        .api::<PersistentVolumeClaim>()
        .get_opt(&pvc.name_any())
        .await?
        .context("the PVC was deleted on suspend")?;
    ensure!(
        kept.uid() == pvc.uid() && kept.metadata.deletion_timestamp.is_none(),
        "the PVC was replaced or is being deleted while suspended"
    );

    env.patch_spec::<Sandbox>(name, json!({"operatingMode": "Running"}))
        .await?;
    let resumed = wait_sandbox_ready(&env, name).await?;
    let new_pod = sandbox_pod(&env, &resumed).await?;
    ensure!(
        new_pod.uid().as_deref() != Some(first_uid.as_str()),
        "resume kept the old Pod {first_uid}"
    );
    ensure_on_real_node(&new_pod, "gvisor")?;
    let read = exec_ok(&env, &new_pod.name_any(), &["cat", &file]).await?;
    ensure!(
        read == proof,
        "the resumed Pod reads {read:?} from {file}, {proof:?} was written"
    );
    let still = env
        .api::<PersistentVolumeClaim>()
        .get(&pvc.name_any())
        .await?;
    ensure!(
        still.uid() == pvc.uid(),
        "the PVC was replaced across suspend and resume"
    );
    Ok(())
}

/// `shutdownTime` a few seconds ahead with `shutdownPolicy: Delete` on a Ready Sandbox whose Pod
/// uses its PVC: not before that instant the Sandbox is deleted, and its real Pod and its PVC go
/// with it. The shutdownTime is set once the Sandbox is Ready, so the test does not race the start.
pub async fn shutdown_delete_removes_pod_and_pvc(env: TestEnv) -> anyhow::Result<()> {
    let name = "doomed";
    create_sandbox(&env, name, with_data_volume(), data_claim()).await?;
    let sandbox = wait_sandbox_ready(&env, name).await?;
    let pvc = wait_bound(&env, name).await?;
    let pod = sandbox_pod(&env, &sandbox).await?;
    ensure_on_real_node(&pod, "gvisor")?;
    // The claim is really in use: the container writes to it.
    exec_ok(
        &env,
        &pod.name_any(),
        &["sh", "-c", &format!("echo in use > {MOUNT}/marker")],
    )
    .await?;

    let at = in_seconds(3)?;
    env.patch_spec::<Sandbox>(
        name,
        json!({"shutdownTime": at, "shutdownPolicy": "Delete"}),
    )
    .await?;
    wait_deleted(&env.api::<Sandbox>(), &sandbox, TIMEOUT).await?;
    ensure!(
        Timestamp::now() >= at.parse::<Timestamp>()?,
        "the Sandbox was deleted before its shutdownTime {at}"
    );
    wait_deleted(&env.api::<Pod>(), &pod, TIMEOUT).await?;
    wait_deleted(&env.api::<PersistentVolumeClaim>(), &pvc, TIMEOUT).await?;
    Ok(())
}
