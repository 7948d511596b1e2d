//! Sandbox controller scenarios (e2e-and-performance.md §2.1), shared by the suite that runs the controller
//! as cluster admin and the one that runs it as its own ServiceAccount.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_testkit::wait::{wait_deleted, wait_for_object};
use agent_sandbox_testkit::{TestEnv, kubectl};
use anyhow::{Context, bail, ensure};
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// Long enough for the controller, kwok and the API server on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn sandbox_manifest(name: &str, spec: Value) -> anyhow::Result<Sandbox> {
    let mut full = json!({
        "podTemplate": {"spec": {"containers": [{"name": "agent", "image": "registry.invalid/agent:1",
            "ports": [{"containerPort": 8888, "name": "http"}]}]}}
    });
    if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": full
    }))?)
}

/// `volumeClaimTemplates` of one 1 GiB ReadWriteOnce claim called `name`.
fn one_gib_claim(name: &str) -> Value {
    json!([{"metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
}

fn condition<'a>(
    sandbox: &'a Sandbox,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    sandbox
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// (status, reason) of a Sandbox condition.
pub fn cond(sandbox: &Sandbox, type_: &str) -> Option<(String, String)> {
    condition(sandbox, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn is_ready(sandbox: Option<&Sandbox>) -> bool {
    sandbox
        .and_then(|s| cond(s, "Ready"))
        .is_some_and(|(s, _)| s == "True")
}

pub fn ready_reason(reason: &'static str) -> impl Fn(Option<&Sandbox>) -> bool {
    move |s: Option<&Sandbox>| {
        s.and_then(|s| cond(s, "Ready"))
            .is_some_and(|(_, r)| r == reason)
    }
}

pub async fn create(env: &TestEnv, name: &str, spec: Value) -> anyhow::Result<Sandbox> {
    let api: Api<Sandbox> = env.api();
    api.create(&PostParams::default(), &sandbox_manifest(name, spec)?)
        .await
        .with_context(|| format!("creating Sandbox {name}"))
}

/// Creates Sandbox `name` with `spec` and waits until it is Ready.
pub async fn create_ready(env: &TestEnv, name: &str, spec: Value) -> anyhow::Result<Sandbox> {
    create(env, name, spec).await?;
    wait_ready(env, name).await
}

pub async fn wait_ready(env: &TestEnv, name: &str) -> anyhow::Result<Sandbox> {
    wait_for_object(
        &env.api::<Sandbox>(),
        name,
        "the Sandbox to be Ready",
        TIMEOUT,
        is_ready,
    )
    .await
}

fn owned_by(meta: &kube::api::ObjectMeta, sandbox: &Sandbox) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == sandbox.metadata.uid.as_ref())
}

/// A Ready Sandbox has its Pod (owned, labelled, with a stable hostname), a headless Service, a bound PVC
/// and a complete status.
pub async fn ready_with_children(env: TestEnv) -> anyhow::Result<()> {
    let name = "full";
    let sandbox = create_ready(
        &env,
        name,
        json!({"service": true, "volumeClaimTemplates": one_gib_claim("data")}),
    )
    .await?;
    let status = sandbox.status.clone().context("status")?;
    ensure!(
        status.service == name,
        "status.service = {:?}",
        status.service
    );
    ensure!(
        status.service_fqdn == format!("{name}.{}.svc.cluster.local", env.namespace),
        "{}",
        status.service_fqdn
    );
    ensure!(
        status.selector == format!("{}={}", labels::SANDBOX_NAME_HASH, name_hash(name)),
        "{}",
        status.selector
    );
    ensure!(!status.pod_ips.is_empty(), "podIPs empty");
    ensure!(
        status.node_name.starts_with("kwok-node-"),
        "nodeName = {:?}",
        status.node_name
    );
    ensure!(cond(&sandbox, "Suspended") == Some(("False".into(), "NotSuspended".into())));
    ensure!(cond(&sandbox, "Ready") == Some(("True".into(), "DependenciesReady".into())));

    let pod = env.api::<Pod>().get(name).await?;
    ensure!(
        owned_by(&pod.metadata, &sandbox),
        "pod not controlled by the Sandbox"
    );
    ensure!(pod.labels().get(labels::SANDBOX_NAME_HASH) == Some(&name_hash(name)));
    let spec = pod.spec.clone().context("pod spec")?;
    ensure!(
        spec.hostname.as_deref() == Some(name) && spec.subdomain.as_deref() == Some(name),
        "hostname/subdomain"
    );
    let claim = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim.clone());
    ensure!(
        claim.map(|c| c.claim_name) == Some(format!("data-{name}")),
        "PVC volume"
    );

    let service = env.api::<Service>().get(name).await?;
    ensure!(
        owned_by(&service.metadata, &sandbox),
        "service not controlled by the Sandbox"
    );
    let service_spec = service.spec.context("service spec")?;
    ensure!(
        service_spec.cluster_ip.as_deref() == Some("None"),
        "not headless"
    );
    let ports: Vec<_> = service_spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.port))
        .collect();
    ensure!(
        ports == vec![(Some("http".to_owned()), 8888)],
        "ports {ports:?}"
    );

    let pvcs: Api<PersistentVolumeClaim> = env.api();
    let pvc = wait_for_object(
        &pvcs,
        &format!("data-{name}"),
        "the PVC to be Bound",
        TIMEOUT,
        |p: Option<&PersistentVolumeClaim>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await?;
    ensure!(
        owned_by(&pvc.metadata, &sandbox),
        "PVC not controlled by the Sandbox"
    );
    Ok(())
}

/// `spec.volumeClaimTemplates` cannot change once set (the CEL rule), and the message says so.
pub async fn volume_claim_templates_are_immutable(env: TestEnv) -> anyhow::Result<()> {
    let name = "vct";
    create_ready(
        &env,
        name,
        json!({"volumeClaimTemplates": one_gib_claim("data")}),
    )
    .await?;
    let changed = env
        .patch_spec::<Sandbox>(
            name,
            json!({"volumeClaimTemplates": one_gib_claim("other")}),
        )
        .await;
    match changed {
        Ok(_) => bail!("changing volumeClaimTemplates was accepted"),
        Err(e) => ensure!(
            format!("{e:#}").contains("volumeClaimTemplates is immutable"),
            "unexpected error: {e:#}"
        ),
    }
    Ok(())
}

/// Suspend deletes the Pod and keeps the PVC; resume makes a new Pod on the same PVC. Twice.
pub async fn suspend_resume_cycles(env: TestEnv) -> anyhow::Result<()> {
    let name = "cycle";
    create_ready(
        &env,
        name,
        json!({"volumeClaimTemplates": one_gib_claim("data")}),
    )
    .await?;
    let sandboxes: Api<Sandbox> = env.api();
    let pods: Api<Pod> = env.api();
    let mut seen_pods = BTreeSet::new();
    for round in 0..2 {
        let pod = pods.get(name).await?;
        seen_pods.insert(pod.uid().context("pod uid")?);
        env.patch_spec::<Sandbox>(name, json!({"operatingMode": "Suspended"}))
            .await?;
        let suspended = wait_for_object(
            &sandboxes,
            name,
            "Suspended=True/PodTerminated",
            TIMEOUT,
            |s: Option<&Sandbox>| {
                s.and_then(|s| cond(s, "Suspended"))
                    == Some(("True".into(), "PodTerminated".into()))
            },
        )
        .await?;
        ensure!(
            cond(&suspended, "Ready") == Some(("False".into(), "SandboxSuspended".into())),
            "round {round}: Ready while suspended"
        );
        ensure!(
            suspended
                .status
                .as_ref()
                .is_some_and(|s| s.pod_ips.is_empty()),
            "round {round}: podIPs kept"
        );
        ensure!(
            pods.get_opt(name).await?.is_none(),
            "round {round}: pod still there"
        );
        ensure!(
            env.api::<PersistentVolumeClaim>()
                .get_opt(&format!("data-{name}"))
                .await?
                .is_some(),
            "PVC deleted on suspend"
        );

        env.patch_spec::<Sandbox>(name, json!({"operatingMode": "Running"}))
            .await?;
        let resumed = wait_ready(&env, name).await?;
        ensure!(
            cond(&resumed, "Suspended") == Some(("False".into(), "NotSuspended".into())),
            "round {round}: not resumed"
        );
    }
    let pod = pods.get(name).await?;
    ensure!(
        !seen_pods.contains(&pod.uid().context("pod uid")?),
        "resume made no new pod"
    );
    Ok(())
}

/// A Pod deleted behind the controller's back is re-created.
pub async fn deleted_pod_is_recreated(env: TestEnv) -> anyhow::Result<()> {
    let name = "phoenix";
    create_ready(&env, name, json!({})).await?;
    let pods: Api<Pod> = env.api();
    let first = pods.get(name).await?;
    pods.delete(name, &DeleteParams::default()).await?;
    wait_deleted(&pods, &first, TIMEOUT).await?;
    let first_uid = first.uid();
    wait_for_object(&pods, name, "a new pod", TIMEOUT, move |p: Option<&Pod>| {
        p.is_some_and(|p| p.uid() != first_uid)
    })
    .await?;
    wait_ready(&env, name).await?;
    Ok(())
}

/// A suspended Sandbox never deletes a Pod it does not own: Suspended=False/PodNotOwned, Pod kept.
pub async fn refuses_to_suspend_an_unowned_pod(env: TestEnv) -> anyhow::Result<()> {
    let name = "squatter";
    let pods: Api<Pod> = env.api();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/other:1"}]}
    }))?;
    let pod = pods.create(&PostParams::default(), &pod).await?;
    create(&env, name, json!({"operatingMode": "Suspended"})).await?;
    wait_for_object(
        &env.api::<Sandbox>(),
        name,
        "Suspended=False/PodNotOwned",
        TIMEOUT,
        |s: Option<&Sandbox>| {
            s.and_then(|s| cond(s, "Suspended")) == Some(("False".into(), "PodNotOwned".into()))
        },
    )
    .await?;
    let still = pods.get(name).await?;
    ensure!(
        still.uid() == pod.uid() && still.metadata.deletion_timestamp.is_none(),
        "the unowned pod was touched"
    );
    Ok(())
}

