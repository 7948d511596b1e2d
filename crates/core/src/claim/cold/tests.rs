//! Cold creation (controllers.md §5.8) and env / volume-claim-template policies.

use agent_sandbox_api::common::{LocalObjectReference, PersistentVolumeClaimTemplate, PodMetadata};
use agent_sandbox_api::extensions::{EnvVar, EnvVarsInjectionPolicy};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{
    SandboxClaimSpec, SandboxTemplateSpec, VolumeClaimTemplatesPolicy,
};
use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar as CoreEnvVar};

use super::*;

fn template(
    env_policy: Option<EnvVarsInjectionPolicy>,
    vct_policy: Option<VolumeClaimTemplatesPolicy>,
) -> SandboxTemplate {
    let mut t = SandboxTemplate::new(
        "tpl",
        SandboxTemplateSpec {
            env_vars_injection_policy: env_policy,
            volume_claim_templates_policy: vct_policy,
            ..Default::default()
        },
    );
    let spec = &mut t.spec.blueprint.pod_template.spec;
    spec.containers = vec![
        Container {
            name: "main".into(),
            env: Some(vec![CoreEnvVar {
                name: "MODE".into(),
                value: Some("prod".into()),
                value_from: None,
            }]),
            ..Default::default()
        },
        Container {
            name: "side".into(),
            ..Default::default()
        },
    ];
    spec.init_containers = Some(vec![Container {
        name: "init".into(),
        ..Default::default()
    }]);
    t.spec
        .blueprint
        .pod_template
        .metadata
        .labels
        .insert("sandbox.users.io/tier".into(), "gold".into());
    t
}

fn claim() -> SandboxClaim {
    let mut c = SandboxClaim::new(
        "my-claim",
        SandboxClaimSpec {
            warm_pool_ref: LocalObjectReference {
                name: "pool".into(),
            },
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("claim-uid".into());
    c
}

fn var(name: &str, value: &str, container: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: value.into(),
        container_name: container.into(),
    }
}

fn vct(name: &str, class: &str) -> PersistentVolumeClaimTemplate {
    let mut v = PersistentVolumeClaimTemplate::named(name);
    v.spec.storage_class_name = Some(class.into());
    v
}

fn env_of(sandbox: &Sandbox, container: &str) -> Vec<(String, String)> {
    let spec = &sandbox.spec.blueprint.pod_template.spec;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == container)
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

#[test]
fn a_cold_sandbox_is_named_like_the_claim_labelled_and_owned() {
    let mut c = claim();
    c.metadata.labels = Some([(labels::CREATED_BY.to_owned(), "python-client".to_owned())].into());
    c.metadata.annotations = Some(
        [(
            annotations::TRACE_CONTEXT.to_owned(),
            "{\"traceparent\":\"x\"}".to_owned(),
        )]
        .into(),
    );
    c.spec.additional_pod_metadata = PodMetadata {
        labels: [("sandbox.users.io/session".to_owned(), "s1".to_owned())].into(),
        ..Default::default()
    };
    let sandbox = build(&c, &template(None, None)).expect("builds");
    assert_eq!(sandbox.metadata.name.as_deref(), Some("my-claim"));
    let l = sandbox.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        l.get(labels::CLAIM_UID).map(String::as_str),
        Some("claim-uid")
    );
    assert_eq!(l.get(labels::LAUNCH_TYPE).map(String::as_str), Some("cold"));
    assert_eq!(
        l.get(labels::CREATED_BY).map(String::as_str),
        Some("python-client")
    );
    assert_eq!(
        l.get(labels::SANDBOX_TEMPLATE_REF_HASH),
        Some(&name_hash("tpl"))
    );
    let a = sandbox.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        a.get(annotations::SANDBOX_TEMPLATE_REF).map(String::as_str),
        Some("tpl")
    );
    assert!(a.contains_key(annotations::TRACE_CONTEXT));
    let pod_labels = &sandbox.spec.blueprint.pod_template.metadata.labels;
    assert_eq!(
        pod_labels.get("sandbox.users.io/tier").map(String::as_str),
        Some("gold")
    );
    assert_eq!(
        pod_labels
            .get("sandbox.users.io/session")
            .map(String::as_str),
        Some("s1")
    );
    assert_eq!(
        pod_labels.get(labels::CLAIM_UID).map(String::as_str),
        Some("claim-uid")
    );
    let owner = &sandbox.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("SandboxClaim", "claim-uid")
    );
    assert_eq!(
        sandbox
            .spec
            .blueprint
            .pod_template
            .spec
            .automount_service_account_token,
        Some(false),
        "secure defaults"
    );
    assert_eq!(sandbox.spec.operating_mode, None);
    assert_eq!(
        sandbox.spec.lifecycle.shutdown_time, None,
        "the claim's shutdownTime is never copied"
    );
}

