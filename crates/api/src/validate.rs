//! Semantic checks the OpenAPI schema cannot express, as garde validators with readable messages.
//!
//! The API server enforces the schema; these checks catch the rest (unique names, label domains,
//! empty references) so controllers can report them as a status condition instead of failing later.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;

use crate::common::{
    LocalObjectReference, PersistentVolumeClaimTemplate, PodMetadata, PodTemplate,
};
use crate::extensions::EnvVar;

/// The label domain claims may use in `additionalPodMetadata` unless configured otherwise.
pub const DEFAULT_ALLOWED_LABEL_DOMAIN: &str = "sandbox.users.io";

/// The one restricted-domain annotation a claim may set.
const EXEMPT_ANNOTATION: &str = crate::keys::annotations::SAFE_TO_EVICT;

/// Annotation domains (and their sub-domains) claims may not set.
const FORBIDDEN_ANNOTATION_DOMAINS: [&str; 3] = ["kubernetes.io", "k8s.io", "agents.x-k8s.io"];

/// Settings the semantic checks depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// Lower-case domains whose labels (or sub-domains' labels) claims may add to their Pods.
    pub allowed_label_domains: Vec<String>,
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self {
            allowed_label_domains: vec![DEFAULT_ALLOWED_LABEL_DOMAIN.to_owned()],
        }
    }
}

impl ValidationContext {
    /// Parses an allow-list file's text: domains separated by commas or newlines, lower-cased.
    /// Empty text gives the default allow-list.
    pub fn from_allowed_domains(text: &str) -> Self {
        let domains: Vec<String> = text
            .split([',', '\n'])
            .map(|domain| domain.trim().to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect();
        if domains.is_empty() {
            Self::default()
        } else {
            Self {
                allowed_label_domains: domains,
            }
        }
    }
}

/// One problem found by [`check`], located by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending field, e.g. `spec.volumeClaimTemplates`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems [`check`] found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<Problem>);

/// Runs the semantic checks on a spec; problems name fields by their JSON path under `spec`.
pub fn check<T>(spec: &T, ctx: &ValidationContext) -> Result<(), Invalid>
where
    T: garde::Validate<Context = ValidationContext> + ?Sized,
{
    let report = match spec.validate_with(ctx) {
        Ok(()) => return Ok(()),
        Err(report) => report,
    };
    let problems = report
        .iter()
        .map(|(path, error)| Problem {
            path: json_path(&path.to_string()),
            message: error.message().to_owned(),
        })
        .collect();
    Err(Invalid(problems))
}

/// `blueprint.pod_template` → `spec.podTemplate`: Rust field names to JSON names, flattened structs removed.
fn json_path(rust_path: &str) -> String {
    let mut path = String::from("spec");
    for component in rust_path
        .split('.')
        .filter(|c| !c.is_empty() && *c != "blueprint")
    {
        path.push('.');
        let mut upper = false;
        for c in component.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                path.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                path.push(c);
            }
        }
    }
    path
}

fn fail(problems: Vec<String>) -> garde::Result {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(garde::Error::new(problems.join("; ")))
    }
}

/// True for an RFC 1123 label: lower-case alphanumerics and `-`, at most 63, alphanumeric at both ends.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// True for an RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// True for the name part of a qualified name (and for a non-empty label value).
fn is_qualified_name_part(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Splits a qualified name `[prefix/]name`, or explains why it is not one.
fn qualified_name(key: &str) -> Result<(Option<&str>, &str), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!("key {key:?}: prefix must be a DNS subdomain"));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "key {key:?}: name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok((prefix, name))
}

