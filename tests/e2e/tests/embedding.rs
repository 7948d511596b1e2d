//! The embedding examples, run like their users would: `examples/embedded-operator` (an operator of
//! its own running our Sandbox and claim controllers beside its own controller, sharing one client,
//! metrics registry, leader election and shutdown) and `examples/sandbox-planner` (our pure core with
//! a client of its own, printing plans and writing nothing). On the kwok nodes; one scenario at a
//! time, since the operator's controllers act on every namespace.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use agent_sandbox_testkit::process::{Process, binary, log_path, tail_of};
use agent_sandbox_testkit::wait::wait_for_object;
use agent_sandbox_testkit::{TestEnv, cluster, crds, fixtures};
use anyhow::{Context, bail, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const OPERATOR: &str = "embedded-operator";
const PLANNER: &str = "sandbox-planner";
/// The label the operator's own controller puts on Ready claims.
const SEEN_BY: &str = "operator.example.com/seen-by";
/// Claims, pools and Sandboxes on kwok nodes are Ready in seconds; a loaded machine gets slack.
const TIMEOUT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_operator_of_its_own_runs_our_controllers_beside_its_own() -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    crds::install(&cluster::client().await?).await?;
    TestEnv::run("embedded", |env| async move {
        let log = log_path(OPERATOR)?;
        let out = std::fs::File::create(&log)?;
        let child = Command::new(binary("AGENT_SANDBOX_EMBEDDED_OPERATOR_BIN", OPERATOR)?)
            .args(["--lease-namespace", &env.namespace])
            .args(["--metrics", "127.0.0.1:0", "--probes", "127.0.0.1:0"])
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .env("NO_COLOR", "1")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the embedded operator")?;
        let mut operator = Process::new("embedded operator", child, log.clone());
        let result = exercise(&env, &log).await;
        let running = operator.ensure_running();
        // One shutdown: SIGTERM stops both controllers and exits 0 (stop() checks the status).
        let stopped = operator.stop().await;
        if result.is_err() || running.is_err() || stopped.is_err() {
            eprintln!("embedded operator log (tail):\n{}", operator.tail(40));
        }
        result.and(running).and(stopped)?;
        let lease = env.api::<Lease>().get(OPERATOR).await?;
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        ensure!(
            holder.is_empty(),
            "the operator left the Lease held by {holder:?} after its shutdown"
        );
        Ok(())
    })
    .await
}

/// While the operator runs: it holds its Lease, our controllers serve a warm claim, its own
/// controller labels the Ready claim, and one `/metrics` serves both kinds of metrics.
async fn exercise(env: &TestEnv, log: &PathBuf) -> anyhow::Result<()> {
    let metrics = served_address(log, "metrics_address").await?;
    wait_for_object(
        &env.api::<Lease>(),
        OPERATOR,
        "the operator to hold its Lease",
        TIMEOUT,
        |lease: Option<&Lease>| {
            lease
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_ref())
                .is_some_and(|h| !h.is_empty())
        },
    )
    .await?;
    env.create(&fixtures::template("agents", json!({}))?)
        .await?;
    env.create(&fixtures::warm_pool("agents", "agents", 1, json!({}))?)
        .await?;
    env.create(&fixtures::claim("task", "agents", json!({}))?)
        .await?;
    let claim = wait_for_object(
        &env.api::<SandboxClaim>(),
        "task",
        "our controllers to bind the claim and the operator's to label it",
        TIMEOUT,
        |claim: Option<&SandboxClaim>| {
            claim.is_some_and(|c| fixtures::bound(c).is_some() && c.labels().contains_key(SEEN_BY))
        },
    )
    .await?;
    ensure!(
        fixtures::bound(&claim).is_some(),
        "the claim is labelled but bound to no Sandbox"
    );
    let text = http_get(&metrics, "/metrics").await?;
    for wanted in [
        "agent_sandbox_build_info",
        "agent_sandbox_claim_ready_seconds",
    ] {
        ensure!(
            text.contains(wanted),
            "the operator's /metrics lacks {wanted:?}"
        );
    }
    // At least this scenario's claim: the operator acts on every namespace, so Ready claims left
    // in namespaces other suites are still deleting may be labelled too.
    let labelled = text
        .lines()
        .find_map(|line| line.strip_prefix("embedded_operator_claims_labelled_total "))
        .and_then(|count| count.trim().parse::<u64>().ok());
    ensure!(
        labelled.is_some_and(|n| n >= 1),
        "the operator's /metrics counts {labelled:?} labelled claims"
    );
    Ok(())
}

/// The address the operator logged for `field` (`metrics_address=…`), once it has.
async fn served_address(log: &PathBuf, field: &str) -> anyhow::Result<String> {
    let prefix = format!("{field}=");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&prefix))
        {
            return Ok(address.to_owned());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the operator logged no {field} within {TIMEOUT:?}:\n{}",
                tail_of(log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.0 GET; the body.
async fn http_get(address: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP answer from {address}{path}"))?;
    ensure!(head.contains(" 200 "), "GET {path}: {head}");
    Ok(body.to_owned())
}

#[tokio::test]
async fn the_planner_prints_what_the_controller_would_do_and_writes_nothing() -> anyhow::Result<()>
{
    let _turn = ONE_AT_A_TIME.lock().await;
    crds::install(&cluster::client().await?).await?;
    TestEnv::run("planner", |env| async move {
        let spec = |service: bool| {
            json!({"podTemplate": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}},
                   "service": service})
        };
        for (name, service) in [("plain", false), ("served", true)] {
            let sandbox: Sandbox = serde_json::from_value(json!({
                "apiVersion": "agents.x-k8s.io/v1beta1",
                "kind": "Sandbox",
                "metadata": {"name": name},
                "spec": spec(service),
            }))?;
            env.create(&sandbox).await?;
        }
        // No controller runs in this scenario (one at a time): the Sandboxes stay as created.
        let output = Command::new(binary("AGENT_SANDBOX_PLANNER_BIN", PLANNER)?)
            .arg(&env.namespace)
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .output()
            .await
            .context("running the planner")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success(),
            "the planner failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        for wanted in [
            "sandbox plain: 1 write",
            "  create Pod plain",
            "sandbox served: 2 writes",
            "  create Service served",
            "  create Pod served",
        ] {
            ensure!(
                lines.contains(&wanted),
                "the planner's output lacks {wanted:?}:\n{stdout}"
            );
        }
        let pods = env.api::<Pod>().list(&ListParams::default()).await?;
        ensure!(
            pods.items.is_empty(),
            "the dry run created Pods {:?}",
            pods.items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        );
        Ok(())
    })
    .await
}