/// `shutdownTime` in the near future, whole seconds (the API stores second precision).
fn seconds_from_now(seconds: u64) -> anyhow::Result<(SystemTime, String)> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let at = now + seconds + 1;
    let text = k8s_openapi::jiff::Timestamp::from_second(i64::try_from(at)?)?.to_string();
    Ok((SystemTime::UNIX_EPOCH + Duration::from_secs(at), text))
}

/// Expiry with Retain: nothing happens before `shutdownTime`; then the Pod and Service go, the Sandbox stays
/// with Ready=False/SandboxExpired and a status cleared down to its conditions.
pub async fn expiry_retain_is_never_early(env: TestEnv) -> anyhow::Result<()> {
    let name = "retained";
    let (deadline, at) = seconds_from_now(6)?;
    create(
        &env,
        name,
        json!({"service": true, "shutdownTime": at, "shutdownPolicy": "Retain"}),
    )
    .await?;
    let sandboxes: Api<Sandbox> = env.api();
    wait_ready(&env, name).await?;
    ensure!(
        SystemTime::now() < deadline,
        "the Sandbox took too long to become Ready for this test"
    );
    let pod = env.api::<Pod>().get(name).await?;
    let expired = wait_for_object(
        &sandboxes,
        name,
        "Ready reason SandboxExpired",
        TIMEOUT,
        ready_reason("SandboxExpired"),
    )
    .await?;
    ensure!(SystemTime::now() >= deadline, "expired before shutdownTime");
    let changed = condition(&expired, "Ready")
        .context("Ready")?
        .last_transition_time
        .0
        .as_second();
    ensure!(
        u64::try_from(changed)? >= deadline.duration_since(SystemTime::UNIX_EPOCH)?.as_secs(),
        "transition before shutdownTime"
    );
    wait_deleted(&env.api::<Pod>(), &pod, TIMEOUT).await?;
    let cleared = wait_for_object(
        &sandboxes,
        name,
        "the status cleared to conditions only",
        TIMEOUT,
        |s: Option<&Sandbox>| {
            s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
                st.selector.is_empty() && st.service.is_empty() && st.pod_ips.is_empty()
            })
        },
    )
    .await?;
    ensure!(cond(&cleared, "Ready") == Some(("False".into(), "SandboxExpired".into())));
    ensure!(
        env.api::<Service>().get_opt(name).await?.is_none(),
        "service kept after expiry"
    );
    Ok(())
}

