//! The scenarios of `kubectl sandbox`: each stages the python-runtime template and a warm pool of it
//! in its namespace, rolls out the router in the cluster, and runs the plugin as a user would.

use std::path::PathBuf;
use std::process::Output;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim};
use agent_sandbox_testkit::{TestEnv, cluster, kubectl, workspace_root};
use anyhow::{Context, ensure};
use serde_json::Value;
use tokio::process::Command;

use crate::real_node_support::claims::wait_pool_ready;
use crate::real_node_support::{create_pool, sandbox_cond, wait_sandbox};
use crate::router_support::router_kubeconfig;
use crate::runtime_support::{TEMPLATE, overlay_template, with_in_cluster_router};

const POOL: &str = "cli-pool";

/// `kubectl sandbox ARGS` in the scenario's namespace, with the plugin (target/debug, where `cargo
/// xtask test` builds it) and our kubectl first on PATH.
async fn plugin(env: &TestEnv, args: &[&str]) -> anyhow::Result<Output> {
    let plugin_dir = std::env::var_os("AGENT_SANDBOX_KUBECTL_SANDBOX_BIN")
        .map(PathBuf::from)
        .and_then(|bin| bin.parent().map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("target/debug"));
    let kubectl = kubectl::binary();
    let dirs = [Some(plugin_dir), kubectl.parent().map(PathBuf::from)];
    let path = std::env::join_paths(dirs.into_iter().flatten().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    Command::new(&kubectl)
        .arg("sandbox")
        .args(["--namespace", &env.namespace])
        .args(args)
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .env("PATH", path)
        .output()
        .await
        .with_context(|| format!("running kubectl sandbox {}", args.join(" ")))
}

/// Like [`plugin`], failing unless it exited 0; its stdout.
async fn plugin_ok(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    let out = plugin(env, args).await?;
    ensure!(
        out.status.success(),
        "kubectl sandbox {} exited with {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The template, a warm pool of one, and the router in the cluster, around `body`.
async fn staged<F>(env: &TestEnv, body: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&TestEnv) -> anyhow::Result<()>,
{
    router_kubeconfig(env).await?;
    env.create(&overlay_template().await?).await?;
    create_pool(env, POOL, TEMPLATE, 1).await?;
    wait_pool_ready(env, POOL, 1).await?;
    with_in_cluster_router(body(env)).await
}

/// A claim of the pool, Ready (`claim --wait`); its name.
async fn claimed(env: &TestEnv) -> anyhow::Result<String> {
    Ok(plugin_ok(env, &["claim", "--pool", POOL, "--wait"])
        .await?
        .trim()
        .to_owned())
}

pub async fn claim_waits_and_ls_shows_the_claim(env: TestEnv) -> anyhow::Result<()> {
    staged(&env, async |env: &TestEnv| {
        let json = plugin_ok(
            env,
            &[
                "claim", "--pool", POOL, "--name", "task", "--wait", "-o", "json",
            ],
        )
        .await?;
        let claimed: Value = serde_json::from_str(&json).context("claim -o json")?;
        ensure!(
            claimed["claim"] == "task" && claimed["ready"] == true,
            "claim -o json printed {claimed}"
        );
        let sandbox = claimed["sandbox"].as_str().unwrap_or_default().to_owned();
        let bound = env.api::<SandboxClaim>().get("task").await?;
        ensure!(
            agent_sandbox_testkit::fixtures::bound(&bound).as_deref() == Some(sandbox.as_str()),
            "claim -o json names Sandbox {sandbox:?}, the claim is bound to {:?}",
            agent_sandbox_testkit::fixtures::bound(&bound)
        );
        let table = plugin_ok(env, &["ls"]).await?;
        let row = table
            .lines()
            .find(|l| l.starts_with("task "))
            .with_context(|| format!("ls shows no row for task:\n{table}"))?;
        let words: Vec<&str> = row.split_whitespace().collect();
        ensure!(
            words == ["task", POOL, sandbox.as_str(), "True", "DependenciesReady"],
            "ls row {row:?}"
        );
        let listed: Value = serde_json::from_str(&plugin_ok(env, &["ls", "-o", "json"]).await?)?;
        ensure!(
            listed.as_array().is_some_and(|rows| rows
                .iter()
                .any(|r| r["claim"] == "task" && r["ready"] == "True")),
            "ls -o json: {listed}"
        );
        Ok(())
    })
    .await
}

pub async fn exec_streams_output_and_passes_the_exit_code_on(env: TestEnv) -> anyhow::Result<()> {
    staged(&env, async |env: &TestEnv| {
        let claim = claimed(env).await?;
        let out = plugin(
            env,
            &[
                "exec",
                &claim,
                "--",
                "sh",
                "-c",
                "echo 'to stdout'; echo 'to stderr' >&2; exit 3",
            ],
        )
        .await?;
        ensure!(
            out.status.code() == Some(3),
            "exec exited with {} (want the command's 3); stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            String::from_utf8_lossy(&out.stdout) == "to stdout\n"
                && String::from_utf8_lossy(&out.stderr) == "to stderr\n",
            "exec output: {out:?}"
        );
        // Words with spaces reach the command as one argument each.
        let echoed = plugin_ok(
            env,
            &[
                "exec",
                &claim,
                "--",
                "python3",
                "-c",
                "import sys; print(sys.argv[1:])",
                "a b",
                "it's",
            ],
        )
        .await?;
        ensure!(echoed == "['a b', \"it's\"]\n", "exec argv: {echoed:?}");
        Ok(())
    })
    .await
}

pub async fn cp_copies_a_file_both_ways(env: TestEnv) -> anyhow::Result<()> {
    staged(&env, async |env: &TestEnv| {
        let claim = claimed(env).await?;
        let up = agent_sandbox_testkit::process::log_path(&format!("{}-up.bin", env.namespace))?;
        let payload: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&up, &payload)?;
        let remote = format!("{claim}:data/copied.bin");
        plugin_ok(env, &["cp", &up.display().to_string(), &remote]).await?;
        let size = plugin_ok(
            env,
            &["exec", &claim, "--", "stat", "-c", "%s", "data/copied.bin"],
        )
        .await?;
        ensure!(
            size.trim() == payload.len().to_string(),
            "in the sandbox the file has {size} bytes"
        );
        let down =
            agent_sandbox_testkit::process::log_path(&format!("{}-down.bin", env.namespace))?;
        plugin_ok(env, &["cp", &remote, &down.display().to_string()]).await?;
        let back = std::fs::read(&down)?;
        let _ = (std::fs::remove_file(&up), std::fs::remove_file(&down));
        ensure!(back == payload, "the file came back different");
        Ok(())
    })
    .await
}

pub async fn suspend_resume_logs_and_rm(env: TestEnv) -> anyhow::Result<()> {
    staged(&env, async |env: &TestEnv| {
        let claim = claimed(env).await?;
        let bound = env.api::<SandboxClaim>().get(&claim).await?;
        let sandbox = agent_sandbox_testkit::fixtures::bound(&bound).context("unbound claim")?;
        plugin_ok(env, &["suspend", &claim]).await?;
        let suspended = env.api::<Sandbox>().get(&sandbox).await?;
        ensure!(
            sandbox_cond(&suspended, "Suspended").is_some_and(|(s, _)| s == "True"),
            "after suspend the Sandbox is {:?}",
            sandbox_cond(&suspended, "Suspended")
        );
        plugin_ok(env, &["resume", &claim]).await?;
        wait_sandbox(env, &sandbox, "Ready again after resume", |s| {
            sandbox_cond(s, "Ready").is_some_and(|(status, _)| status == "True")
        })
        .await?;
        // The logs of the (new) Pod: the runtime logs that it serves.
        let logs = plugin_ok(env, &["logs", &claim]).await?;
        ensure!(!logs.trim().is_empty(), "logs printed nothing");
        plugin_ok(env, &["rm", &claim]).await?;
        ensure!(
            env.api::<SandboxClaim>()
                .get_opt(&claim)
                .await?
                .is_none_or(|c| c.metadata.deletion_timestamp.is_some()),
            "the claim is still there after rm"
        );
        Ok(())
    })
    .await
}

pub async fn errors_are_one_line_and_fail_the_command(env: TestEnv) -> anyhow::Result<()> {
    staged(&env, async |env: &TestEnv| {
        for (args, mentions) in [
            (
                vec!["claim", "--pool", "no-such-pool", "--wait"],
                "no-such-pool",
            ),
            (vec!["exec", "no-such-claim", "--", "true"], "no-such-claim"),
            (vec!["cp", "a", "b"], "CLAIM:path"),
        ] {
            let out = plugin(env, &args).await?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                out.status.code() == Some(1)
                    && stderr.lines().count() == 1
                    && stderr.starts_with("error: ")
                    && stderr.contains(mentions),
                "kubectl sandbox {}: exit {}, stderr {stderr:?}",
                args.join(" "),
                out.status
            );
        }
        Ok(())
    })
    .await
}