#[test]
fn claim_metadata_may_not_override_the_template() {
    let mut c = claim();
    c.spec
        .additional_pod_metadata
        .labels
        .insert("sandbox.users.io/tier".into(), "silver".into());
    let error = build(&c, &template(None, None)).expect_err("conflict");
    assert!(error.retried(), "upstream retries this one");
    assert!(
        error
            .message()
            .starts_with("metadata override conflict: label \"sandbox.users.io/tier\""),
        "{}",
        error.message()
    );
}

#[test]
fn env_is_rejected_unless_the_template_allows_it() {
    let mut c = claim();
    c.spec.env = vec![var("A", "1", "")];
    for policy in [None, Some(EnvVarsInjectionPolicy::Disallowed)] {
        let error = build(&c, &template(policy, None)).expect_err("rejected");
        assert_eq!(
            (error.reason(), error.retried()),
            ("EnvVarsInjectionRejected", false)
        );
    }
}

#[test]
fn env_goes_to_named_containers_and_the_rest_to_the_first_main_one() {
    let mut c = claim();
    c.spec.env = vec![
        var("A", "1", ""),
        var("B", "2", "side"),
        var("C", "3", "init"),
        var("D", "4", "main"),
    ];
    let sandbox =
        build(&c, &template(Some(EnvVarsInjectionPolicy::Allowed), None)).expect("builds");
    assert_eq!(
        env_of(&sandbox, "main"),
        [
            ("MODE".into(), "prod".into()),
            ("D".into(), "4".into()),
            ("A".into(), "1".into())
        ]
    );
    assert_eq!(env_of(&sandbox, "side"), [("B".to_owned(), "2".to_owned())]);
    assert_eq!(env_of(&sandbox, "init"), [("C".to_owned(), "3".to_owned())]);
}

#[test]
fn redefining_a_variable_needs_the_overrides_policy() {
    let mut c = claim();
    c.spec.env = vec![var("MODE", "dev", "")];
    let error = build(&c, &template(Some(EnvVarsInjectionPolicy::Allowed), None))
        .expect_err("override refused");
    assert_eq!(error, ColdError::Other("environment variable override is not allowed by the template policy for variable \"MODE\"".into()));
    let sandbox =
        build(&c, &template(Some(EnvVarsInjectionPolicy::Overrides), None)).expect("builds");
    assert_eq!(
        env_of(&sandbox, "main"),
        [("MODE".to_owned(), "dev".to_owned())]
    );
}

#[test]
fn an_unknown_target_container_and_env_from_under_allowed_are_errors() {
    let mut c = claim();
    c.spec.env = vec![var("A", "1", "ghost")];
    let error = build(&c, &template(Some(EnvVarsInjectionPolicy::Overrides), None))
        .expect_err("no such container");
    assert_eq!(
        error,
        ColdError::Other(
            "target container \"ghost\" not found in template for environment variable \"A\""
                .into()
        )
    );

    let mut t = template(Some(EnvVarsInjectionPolicy::Allowed), None);
    t.spec.blueprint.pod_template.spec.containers[0].env_from =
        Some(vec![EnvFromSource::default()]);
    c.spec.env = vec![var("A", "1", "")];
    let error = build(&c, &t).expect_err("envFrom under Allowed");
    assert_eq!(error.reason(), "EnvVarsInjectionRejected");
    t.spec.env_vars_injection_policy = Some(EnvVarsInjectionPolicy::Overrides);
    assert!(build(&c, &t).is_ok(), "Overrides may shadow envFrom");
}

