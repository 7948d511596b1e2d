//! The semantic checks on fixture specs, and the name rules they use.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::metadata::EXEMPT_ANNOTATION;
use super::*;
use crate::common::{
    EmbeddedObjectMetadata, LocalObjectReference, PersistentVolumeClaimTemplate, PodMetadata,
    PodTemplate,
};
use crate::extensions::EnvVar;
use crate::v1beta1::{SandboxBlueprint, SandboxClaimSpec, SandboxSpec, SandboxWarmPoolSpec};

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        ..Container::default()
    }
}

fn pod_template_with(containers: Vec<Container>) -> PodTemplate {
    PodTemplate {
        spec: PodSpec {
            containers,
            ..PodSpec::default()
        },
        ..PodTemplate::default()
    }
}

fn pvc(name: &str) -> PersistentVolumeClaimTemplate {
    PersistentVolumeClaimTemplate {
        metadata: EmbeddedObjectMetadata {
            name: name.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn sandbox(pvcs: &[&str]) -> SandboxSpec {
    SandboxSpec {
        blueprint: SandboxBlueprint {
            pod_template: pod_template_with(vec![container("main")]),
            volume_claim_templates: pvcs.iter().map(|n| pvc(n)).collect(),
            service: None,
        },
        ..SandboxSpec::default()
    }
}

fn claim_with(labels: &[(&str, &str)], annotations: &[&str]) -> SandboxClaimSpec {
    SandboxClaimSpec {
        warm_pool_ref: LocalObjectReference {
            name: "pool".into(),
        },
        additional_pod_metadata: PodMetadata {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: annotations
                .iter()
                .map(|k| (k.to_string(), "x".to_string()))
                .collect(),
        },
        ..SandboxClaimSpec::default()
    }
}

fn messages(result: Result<(), Invalid>) -> String {
    result.expect_err("the spec should be rejected").to_string()
}

#[test]
fn a_valid_sandbox_passes() {
    assert_eq!(
        check(&sandbox(&["data", "cache"]), &ValidationContext::default()),
        Ok(())
    );
}

#[test]
fn duplicate_volume_claim_template_names_are_named_in_the_message() {
    let message = messages(check(
        &sandbox(&["data", "data"]),
        &ValidationContext::default(),
    ));
    assert_eq!(
        message,
        r#"spec.volumeClaimTemplates: [1].metadata.name "data" is used more than once"#
    );
}

#[test]
fn empty_and_malformed_volume_claim_template_names_are_rejected() {
    let message = messages(check(
        &sandbox(&["", "Data_1"]),
        &ValidationContext::default(),
    ));
    assert!(
        message.contains("[0].metadata.name is required"),
        "{message}"
    );
    assert!(
        message.contains(r#"[1].metadata.name "Data_1" must be a DNS label"#),
        "{message}"
    );
}

#[test]
fn a_pod_template_without_containers_is_rejected() {
    let mut spec = sandbox(&[]);
    spec.blueprint.pod_template = pod_template_with(vec![]);
    let message = messages(check(&spec, &ValidationContext::default()));
    assert_eq!(
        message,
        "spec.podTemplate: spec.containers must list at least one container"
    );
}

#[test]
fn duplicate_container_names_are_rejected() {
    let mut spec = sandbox(&[]);
    spec.blueprint.pod_template.spec.init_containers = Some(vec![container("main")]);
    let message = messages(check(&spec, &ValidationContext::default()));
    assert!(
        message.contains(r#"container name "main" is used more than once"#),
        "{message}"
    );
}

#[test]
fn claim_labels_need_an_allow_listed_domain() {
    let ctx = ValidationContext::default();
    assert_eq!(
        check(&claim_with(&[("sandbox.users.io/team", "a")], &[]), &ctx),
        Ok(())
    );
    assert_eq!(
        check(&claim_with(&[("eu.sandbox.users.io/team", "a")], &[]), &ctx),
        Ok(())
    );
    assert!(check(&claim_with(&[("Sandbox.Users.IO/team", "a")], &[]), &ctx).is_err());
    let message = messages(check(&claim_with(&[("team", "a")], &[]), &ctx));
    assert_eq!(
        message,
        r#"spec.additionalPodMetadata: label "team" needs a domain prefix from the allow-list (sandbox.users.io)"#
    );
    let message = messages(check(
        &claim_with(&[("evilsandbox.users.io/x", "a")], &[]),
        &ctx,
    ));
    assert!(
        message.contains(r#"domain "evilsandbox.users.io" is not in the allow-list"#),
        "{message}"
    );
}

#[test]
fn the_router_label_is_reserved() {
    let message = messages(check(
        &claim_with(&[("App", "Sandbox-Router")], &[]),
        &ValidationContext::default(),
    ));
    assert!(
        message.contains("app=sandbox-router is reserved"),
        "{message}"
    );
}

#[test]
fn label_values_must_be_valid() {
    let long = "a".repeat(64);
    let claim = claim_with(
        &[
            ("sandbox.users.io/a", "-bad"),
            ("sandbox.users.io/b", &long),
        ],
        &[],
    );
    let message = messages(check(&claim, &ValidationContext::default()));
    assert!(message.contains(r#"value "-bad""#), "{message}");
    assert!(message.contains(&format!("value {long:?}")), "{message}");
}

#[test]
fn reserved_annotation_domains_are_rejected_except_safe_to_evict() {
    let ctx = ValidationContext::default();
    assert_eq!(
        check(
            &claim_with(&[], &["example.com/a", "plain", EXEMPT_ANNOTATION]),
            &ctx
        ),
        Ok(())
    );
    for key in [
        "kubernetes.io/x",
        "node.k8s.io/x",
        "agents.x-k8s.io/pod-name",
        "extensions.agents.x-k8s.io/x",
    ] {
        let message = messages(check(&claim_with(&[], &[key]), &ctx));
        assert!(message.contains("is reserved"), "{key}: {message}");
    }
}

#[test]
fn malformed_keys_are_rejected() {
    let message = messages(check(
        &claim_with(&[], &["bad key"]),
        &ValidationContext::default(),
    ));
    assert!(
        message.contains(r#"annotation key "bad key": name must be"#),
        "{message}"
    );
}

#[test]
fn the_allow_list_file_is_comma_or_newline_separated_and_lower_cased() {
    let ctx = ValidationContext::from_allowed_domains("Example.COM, corp.io\n\nteam.dev\n");
    assert_eq!(
        ctx.allowed_label_domains,
        vec!["example.com", "corp.io", "team.dev"]
    );
    assert_eq!(
        ValidationContext::from_allowed_domains(" \n"),
        ValidationContext::default()
    );
    assert_eq!(
        check(&claim_with(&[("a.corp.io/x", "y")], &[]), &ctx),
        Ok(())
    );
}

#[test]
fn references_need_a_name() {
    let spec = SandboxWarmPoolSpec::default();
    let message = messages(check(&spec, &ValidationContext::default()));
    assert_eq!(message, "spec.sandboxTemplateRef: name is required");
}

#[test]
fn claim_env_names_are_checked() {
    let mut claim = claim_with(&[], &[]);
    let var = |name: &str, container: &str| EnvVar {
        name: name.into(),
        value: "v".into(),
        container_name: container.into(),
    };
    claim.env = vec![
        var("A", ""),
        var("A", "other"),
        var("A", ""),
        var("", ""),
        var("B=C", ""),
    ];
    let message = messages(check(&claim, &ValidationContext::default()));
    assert_eq!(
        message,
        concat!(
            r#"spec.env: [2].name "A" is set more than once for the same container; "#,
            r#"[3].name is required; [4].name "B=C" must not contain '='"#
        )
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut claim = claim_with(&[("team", "a")], &[]);
    claim.warm_pool_ref.name.clear();
    claim.volume_claim_templates = vec![pvc("x"), pvc("x")];
    let problems = check(&claim, &ValidationContext::default())
        .expect_err("invalid")
        .0;
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.additionalPodMetadata",
            "spec.volumeClaimTemplates",
            "spec.warmPoolRef"
        ]
    );
}

#[test]
fn dns_names() {
    assert!(is_dns_label("a-1"));
    assert!(!is_dns_label("-a") && !is_dns_label("a-") && !is_dns_label("A") && !is_dns_label(""));
    assert!(!is_dns_label(&"a".repeat(64)));
    assert!(is_dns_subdomain("a.b-c.d"));
    assert!(!is_dns_subdomain("a..b"));
}
