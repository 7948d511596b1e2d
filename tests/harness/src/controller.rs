//! The real controller binary, started as a process for a suite and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::Command;

use crate::process::{self, Process};
use crate::workspace::workspace_root;

/// Environment variable naming the controller binary (`cargo xtask test` builds it and sets this).
pub const BINARY_ENV: &str = "AGENT_SANDBOX_CONTROLLER_BIN";

/// The controller binary to run: `$AGENT_SANDBOX_CONTROLLER_BIN`, else target/debug/agent-sandbox-controller.
pub fn binary() -> anyhow::Result<PathBuf> {
    process::binary(BINARY_ENV, "agent-sandbox-controller")
}

/// A running controller; killed when dropped. Its output goes to `target/e2e-logs/<name>.log`.
pub struct Controller {
    process: Process,
}

impl Controller {
    /// Starts the controller against `kubeconfig` on free ports, with leader election off unless
    /// `extra_args` set `--leader-elect`.
    pub fn start(name: &str, kubeconfig: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let leader = if extra_args.iter().any(|a| a.starts_with("--leader-elect")) {
            None
        } else {
            Some("--leader-elect=false")
        };
        let log = process::log_path(name)?;
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = file
            .try_clone()
            .context("duplicating the log file handle")?;
        let child = Command::new(binary()?)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(leader)
            .arg("--metrics-bind-address=127.0.0.1:0")
            .args([
                "--health-probe-bind-address=127.0.0.1:0",
                "--cache-label-selectors=false",
            ])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("starting the controller")?;
        Ok(Self {
            process: Process::new("controller", child, log),
        })
    }
}

/// Checked on and stopped as a [`Process`] (`ensure_running`, `stop`, `tail`).
impl std::ops::Deref for Controller {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Controller {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// Writes a kubeconfig for ServiceAccount `namespace/name` (a fresh one-hour token, the same server and CA
/// as `admin`) to `path`: the controller run with it proves the RBAC in deploy/ is sufficient.
pub async fn service_account_kubeconfig(
    client: &kube::Client,
    admin: &Path,
    namespace: &str,
    name: &str,
    path: &Path,
) -> anyhow::Result<()> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use serde_yaml::Value;

    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request(name, &Default::default(), &request)
        .await
        .with_context(|| format!("minting a token for ServiceAccount {namespace}/{name}"))?
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("the TokenRequest returned no token")?;
    let text =
        std::fs::read_to_string(admin).with_context(|| format!("reading {}", admin.display()))?;
    let mut config: Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", admin.display()))?;
    let user = format!("system:serviceaccount:{namespace}:{name}");
    config["users"] =
        serde_yaml::from_str(&format!("[{{name: {user:?}, user: {{token: {token:?}}}}}]"))?;
    if let Some(contexts) = config["contexts"].as_sequence_mut() {
        for context in contexts {
            context["context"]["user"] = Value::String(user.clone());
        }
    }
    let yaml = serde_yaml::to_string(&config).context("serialising the kubeconfig")?;
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// The controller's namespace in deploy/ (where its ServiceAccount lives).
pub const SYSTEM_NAMESPACE: &str = "agent-sandbox-system";

/// Installs the controller's namespace and ServiceAccount from deploy/controller and the given RBAC
/// files (paths under deploy/, e.g. `controller/rbac.yaml`), and writes
/// `target/e2e-logs/<name>.kubeconfig` authenticating as that ServiceAccount.
pub async fn install_service_account(
    client: &kube::Client,
    rbac_files: &[&str],
    name: &str,
) -> anyhow::Result<PathBuf> {
    let deploy = workspace_root().join("deploy");
    for file in [
        "controller/namespace.yaml",
        "controller/service-account.yaml",
    ]
    .iter()
    .chain(rbac_files)
    {
        crate::manifests::apply_file(client, &deploy.join(file), SYSTEM_NAMESPACE).await?;
    }
    let logs = workspace_root().join("target/e2e-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let kubeconfig = logs.join(format!("{name}.kubeconfig"));
    service_account_kubeconfig(
        client,
        &crate::cluster::kubeconfig_path(),
        SYSTEM_NAMESPACE,
        "agent-sandbox-controller",
        &kubeconfig,
    )
    .await?;
    Ok(kubeconfig)
}
