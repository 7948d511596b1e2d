//! A template's NetworkPolicy: its name, the spec it should have (the template's rules or the secure
//! default), and what to do about the one that exists.

use std::collections::BTreeMap;

use agent_sandbox_api::extensions::NetworkPolicyManagement;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::SandboxTemplate;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::decision::Action;
use crate::ownership::{Ownership, controller_reference, describe, ownership};

/// Namespace the sandbox router runs in; the default policy admits ingress only from there.
pub const ROUTER_NAMESPACE: &str = "agent-sandbox-system";

/// Name of a template's NetworkPolicy.
pub fn network_policy_name(template: &str) -> String {
    format!("{template}-network-policy")
}

/// The write bringing the template's NetworkPolicy (`existing`, if any) in line with its
/// management setting, or why the controller refuses to touch it.
pub(super) fn reconcile(
    template: &SandboxTemplate,
    existing: Option<&NetworkPolicy>,
    hash: &str,
) -> Result<Option<Action>, String> {
    let name = template.metadata.name.clone().unwrap_or_default();
    let uid = template.metadata.uid.clone().unwrap_or_default();
    let policy_name = network_policy_name(&name);
    let managed = template.spec.network_policy_management.unwrap_or_default()
        == NetworkPolicyManagement::Managed;
    let Some(existing) = existing else {
        return Ok(managed.then(|| Action::CreateNetworkPolicy(build(template, policy_name, hash))));
    };
    match ownership(&existing.metadata, &uid) {
        Ownership::Owned if !managed => Ok(Some(Action::DeleteNetworkPolicy {
            name: policy_name,
            uid: existing.metadata.uid.clone().unwrap_or_default(),
        })),
        Ownership::Owned => {
            let desired = desired_spec(template, hash);
            let current = existing.spec.clone().map(with_server_defaults);
            Ok(
                (current != Some(with_server_defaults(desired.clone()))).then(|| {
                    let mut replacement = existing.clone();
                    replacement.spec = Some(desired);
                    Action::ReplaceNetworkPolicy(replacement)
                }),
            )
        }
        _ if !managed => Ok(None),
        Ownership::Unowned => Err(format!(
            "NetworkPolicy {policy_name:?} exists and is not controlled by SandboxTemplate {name:?}; refusing to overwrite it"
        )),
        Ownership::Other(owner) => Err(format!(
            "NetworkPolicy {policy_name:?} is controlled by {}, not by SandboxTemplate {name:?}; refusing to overwrite it",
            describe(owner)
        )),
    }
}

/// The policy to create for a managed template.
fn build(template: &SandboxTemplate, name: String, hash: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: template.metadata.namespace.clone(),
            owner_references: Some(vec![controller_reference(
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxTemplate",
                &template.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(desired_spec(template, hash)),
    }
}

/// A policy spec as the API server stores it: rule ports default to protocol TCP. Comparing through
/// this keeps a custom rule without a protocol from being rewritten on every pass.
fn with_server_defaults(mut spec: NetworkPolicySpec) -> NetworkPolicySpec {
    let ingress_ports = spec
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    let egress_ports = spec
        .egress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    for port in ingress_ports.chain(egress_ports) {
        port.protocol.get_or_insert_with(|| "TCP".to_owned());
    }
    spec
}

fn ip_block(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|c| (*c).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    }
}

pub(super) fn match_labels(key: &str, value: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
        ..LabelSelector::default()
    })
}

/// The policy a template's Sandboxes run under: the template's rules, or the secure default
/// (ingress only from the sandbox router, egress only to public addresses).
pub fn desired_spec(template: &SandboxTemplate, hash: &str) -> NetworkPolicySpec {
    let (ingress, egress) = match &template.spec.network_policy {
        Some(custom) => (custom.ingress.clone(), custom.egress.clone()),
        None => (
            vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: match_labels(
                        "kubernetes.io/metadata.name",
                        ROUTER_NAMESPACE,
                    ),
                    pod_selector: match_labels("app", "sandbox-router"),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: None,
            }],
            vec![NetworkPolicyEgressRule {
                to: Some(vec![
                    ip_block(
                        "0.0.0.0/0",
                        &[
                            "10.0.0.0/8",
                            "172.16.0.0/12",
                            "192.168.0.0/16",
                            "169.254.0.0/16",
                            // Beyond upstream's list: nothing a pod sends to loopback ever leaves
                            // it, unless a node translates Service traffic to a server bound to
                            // loopback (the local cluster's API server), which this closes.
                            "127.0.0.0/8",
                        ],
                    ),
                    ip_block("::/0", &["fc00::/7", "fe80::/10", "::1/128"]),
                ]),
                ports: None,
            }],
        ),
    };
    NetworkPolicySpec {
        pod_selector: match_labels(labels::SANDBOX_TEMPLATE_REF_HASH, hash),
        policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
        ingress: Some(ingress),
        egress: Some(egress),
    }
}