/// Expiry with Delete: the Sandbox itself is deleted, not before `shutdownTime`.
pub async fn expiry_delete_is_never_early(env: TestEnv) -> anyhow::Result<()> {
    let name = "doomed";
    let (deadline, at) = seconds_from_now(6)?;
    let created = create(
        &env,
        name,
        json!({"shutdownTime": at, "shutdownPolicy": "Delete"}),
    )
    .await?;
    wait_ready(&env, name).await?;
    wait_deleted(&env.api::<Sandbox>(), &created, TIMEOUT).await?;
    ensure!(SystemTime::now() >= deadline, "deleted before shutdownTime");
    Ok(())
}

/// Twenty Sandboxes created at once all become Ready.
pub async fn twenty_in_parallel(env: TestEnv) -> anyhow::Result<()> {
    let names: Vec<String> = (0..20).map(|i| format!("many-{i}")).collect();
    try_join_all(names.iter().map(|n| create(&env, n, json!({})))).await?;
    try_join_all(names.iter().map(|n| wait_ready(&env, n))).await?;
    let pods = env.api::<Pod>().list(&Default::default()).await?;
    ensure!(
        pods.items.len() == 20,
        "{} pods for 20 Sandboxes",
        pods.items.len()
    );
    Ok(())
}

/// `kubectl wait --for=condition=Ready sandbox/<name>` works against our status.
pub async fn kubectl_wait_works(env: TestEnv) -> anyhow::Result<()> {
    let name = "waited";
    create(&env, name, json!({})).await?;
    let output = kubectl::output(&[
        "wait",
        "--for=condition=Ready",
        &format!("sandbox/{name}"),
        "-n",
        &env.namespace,
        "--timeout=60s",
    ])
    .await?;
    ensure!(
        output.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&output.stdout).contains("condition met"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(())
}

/// Waits until Sandbox `name` reports `Ready=False/InvalidConfiguration` with a message containing
/// `expected`, then checks that no Pod exists and that a Warning event with that reason was published.
async fn invalid_configuration_is_reported(
    env: &TestEnv,
    name: &str,
    expected: &str,
) -> anyhow::Result<()> {
    let reported = wait_for_object(
        &env.api::<Sandbox>(),
        name,
        "Ready=False/InvalidConfiguration",
        TIMEOUT,
        ready_reason("InvalidConfiguration"),
    )
    .await?;
    let ready = condition(&reported, "Ready").context("Ready")?;
    ensure!(
        ready.status == "False" && ready.message.contains(expected),
        "{ready:?}"
    );
    ensure!(
        env.api::<Pod>().get_opt(name).await?.is_none(),
        "a pod was created from an invalid configuration"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let is_it = |e: &k8s_openapi::api::events::v1::Event| {
        e.reason.as_deref() == Some("InvalidConfiguration")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
    };
    // Events are written asynchronously by the controller's recorder: watch for it.
    let mut stream = std::pin::pin!(kube::runtime::watcher(events.clone(), Default::default()));
    let found = tokio::time::timeout(TIMEOUT, async {
        use futures::TryStreamExt;
        if events
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(is_it)
        {
            return anyhow::Ok(());
        }
        while let Some(event) = stream.try_next().await? {
            if let kube::runtime::watcher::Event::Apply(e)
            | kube::runtime::watcher::Event::InitApply(e) = event
                && is_it(&e)
            {
                return Ok(());
            }
        }
        bail!("the event watch ended")
    })
    .await;
    ensure!(
        matches!(found, Ok(Ok(()))),
        "no InvalidConfiguration event for {name}: {found:?}"
    );
    Ok(())
}

/// A pod template without containers is reported on the Sandbox (InvalidConfiguration condition and
/// Warning event) instead of failing Pod creation over and over.
pub async fn invalid_spec_is_reported(env: TestEnv) -> anyhow::Result<()> {
    let name = "empty";
    let sandbox: Sandbox = serde_json::from_value(json!({
        "apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox", "metadata": {"name": name},
        "spec": {"podTemplate": {"spec": {"containers": []}}}
    }))?;
    env.api::<Sandbox>()
        .create(&PostParams::default(), &sandbox)
        .await?;
    invalid_configuration_is_reported(
        &env,
        name,
        "invalid spec: spec.podTemplate: spec.containers must list at least one container",
    )
    .await
}

/// A Sandbox that wants a Service but whose name (the Service's) is longer than 63 characters:
/// InvalidConfiguration naming the field, and neither Service nor Pod.
pub async fn long_service_name_is_an_invalid_configuration(env: TestEnv) -> anyhow::Result<()> {
    let name = "s".repeat(64);
    env.api::<Sandbox>()
        .create(
            &PostParams::default(),
            &sandbox_manifest(&name, json!({"service": true}))?,
        )
        .await?;
    invalid_configuration_is_reported(&env, &name, "metadata.name, is 64 characters long").await?;
    ensure!(
        env.api::<Service>()
            .list(&Default::default())
            .await?
            .items
            .is_empty(),
        "no Service"
    );
    Ok(())
}

/// A Pod the API server rejects as invalid (a container without an image, which the Sandbox schema
/// allows): InvalidConfiguration with the API server's message, not a retry loop.
pub async fn rejected_pod_is_an_invalid_configuration(env: TestEnv) -> anyhow::Result<()> {
    let name = "no-image";
    env.api::<Sandbox>()
        .create(
            &PostParams::default(),
            &sandbox_manifest(
                name,
                json!({"podTemplate": {"spec": {"containers": [{"name": "agent"}]}}}),
            )?,
        )
        .await?;
    invalid_configuration_is_reported(&env, name, "failed to create pod: ").await?;
    let ready = env
        .api::<Sandbox>()
        .get(name)
        .await
        .map(|s| condition(&s, "Ready").map(|c| c.message.clone()))?;
    ensure!(
        ready.as_deref().is_some_and(|m| m.contains("image")),
        "the API server's message names the field: {ready:?}"
    );
    Ok(())
}

/// A volume claim template naming a StorageClass that does not exist leaves a clear, mirrored scheduling
/// condition (the PVC cannot bind) and no crash loop.
pub async fn missing_storage_class_is_reported(env: TestEnv) -> anyhow::Result<()> {
    let name = "nostorage";
    create(&env, name, json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"storageClassName": "does-not-exist", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}))
        .await?;
    let sandbox = wait_for_object(
        &env.api::<Sandbox>(),
        name,
        "PodScheduled=False mirrored from the pod",
        TIMEOUT,
        |s: Option<&Sandbox>| {
            s.and_then(|s| cond(s, "PodScheduled"))
                .is_some_and(|(status, _)| status == "False")
        },
    )
    .await?;
    let scheduled = condition(&sandbox, "PodScheduled").context("PodScheduled")?;
    ensure!(
        scheduled.message.contains("PersistentVolumeClaim")
            || scheduled.message.contains("persistentvolumeclaim"),
        "{scheduled:?}"
    );
    ensure!(
        cond(&sandbox, "Ready") == Some(("False".into(), "DependenciesNotReady".into())),
        "{:?}",
        cond(&sandbox, "Ready")
    );
    Ok(())
}

