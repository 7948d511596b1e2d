//! Server-side apply of YAML manifest files (any kind), as `kubectl apply --server-side` would.

use std::path::Path;

use anyhow::Context;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;

/// Applies every document of the YAML file at `path`; namespaced objects without a namespace go to
/// `default_namespace`.
pub async fn apply_file(
    client: &Client,
    path: &Path,
    default_namespace: &str,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document)
            .with_context(|| format!("parsing {}", path.display()))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_yaml::from_value(value)
            .with_context(|| format!("reading an object of {}", path.display()))?;
        let types = object
            .types
            .clone()
            .with_context(|| format!("an object in {} has no apiVersion/kind", path.display()))?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, capabilities) = pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("discovering {gvk:?}"))?;
        let api: Api<DynamicObject> = if capabilities.scope == kube::discovery::Scope::Namespaced {
            let namespace = object
                .namespace()
                .unwrap_or_else(|| default_namespace.to_owned());
            Api::namespaced_with(client.clone(), &namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let name = object.name_any();
        api.patch(
            &name,
            &PatchParams::apply("agent-sandbox-e2e").force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("applying {} {name} from {}", types.kind, path.display()))?;
    }
    Ok(())
}