fn is_within(domain: &str, parent: &str) -> bool {
    domain == parent
        || domain
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// A claim's `additionalPodMetadata`: allow-listed label domains, no reserved annotation domains.
pub fn additional_pod_metadata(value: &PodMetadata, ctx: &ValidationContext) -> garde::Result {
    let mut problems = Vec::new();
    for (key, label) in &value.labels {
        match qualified_name(key) {
            Err(problem) => problems.push(format!("label {problem}")),
            Ok((None, name))
                if name.eq_ignore_ascii_case("app")
                    && label.eq_ignore_ascii_case("sandbox-router") =>
            {
                problems.push("label app=sandbox-router is reserved for the sandbox router".into())
            }
            Ok((None, _)) => problems.push(format!(
                "label {key:?} needs a domain prefix from the allow-list ({})",
                ctx.allowed_label_domains.join(", ")
            )),
            Ok((Some(prefix), _)) => {
                let prefix = prefix.to_ascii_lowercase();
                if !ctx
                    .allowed_label_domains
                    .iter()
                    .any(|allowed| is_within(&prefix, allowed))
                {
                    problems.push(format!(
                        "label {key:?}: domain {prefix:?} is not in the allow-list ({})",
                        ctx.allowed_label_domains.join(", ")
                    ));
                }
            }
        }
        if !label.is_empty() && !is_qualified_name_part(label) {
            problems.push(format!(
                "label {key:?}: value {label:?} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
            ));
        }
    }
    for key in value.annotations.keys() {
        match qualified_name(key) {
            Err(problem) => problems.push(format!("annotation {problem}")),
            Ok(_) if key == EXEMPT_ANNOTATION => {}
            Ok((Some(prefix), _)) => {
                let prefix = prefix.to_ascii_lowercase();
                if let Some(domain) = FORBIDDEN_ANNOTATION_DOMAINS
                    .iter()
                    .find(|domain| is_within(&prefix, domain))
                {
                    problems.push(format!("annotation {key:?}: domain {domain:?} is reserved"));
                }
            }
            Ok((None, _)) => {}
        }
    }
    fail(problems)
}

/// Volume claim templates: every name a DNS label, no name twice.
pub fn volume_claim_templates<C>(value: &[PersistentVolumeClaimTemplate], _: &C) -> garde::Result {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (index, template) in value.iter().enumerate() {
        let name = template.metadata.name.as_str();
        if name.is_empty() {
            problems.push(format!("[{index}].metadata.name is required"));
        } else if !is_dns_label(name) {
            problems.push(format!(
                "[{index}].metadata.name {name:?} must be a DNS label (lower-case alphanumerics and '-', at most 63)"
            ));
        } else if !seen.insert(name) {
            problems.push(format!(
                "[{index}].metadata.name {name:?} is used more than once"
            ));
        }
    }
    fail(problems)
}

/// A pod template: at least one container, container names unique across init and regular containers.
pub fn pod_template<C>(value: &PodTemplate, _: &C) -> garde::Result {
    let PodSpec {
        containers,
        init_containers,
        ..
    } = &value.spec;
    let mut problems = Vec::new();
    if containers.is_empty() {
        problems.push("spec.containers must list at least one container".to_owned());
    }
    let mut seen = BTreeSet::new();
    let names = init_containers
        .iter()
        .flatten()
        .map(|c| &c.name)
        .chain(containers.iter().map(|c| &c.name));
    for name in names {
        if !is_dns_label(name) {
            problems.push(format!("container name {name:?} must be a DNS label"));
        } else if !seen.insert(name) {
            problems.push(format!("container name {name:?} is used more than once"));
        }
    }
    fail(problems)
}

/// A reference to another object: the name must be set.
pub fn reference<C>(value: &LocalObjectReference, _: &C) -> garde::Result {
    if value.name.is_empty() {
        Err(garde::Error::new("name is required"))
    } else if !is_dns_subdomain(&value.name) {
        Err(garde::Error::new(format!(
            "name {:?} is not a valid object name",
            value.name
        )))
    } else {
        Ok(())
    }
}

/// Claim environment variables: names set, without `=`, not repeated for the same container.
pub fn env<C>(value: &[EnvVar], _: &C) -> garde::Result {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (index, var) in value.iter().enumerate() {
        if var.name.is_empty() {
            problems.push(format!("[{index}].name is required"));
        } else if var.name.contains('=') {
            problems.push(format!(
                "[{index}].name {:?} must not contain '='",
                var.name
            ));
        } else if !seen.insert((var.container_name.as_str(), var.name.as_str())) {
            problems.push(format!(
                "[{index}].name {:?} is set more than once for the same container",
                var.name
            ));
        }
    }
    fail(problems)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::common::EmbeddedObjectMetadata;
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
        assert!(
            !is_dns_label("-a") && !is_dns_label("a-") && !is_dns_label("A") && !is_dns_label("")
        );
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
    }
}