/// A Pod that finishes (kwok drives it to Succeeded or Failed on request) shows as Finished and not Ready,
/// and is not replaced.
pub async fn finished_pods_are_reported(env: TestEnv) -> anyhow::Result<()> {
    for (name, phase, reason) in [
        ("done", "Succeeded", "PodSucceeded"),
        ("crashed", "Failed", "PodFailed"),
    ] {
        create_ready(&env, name, json!({})).await?;
        let pods: Api<Pod> = env.api();
        let pod = pods.get(name).await?;
        let finish =
            json!({"metadata": {"annotations": {agent_sandbox_testkit::FINISH_ANNOTATION: phase}}});
        pods.patch(name, &PatchParams::default(), &Patch::Merge(finish))
            .await?;
        let finished = wait_for_object(
            &env.api::<Sandbox>(),
            name,
            "Finished=True",
            TIMEOUT,
            move |s: Option<&Sandbox>| {
                s.and_then(|s| cond(s, "Finished")) == Some(("True".into(), reason.into()))
            },
        )
        .await?;
        ensure!(
            cond(&finished, "Ready") == Some(("False".into(), reason.into())),
            "{name}: {:?}",
            cond(&finished, "Ready")
        );
        let still = pods.get(name).await?;
        ensure!(
            still.uid() == pod.uid(),
            "{name}: a finished pod was replaced"
        );
    }
    Ok(())
}

