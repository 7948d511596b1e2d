//! A dry-run planner built on agent-sandbox's pure decision core only (`agent-sandbox-api` for the
//! types, `agent-sandbox-core` for the decisions) and a Kubernetes client of its own: for every
//! Sandbox of a namespace it reads what the Sandbox controller would read, asks the core for its
//! plan, and prints the writes the controller would make and the status it would set. Nothing is
//! written.
//!
//! ```sh
//! cargo run -p sandbox-planner -- my-namespace
//! ```
//! One block per Sandbox:
//! ```text
//! sandbox demo: 1 write
//!   create Pod demo
//!   status: {"conditions":[…],"replicas":0,…}
//! ```

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels::SANDBOX_NAME_HASH;
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::Timestamp;
use agent_sandbox_core::sandbox::{Action, Config, Observed, plan, pvc_name};
use anyhow::Context;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let namespace = std::env::args()
        .nth(1)
        .context("usage: sandbox-planner NAMESPACE")?;
    let client = Client::try_default()
        .await
        .context("connecting to the cluster")?;
    let sandboxes: Api<Sandbox> = Api::namespaced(client.clone(), &namespace);
    let mut listed = sandboxes
        .list(&ListParams::default())
        .await
        .context("listing Sandboxes")?
        .items;
    listed.sort_by_key(ResourceExt::name_any);
    let config = Config::default();
    for sandbox in &listed {
        let observed = observe(&client, &namespace, sandbox).await;
        let planned = plan(&observed, Timestamp::now(), &config);
        let writes: Vec<String> = planned.actions().iter().map(describe).collect();
        println!(
            "sandbox {}: {} write{}",
            sandbox.name_any(),
            writes.len(),
            if writes.len() == 1 { "" } else { "s" }
        );
        for write in writes {
            println!("  {write}");
        }
        // What the pass would end with if every write succeeded.
        if let Some(patch) = planned.finish(&[]).status_patch {
            println!("  status: {}", patch["status"]);
        }
    }
    Ok(())
}

/// What the Sandbox controller reads for `sandbox`: its Pods (by name hash, and the one named like
/// it), its Service and its PVCs. A failed read is handed to the core as such (it plans around it).
async fn observe<'a>(client: &Client, namespace: &str, sandbox: &'a Sandbox) -> Observed<'a> {
    let name = sandbox.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{SANDBOX_NAME_HASH}={}", name_hash(&name));
    let pods = async {
        let mut found = pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        if !found.iter().any(|p| p.name_any() == name)
            && let Some(named) = pods.get_opt(&name).await?
        {
            found.push(named);
        }
        Ok::<_, kube::Error>(found)
    }
    .await
    .map_err(|e| e.to_string());
    let service = Api::<Service>::namespaced(client.clone(), namespace)
        .get_opt(&name)
        .await
        .map_err(|e| e.to_string());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvcs = async {
        let mut found = Vec::new();
        for template in &sandbox.spec.blueprint.volume_claim_templates {
            if let Some(pvc) = claims
                .get_opt(&pvc_name(&template.metadata.name, &name))
                .await?
            {
                found.push(pvc);
            }
        }
        Ok::<_, kube::Error>(found)
    }
    .await
    .map_err(|e| e.to_string());
    Observed {
        sandbox,
        pods,
        service,
        pvcs,
    }
}

/// One line for a planned write.
fn describe(action: &Action) -> String {
    let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.name.clone().unwrap_or_default()
    };
    match action {
        Action::CreatePvc(pvc) => format!("create PersistentVolumeClaim {}", name(&pvc.metadata)),
        Action::PatchPvc { name, .. } => format!("patch PersistentVolumeClaim {name}"),
        Action::CreatePod(pod) => format!("create Pod {}", name(&pod.metadata)),
        Action::PatchPod { name, .. } => format!("patch Pod {name}"),
        Action::DeletePod { name, .. } => format!("delete Pod {name}"),
        Action::CreateService(service) => format!("create Service {}", name(&service.metadata)),
        Action::ReplaceService(service) => format!("replace Service {}", name(&service.metadata)),
        Action::PatchService { name, .. } => format!("patch Service {name}"),
        Action::DeleteService { name, .. } => format!("delete Service {name}"),
        Action::DeleteSandbox { .. } => "delete the Sandbox".to_owned(),
    }
}
