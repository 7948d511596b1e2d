//! Installs the project's CRDs from deploy/crds/*.yaml and waits until they are Established.
//!
//! [`install`] forces the conversion strategy `None` (the API server then stores objects of any served
//! version as they are), so suites need no webhook; [`install_with_webhook`] keeps the files' `Webhook`
//! strategy for the conversion suite, whose controller points it at itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::conditions;
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;

use crate::wait;
use crate::workspace::workspace_root;

/// Field manager of the harness's server-side applies.
const MANAGER: &str = "agent-sandbox-testkit";

/// deploy/crds of this checkout.
pub fn crd_dir() -> PathBuf {
    workspace_root().join("deploy").join("crds")
}

/// Reads every CRD in deploy/crds/*.yaml (several documents per file allowed); fails if there are none.
pub fn load() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let dir = crd_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)
                .with_context(|| format!("parsing a CRD in {}", file.display()))?;
            crds.push(crd);
        }
    }
    if crds.is_empty() {
        bail!(
            "no CustomResourceDefinitions found in {} (expected the four agent-sandbox CRDs; \
             generate them with `cargo xtask crdgen`)",
            dir.display()
        );
    }
    Ok(crds)
}

static INSTALLED: tokio::sync::OnceCell<Vec<CustomResourceDefinition>> =
    tokio::sync::OnceCell::const_new();

/// [`install`], done once per test process: later calls return the CRDs the first one installed.
pub async fn ensure_installed(
    client: &Client,
) -> anyhow::Result<&'static [CustomResourceDefinition]> {
    INSTALLED
        .get_or_try_init(|| install(client))
        .await
        .map(Vec::as_slice)
}

/// Applies every CRD (conversion strategy None) and waits until each is Established.
pub async fn install(client: &Client) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    apply(client, false).await
}

/// Applies every CRD as deploy/crds has it (conversion strategy Webhook, no caBundle yet) and waits
/// until each is Established. Call [`reset_conversion`] afterwards.
pub async fn install_with_webhook(
    client: &Client,
) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    apply(client, true).await
}

/// Sets the conversion of every installed CRD of ours to strategy None and removes any webhook
/// config (a controller's merge patch is not owned by our applies, so an apply alone cannot).
pub async fn reset_conversion(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let patch =
        serde_json::json!({ "spec": { "conversion": { "strategy": "None", "webhook": null } } });
    for crd in load()? {
        let name = crd.name_any();
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                return Err(error).with_context(|| format!("resetting the conversion of {name}"));
            }
        }
    }
    Ok(())
}

async fn apply(client: &Client, webhook: bool) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    reset_conversion(client).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for mut crd in load()? {
        if !webhook {
            crd.spec.conversion = Some(CustomResourceConversion {
                strategy: "None".into(),
                webhook: None,
            });
        }
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        crd.status = None;
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        let established = wait::wait_for_object(
            &api,
            &name,
            "the CRD to be Established",
            Duration::from_secs(30),
            conditions::is_crd_established(),
        )
        .await?;
        installed.push(established);
    }
    Ok(installed)
}
