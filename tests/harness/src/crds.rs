//! Installs the project's CRDs and waits until they are Established.
//!
//! [`install`] applies the default install's (deploy/crds: v1beta1 only, no conversion), which every
//! suite uses; [`install_with_webhook`] applies the migration install's (deploy/migration/crds: v1alpha1
//! served too, through the `Webhook` strategy) for the suites of the conversion webhook and the upgrade,
//! whose controller points it at itself. Those suites call [`restore_default`] at the end.

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

/// deploy/crds of this checkout: the default install's CRDs.
pub fn crd_dir() -> PathBuf {
    workspace_root().join("deploy").join("crds")
}

/// deploy/migration/crds of this checkout: the migration install's CRDs.
pub fn migration_crd_dir() -> PathBuf {
    workspace_root().join("deploy/migration/crds")
}

/// Reads every CRD in deploy/crds/*.yaml; fails if there are none.
pub fn load() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    load_from(crd_dir())
}

/// Reads every CRD in `dir`/*.yaml (several documents per file allowed); fails if there are none.
pub fn load_from(dir: PathBuf) -> anyhow::Result<Vec<CustomResourceDefinition>> {
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

/// Applies the default install's CRDs and waits until each is Established.
pub async fn install(client: &Client) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    apply(client, load()?).await
}

/// Applies the migration install's CRDs (conversion strategy Webhook, no caBundle yet) and waits until
/// each is Established. Call [`restore_default`] afterwards.
pub async fn install_with_webhook(
    client: &Client,
) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    apply(client, load_from(migration_crd_dir())?).await
}

/// Puts the default install's CRDs back after a suite that changed them: conversion strategy None
/// first (before any webhook goes away), `status.storedVersions` pruned to what the default CRDs serve
/// (a test cluster's shortcut, after the suite's objects are gone: the API server refuses to stop
/// serving a version still listed there), then the default CRDs.
pub async fn restore_default(client: &Client) -> anyhow::Result<()> {
    reset_conversion(client).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in load()? {
        let name = crd.name_any();
        let Some(installed) = api.get_opt(&name).await? else {
            continue;
        };
        let stored = installed
            .status
            .and_then(|s| s.stored_versions)
            .unwrap_or_default();
        let served: Vec<String> = crd.spec.versions.iter().map(|v| v.name.clone()).collect();
        if stored.iter().any(|v| !served.contains(v)) {
            let patch = serde_json::json!({ "status": { "storedVersions": served } });
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("pruning the storedVersions of {name}"))?;
        }
    }
    install(client).await.map(drop)
}

/// Sets the conversion of every installed CRD of ours to strategy None and removes any webhook
/// config (a controller's merge patch is not owned by our applies, so an apply alone cannot).
async fn reset_conversion(client: &Client) -> anyhow::Result<()> {
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

/// Applies `crds` (server-side, forced, after resetting any webhook config) and waits until each is
/// Established.
pub async fn apply(
    client: &Client,
    crds: Vec<CustomResourceDefinition>,
) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    reset_conversion(client).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for mut crd in crds {
        // Owning the strategy (None unless the file says Webhook) lets a later apply switch it back.
        crd.spec.conversion.get_or_insert(CustomResourceConversion {
            strategy: "None".into(),
            webhook: None,
        });
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
