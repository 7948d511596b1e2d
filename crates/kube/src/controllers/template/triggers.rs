//! What wakes a template besides its own changes: a change of a NetworkPolicy that a template controls
//! or whose name is a template's reserved policy name (`<template>-network-policy`), so a foreign
//! policy that goes away lets the template create its own at once.

use agent_sandbox_api::keys::EXTENSIONS_GROUP;
use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_core::ownership::controller_of;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::runtime::watch::Watched;

/// Suffix of a template's NetworkPolicy name.
const POLICY_SUFFIX: &str = "-network-policy";

/// The templates a NetworkPolicy change concerns: its controlling template, and the template whose
/// reserved policy name it carries.
pub fn templates_of(policy: &NetworkPolicy) -> Vec<ObjectRef<SandboxTemplate>> {
    let namespace = policy.namespace().unwrap_or_default();
    let mut names = Vec::new();
    if let Some(owner) = controller_of(&policy.metadata, EXTENSIONS_GROUP, "SandboxTemplate") {
        names.push(owner.name.clone());
    }
    if let Some(template) = policy.name_any().strip_suffix(POLICY_SUFFIX)
        && !template.is_empty()
        && !names.iter().any(|name| name == template)
    {
        names.push(template.to_owned());
    }
    names
        .into_iter()
        .map(|name| ObjectRef::new(&name).within(&namespace))
        .collect()
}

/// The templates concerned by every NetworkPolicy change (subscribe before the watch starts).
pub fn policy_triggers(
    policies: &Watched<NetworkPolicy>,
) -> BoxStream<'static, ObjectRef<SandboxTemplate>> {
    policies
        .feed
        .subscribe()
        .flat_map(|change| futures::stream::iter(templates_of(change.object())))
        .boxed()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn policy(name: &str, owner: Option<(&str, &str, &str)>) -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                owner_references: owner.map(|(api_version, kind, owner)| {
                    vec![OwnerReference {
                        api_version: api_version.into(),
                        kind: kind.into(),
                        name: owner.into(),
                        uid: "u".into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..NetworkPolicy::default()
        }
    }

    fn names(refs: Vec<ObjectRef<SandboxTemplate>>) -> Vec<(String, Option<String>)> {
        refs.into_iter().map(|r| (r.name, r.namespace)).collect()
    }

    #[test]
    fn a_policy_triggers_its_controller_and_the_template_owning_its_name() {
        let ns = Some("ns".to_owned());
        let owned = policy(
            "py-network-policy",
            Some((
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxTemplate",
                "py",
            )),
        );
        assert_eq!(names(templates_of(&owned)), vec![("py".into(), ns.clone())]);
        let renamed = policy(
            "custom",
            Some((
                "extensions.agents.x-k8s.io/v1alpha1",
                "SandboxTemplate",
                "py",
            )),
        );
        assert_eq!(
            names(templates_of(&renamed)),
            vec![("py".into(), ns.clone())]
        );
        let foreign = policy("py-network-policy", Some(("apps/v1", "Deployment", "d")));
        assert_eq!(names(templates_of(&foreign)), vec![("py".into(), ns)]);
        assert!(templates_of(&policy("unrelated", None)).is_empty());
        assert!(templates_of(&policy("-network-policy", None)).is_empty());
    }
}
