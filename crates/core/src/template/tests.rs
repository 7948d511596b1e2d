//! The template decision and the secure defaults, on fixture templates and policies.

use std::collections::BTreeMap;

use agent_sandbox_api::extensions::{NetworkPolicyManagement, NetworkPolicySpec as TemplatePolicy};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{SandboxTemplate, SandboxTemplateSpec};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::network_policy::match_labels;
use super::*;
use crate::ownership::controller_reference;

fn template(
    management: Option<NetworkPolicyManagement>,
    policy: Option<TemplatePolicy>,
) -> SandboxTemplate {
    let mut t = SandboxTemplate::new(
        "python",
        SandboxTemplateSpec {
            network_policy_management: management,
            network_policy: policy,
            ..Default::default()
        },
    );
    t.metadata.namespace = Some("ns".into());
    t.metadata.uid = Some("tpl-uid".into());
    t
}

fn labelled(mut t: SandboxTemplate) -> SandboxTemplate {
    t.metadata.labels = Some(BTreeMap::from([(
        labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
        name_hash("python"),
    )]));
    t
}

fn created(plan: &Plan) -> NetworkPolicy {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::CreateNetworkPolicy(np) => Some(np.clone()),
            _ => None,
        })
        .expect("a policy is created")
}

fn owned_policy(spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("python-network-policy".into()),
            uid: Some("np-uid".into()),
            resource_version: Some("7".into()),
            owner_references: Some(vec![controller_reference(
                "x/v1",
                "SandboxTemplate",
                &template(None, None).metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

/// The error of a managed template's pass over `foreign`, a policy of the reserved name the template
/// does not control, after checking that no write is planned and an unmanaged template leaves it alone.
fn refusal(foreign: &NetworkPolicy) -> Option<String> {
    let unmanaged = labelled(template(Some(NetworkPolicyManagement::Unmanaged), None));
    assert_eq!(
        plan(&Observed {
            template: &unmanaged,
            network_policy: Some(foreign)
        }),
        Plan::default()
    );
    let managed = labelled(template(None, None));
    let plan = plan(&Observed {
        template: &managed,
        network_policy: Some(foreign),
    });
    assert!(plan.actions.is_empty());
    plan.error
}

#[test]
fn default_managed_template_gets_the_secure_policy_and_its_label() {
    let t = template(None, None);
    let plan = plan(&Observed {
        template: &t,
        network_policy: None,
    });
    assert!(matches!(&plan.actions[0], Action::PatchTemplate { patch }
        if patch["metadata"]["labels"][labels::SANDBOX_TEMPLATE_REF_HASH] == name_hash("python")));
    let np = created(&plan);
    assert_eq!(np.metadata.name.as_deref(), Some("python-network-policy"));
    assert_eq!(
        np.metadata
            .owner_references
            .as_ref()
            .map(|r| r[0].uid.as_str()),
        Some("tpl-uid")
    );
    let spec = np.spec.expect("spec");
    assert_eq!(
        spec.pod_selector,
        match_labels(labels::SANDBOX_TEMPLATE_REF_HASH, &name_hash("python"))
    );
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
    let from = &spec.ingress.as_ref().expect("ingress")[0]
        .from
        .as_ref()
        .expect("from")[0];
    assert_eq!(from.pod_selector, match_labels("app", "sandbox-router"));
    assert_eq!(
        from.namespace_selector,
        match_labels("kubernetes.io/metadata.name", "agent-sandbox-system")
    );
    let to = spec.egress.as_ref().expect("egress")[0]
        .to
        .clone()
        .expect("to");
    let blocks: Vec<_> = to
        .iter()
        .filter_map(|p| p.ip_block.clone())
        .map(|b| (b.cidr, b.except.unwrap_or_default()))
        .collect();
    assert_eq!(blocks[0].0, "0.0.0.0/0");
    assert_eq!(
        blocks[0].1,
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "127.0.0.0/8"
        ]
    );
    assert_eq!(
        blocks[1],
        (
            "::/0".to_owned(),
            vec![
                "fc00::/7".to_owned(),
                "fe80::/10".to_owned(),
                "::1/128".to_owned()
            ]
        )
    );
}

#[test]
fn a_second_pass_changes_nothing() {
    let t = labelled(template(None, None));
    let existing = owned_policy(desired_spec(&t, &name_hash("python")));
    let plan = plan(&Observed {
        template: &t,
        network_policy: Some(&existing),
    });
    assert_eq!(plan, Plan::default());
}

#[test]
fn custom_rules_keep_the_controller_selector_and_types() {
    let custom = TemplatePolicy {
        ingress: vec![],
        egress: vec![NetworkPolicyEgressRule::default()],
    };
    let t = labelled(template(
        Some(NetworkPolicyManagement::Managed),
        Some(custom),
    ));
    let spec = created(&plan(&Observed {
        template: &t,
        network_policy: None,
    }))
    .spec
    .expect("spec");
    assert_eq!(spec.ingress, Some(vec![]), "empty ingress denies all");
    assert_eq!(spec.egress, Some(vec![NetworkPolicyEgressRule::default()]));
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
}

#[test]
fn unmanaged_creates_nothing_and_deletes_an_owned_policy() {
    let t = labelled(template(Some(NetworkPolicyManagement::Unmanaged), None));
    assert_eq!(
        plan(&Observed {
            template: &t,
            network_policy: None
        }),
        Plan::default()
    );
    let existing = owned_policy(NetworkPolicySpec::default());
    let plan = plan(&Observed {
        template: &t,
        network_policy: Some(&existing),
    });
    assert_eq!(
        plan.actions,
        vec![Action::DeleteNetworkPolicy {
            name: "python-network-policy".into(),
            uid: "np-uid".into()
        }]
    );
}

#[test]
fn server_defaulted_port_protocols_are_not_drift() {
    use k8s_openapi::api::networking::v1::NetworkPolicyPort;
    let port = |protocol: Option<&str>| NetworkPolicyPort {
        protocol: protocol.map(String::from),
        ..Default::default()
    };
    let rule = |protocol| NetworkPolicyEgressRule {
        ports: Some(vec![port(protocol)]),
        to: None,
    };
    let custom = TemplatePolicy {
        ingress: vec![],
        egress: vec![rule(None)],
    };
    let t = labelled(template(None, Some(custom)));
    let mut stored = desired_spec(&t, &name_hash("python"));
    stored.egress = Some(vec![rule(Some("TCP"))]);
    let plan = plan(&Observed {
        template: &t,
        network_policy: Some(&owned_policy(stored)),
    });
    assert_eq!(plan, Plan::default());
}

#[test]
fn a_spec_change_replaces_the_owned_policy() {
    let t = labelled(template(None, None));
    let existing = owned_policy(NetworkPolicySpec {
        pod_selector: match_labels("old", "x"),
        ..Default::default()
    });
    let plan = plan(&Observed {
        template: &t,
        network_policy: Some(&existing),
    });
    let Some(Action::ReplaceNetworkPolicy(np)) = plan.actions.first() else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(
        np.metadata.resource_version.as_deref(),
        Some("7"),
        "optimistic lock kept"
    );
    assert_eq!(
        np.spec.as_ref().map(|s| s.pod_selector.clone()),
        Some(match_labels(
            labels::SANDBOX_TEMPLATE_REF_HASH,
            &name_hash("python")
        ))
    );
}

#[test]
fn an_unowned_policy_of_the_reserved_name_is_never_touched() {
    let mut foreign = owned_policy(NetworkPolicySpec::default());
    foreign.metadata.owner_references = None;
    assert!(refusal(&foreign).is_some_and(|e| e.contains("refusing to overwrite")));
}

#[test]
fn a_template_being_deleted_is_neither_labelled_nor_given_a_policy() {
    let mut t = template(None, None);
    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let existing = owned_policy(NetworkPolicySpec::default());
    for network_policy in [None, Some(&existing)] {
        assert_eq!(
            plan(&Observed {
                template: &t,
                network_policy
            }),
            Plan::default()
        );
    }
}

#[test]
fn a_wrong_template_hash_label_is_corrected() {
    let mut t = labelled(template(None, None));
    t.metadata.labels = Some(BTreeMap::from([(
        labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
        "00000000".to_owned(),
    )]));
    let existing = owned_policy(desired_spec(&t, &name_hash("python")));
    let plan = plan(&Observed {
        template: &t,
        network_policy: Some(&existing),
    });
    assert_eq!(
        plan.actions,
        vec![Action::PatchTemplate {
            patch: json!({"metadata": {"labels": {labels::SANDBOX_TEMPLATE_REF_HASH: name_hash("python")}}})
        }]
    );
}

#[test]
fn a_policy_controlled_by_another_object_is_neither_replaced_nor_deleted() {
    let mut foreign = owned_policy(NetworkPolicySpec::default());
    if let Some(refs) = foreign.metadata.owner_references.as_mut() {
        refs[0].uid = "someone-else".into();
        refs[0].kind = "Deployment".into();
    }
    let error = refusal(&foreign);
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("refusing to overwrite") && e.contains("Deployment/")),
        "{error:?}"
    );
}

#[test]
fn an_explicitly_managed_template_without_rules_gets_the_secure_default() {
    let t = labelled(template(Some(NetworkPolicyManagement::Managed), None));
    let spec = created(&plan(&Observed {
        template: &t,
        network_policy: None,
    }))
    .spec
    .expect("spec");
    assert_eq!(
        spec,
        desired_spec(&template(None, None), &name_hash("python"))
    );
    let mut pod = PodSpec::default();
    apply_secure_defaults(&mut pod, &t);
    assert_eq!(pod.dns_policy.as_deref(), Some("None"));
}

#[test]
fn secure_defaults() {
    let mut spec = PodSpec::default();
    apply_secure_defaults(&mut spec, &template(None, None));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    assert_eq!(
        spec.dns_config.and_then(|c| c.nameservers),
        Some(vec!["8.8.8.8".to_owned(), "1.1.1.1".to_owned()])
    );

    let mut spec = PodSpec {
        automount_service_account_token: Some(true),
        dns_policy: Some("ClusterFirst".into()),
        ..Default::default()
    };
    apply_secure_defaults(&mut spec, &template(None, None));
    assert_eq!(
        (
            spec.automount_service_account_token,
            spec.dns_policy.as_deref()
        ),
        (Some(true), Some("ClusterFirst"))
    );

    let mut spec = PodSpec::default();
    apply_secure_defaults(&mut spec, &template(None, Some(TemplatePolicy::default())));
    assert_eq!(
        spec.dns_policy, None,
        "a custom policy may allow cluster DNS"
    );
    let mut spec = PodSpec::default();
    apply_secure_defaults(
        &mut spec,
        &template(Some(NetworkPolicyManagement::Unmanaged), None),
    );
    assert_eq!(spec.dns_policy, None);
}