/// A scenario future, boxed: a dozen of them joined inline would overflow a test thread's stack.
type Scenario<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Runs every scenario at once, each in its own namespace (`<prefix>-…`); the results in order.
pub async fn run_all(prefix: &str) -> Vec<anyhow::Result<()>> {
    let ns = |name: &str| format!("{prefix}-{name}");
    let scenarios: Vec<Scenario> = vec![
        Box::pin(async move { TestEnv::run(&ns("children"), ready_with_children).await }),
        Box::pin(
            async move { TestEnv::run(&ns("vct"), volume_claim_templates_are_immutable).await },
        ),
        Box::pin(async move { TestEnv::run(&ns("cycle"), suspend_resume_cycles).await }),
        Box::pin(async move { TestEnv::run(&ns("recreate"), deleted_pod_is_recreated).await }),
        Box::pin(
            async move { TestEnv::run(&ns("unowned"), refuses_to_suspend_an_unowned_pod).await },
        ),
        Box::pin(async move { TestEnv::run(&ns("retain"), expiry_retain_is_never_early).await }),
        Box::pin(async move { TestEnv::run(&ns("delete"), expiry_delete_is_never_early).await }),
        Box::pin(async move { TestEnv::run(&ns("twenty"), twenty_in_parallel).await }),
        Box::pin(async move { TestEnv::run(&ns("kubectl"), kubectl_wait_works).await }),
        Box::pin(async move { TestEnv::run(&ns("invalid"), invalid_spec_is_reported).await }),
        Box::pin(async move {
            TestEnv::run(
                &ns("longname"),
                long_service_name_is_an_invalid_configuration,
            )
            .await
        }),
        Box::pin(async move {
            TestEnv::run(&ns("rejected"), rejected_pod_is_an_invalid_configuration).await
        }),
        Box::pin(
            async move { TestEnv::run(&ns("nostorage"), missing_storage_class_is_reported).await },
        ),
        Box::pin(async move { TestEnv::run(&ns("finished"), finished_pods_are_reported).await }),
    ];
    futures::future::join_all(scenarios).await
}
