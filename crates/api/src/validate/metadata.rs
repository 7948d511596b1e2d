//! A claim's `additionalPodMetadata`: allow-listed label domains, no reserved annotation domains.

use super::context::ValidationContext;
use super::names::{is_qualified_name_part, is_within, qualified_name};
use super::report::fail;
use crate::common::PodMetadata;

/// The one restricted-domain annotation a claim may set.
pub(super) const EXEMPT_ANNOTATION: &str = crate::keys::annotations::SAFE_TO_EVICT;

/// Annotation domains (and their sub-domains) claims may not set.
const FORBIDDEN_ANNOTATION_DOMAINS: [&str; 3] = ["kubernetes.io", "k8s.io", "agents.x-k8s.io"];

/// A claim's `additionalPodMetadata`: allow-listed label domains, no reserved annotation domains.
pub fn additional_pod_metadata(value: &PodMetadata, ctx: &ValidationContext) -> garde::Result {
    let labels = value
        .labels
        .iter()
        .flat_map(|(key, label)| label_problems(key, label, ctx));
    let annotations = value
        .annotations
        .keys()
        .filter_map(|key| annotation_problem(key));
    fail(labels.chain(annotations).collect())
}

/// What is wrong with a label's key (its domain) and with its value.
fn label_problems(key: &str, label: &str, ctx: &ValidationContext) -> Vec<String> {
    let allowed = || ctx.allowed_label_domains.join(", ");
    let key_problem = match qualified_name(key) {
        Err(problem) => Some(format!("label {problem}")),
        Ok((None, name))
            if name.eq_ignore_ascii_case("app") && label.eq_ignore_ascii_case("sandbox-router") =>
        {
            Some("label app=sandbox-router is reserved for the sandbox router".into())
        }
        Ok((None, _)) => Some(format!(
            "label {key:?} needs a domain prefix from the allow-list ({})",
            allowed()
        )),
        Ok((Some(prefix), _)) => {
            let prefix = prefix.to_ascii_lowercase();
            let permitted = ctx
                .allowed_label_domains
                .iter()
                .any(|domain| is_within(&prefix, domain));
            (!permitted).then(|| {
                format!(
                    "label {key:?}: domain {prefix:?} is not in the allow-list ({})",
                    allowed()
                )
            })
        }
    };
    let value_problem = (!label.is_empty() && !is_qualified_name_part(label)).then(|| {
        format!(
            "label {key:?}: value {label:?} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        )
    });
    key_problem.into_iter().chain(value_problem).collect()
}

/// What is wrong with an annotation's key: malformed, or in a reserved domain.
fn annotation_problem(key: &str) -> Option<String> {
    match qualified_name(key) {
        Err(problem) => Some(format!("annotation {problem}")),
        Ok(_) if key == EXEMPT_ANNOTATION => None,
        Ok((Some(prefix), _)) => {
            let prefix = prefix.to_ascii_lowercase();
            FORBIDDEN_ANNOTATION_DOMAINS
                .iter()
                .find(|domain| is_within(&prefix, domain))
                .map(|domain| format!("annotation {key:?}: domain {domain:?} is reserved"))
        }
        Ok((None, _)) => None,
    }
}