#[test]
fn volume_claim_template_policies() {
    let mut t = template(None, None);
    t.spec.blueprint.volume_claim_templates = vec![vct("data", "slow"), vct("cache", "slow")];
    let mut c = claim();
    c.spec.volume_claim_templates = vec![vct("data", "fast"), vct("extra", "fast")];

    let names = |list: &[PersistentVolumeClaimTemplate]| -> Vec<(String, String)> {
        list.iter()
            .map(|v| {
                (
                    v.metadata.name.clone(),
                    v.spec.storage_class_name.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    for disallowed in [None, Some(VolumeClaimTemplatesPolicy::Disallowed)] {
        t.spec.volume_claim_templates_policy = disallowed;
        let error = build(&c, &t).expect_err("disallowed");
        assert_eq!(
            error.message(),
            "failed to merge volume claim templates: volume claim templates are disallowed by the template"
        );
        assert!(!error.retried());
    }
    t.spec.volume_claim_templates_policy = Some(VolumeClaimTemplatesPolicy::Allowed);
    let error = build(&c, &t).expect_err("collision");
    assert!(
        error
            .message()
            .ends_with("cannot override template volume \"data\""),
        "{}",
        error.message()
    );
    t.spec.volume_claim_templates_policy = Some(VolumeClaimTemplatesPolicy::Overrides);
    let sandbox = build(&c, &t).expect("builds");
    assert_eq!(
        names(&sandbox.spec.blueprint.volume_claim_templates),
        [
            ("data".into(), "fast".into()),
            ("cache".into(), "slow".into()),
            ("extra".into(), "fast".into())
        ]
    );
    c.spec.volume_claim_templates = vec![vct("extra", "fast")];
    t.spec.volume_claim_templates_policy = Some(VolumeClaimTemplatesPolicy::Allowed);
    let sandbox = build(&c, &t).expect("builds");
    assert_eq!(
        names(&sandbox.spec.blueprint.volume_claim_templates),
        [
            ("data".into(), "slow".into()),
            ("cache".into(), "slow".into()),
            ("extra".into(), "fast".into())
        ]
    );
    c.spec.volume_claim_templates = vec![vct("x", "a"), vct("x", "b")];
    let error = build(&c, &t).expect_err("duplicate names");
    assert!(
        error
            .message()
            .contains("claim: invalid volume claim templates"),
        "{}",
        error.message()
    );
}

#[test]
fn a_default_template_gets_no_token_and_public_dns() {
    let sandbox = build(&claim(), &template(None, None)).expect("builds");
    let spec = &sandbox.spec.blueprint.pod_template.spec;
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    assert_eq!(
        spec.dns_config.as_ref().and_then(|c| c.nameservers.clone()),
        Some(vec!["8.8.8.8".to_owned(), "1.1.1.1".to_owned()])
    );
}

#[test]
fn a_template_token_opt_in_and_custom_policy_dns_are_kept() {
    let mut t = template(None, None);
    t.spec
        .blueprint
        .pod_template
        .spec
        .automount_service_account_token = Some(true);
    t.spec.network_policy = Some(agent_sandbox_api::extensions::NetworkPolicySpec::default());
    let sandbox = build(&claim(), &t).expect("builds");
    let spec = &sandbox.spec.blueprint.pod_template.spec;
    assert_eq!(spec.automount_service_account_token, Some(true));
    assert_eq!(
        (spec.dns_policy.as_deref(), spec.dns_config.as_ref()),
        (None, None),
        "a custom policy may allow cluster DNS"
    );
}

#[test]
fn created_by_is_absent_when_the_claim_has_none() {
    let sandbox = build(&claim(), &template(None, None)).expect("builds");
    let l = sandbox.metadata.labels.clone().unwrap_or_default();
    assert!(!l.contains_key(labels::CREATED_BY));
    let pod_labels = &sandbox.spec.blueprint.pod_template.metadata.labels;
    assert!(!pod_labels.contains_key(labels::CREATED_BY));
    assert_eq!(
        pod_labels.get(labels::SANDBOX_TEMPLATE_REF_HASH),
        Some(&name_hash("tpl"))
    );
    assert!(
        !sandbox
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(annotations::TRACE_CONTEXT)
    );
}

#[test]
fn overrides_appends_new_variables() {
    let mut c = claim();
    c.spec.env = vec![var("NEW", "1", "")];
    let sandbox =
        build(&c, &template(Some(EnvVarsInjectionPolicy::Overrides), None)).expect("builds");
    assert_eq!(
        env_of(&sandbox, "main"),
        [
            ("MODE".to_owned(), "prod".to_owned()),
            ("NEW".to_owned(), "1".to_owned())
        ]
    );
}

#[test]
fn a_disallowed_template_rejects_a_redefinition_as_injection_not_override() {
    let mut c = claim();
    c.spec.env = vec![var("MODE", "dev", "")];
    let error = build(&c, &template(None, None)).expect_err("rejected");
    assert_eq!(
        error,
        ColdError::EnvRejected("environment variable injection rejected: environment variable injection is not allowed by the template policy".into())
    );
}

#[test]
fn env_from_blocks_allowed_injection_only_in_the_target_container() {
    let mut t = template(Some(EnvVarsInjectionPolicy::Allowed), None);
    t.spec.blueprint.pod_template.spec.init_containers = Some(vec![Container {
        name: "init".into(),
        env_from: Some(vec![EnvFromSource::default()]),
        ..Default::default()
    }]);
    let mut c = claim();
    c.spec.env = vec![var("A", "1", "init")];
    let error = build(&c, &t).expect_err("envFrom on the init container");
    assert_eq!(
        error,
        ColdError::EnvRejected("environment variable injection rejected: container \"init\" uses EnvFrom sources; Allowed policy cannot safely prevent overriding EnvFrom-provided variables".into())
    );
    c.spec.env = vec![var("A", "1", "side")];
    let sandbox = build(&c, &t).expect("the target has no envFrom");
    assert_eq!(env_of(&sandbox, "side"), [("A".to_owned(), "1".to_owned())]);
    c.spec.env = vec![];
    assert!(build(&c, &t).is_ok(), "envFrom without claim env is fine");
}

#[test]
fn template_volume_claim_templates_are_copied_when_the_claim_has_none() {
    let mut t = template(None, None);
    t.spec.blueprint.volume_claim_templates = vec![vct("data", "slow"), vct("cache", "fast")];
    let sandbox = build(&claim(), &t).expect("builds under Disallowed");
    assert_eq!(
        sandbox.spec.blueprint.volume_claim_templates,
        t.spec.blueprint.volume_claim_templates
    );
}

#[test]
fn invalid_template_volume_claim_templates_are_reported_either_way() {
    let mut t = template(None, Some(VolumeClaimTemplatesPolicy::Allowed));
    t.spec.blueprint.volume_claim_templates = vec![vct("data", "a"), vct("data", "b")];
    let error = build(&claim(), &t).expect_err("duplicate template names");
    assert!(
        error
            .message()
            .starts_with("invalid volume claim templates in template: "),
        "{}",
        error.message()
    );
    assert_eq!(error.reason(), "VolumeClaimTemplatesError");
    let mut c = claim();
    c.spec.volume_claim_templates = vec![vct("extra", "a")];
    let error = build(&c, &t).expect_err("duplicate template names");
    assert!(
        error.message().starts_with(
            "failed to merge volume claim templates: template: invalid volume claim templates: "
        ),
        "{}",
        error.message()
    );
    t.spec.blueprint.volume_claim_templates = vec![vct("", "a")];
    assert!(build(&claim(), &t).is_err(), "an empty template name");
}

#[test]
fn an_unnamed_claim_volume_claim_template_is_rejected() {
    let t = template(None, Some(VolumeClaimTemplatesPolicy::Overrides));
    let mut c = claim();
    c.spec.volume_claim_templates = vec![vct("", "a")];
    let error = build(&c, &t).expect_err("empty name");
    assert!(
        error.message().starts_with(
            "failed to merge volume claim templates: claim: invalid volume claim templates: "
        ),
        "{}",
        error.message()
    );
    assert!(!error.retried());
}
