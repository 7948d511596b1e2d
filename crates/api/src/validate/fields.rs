//! Field validators of the specs: volume claim templates, pod templates, references, claim env.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;

use super::names::{is_dns_label, is_dns_subdomain};
use super::report::fail;
use crate::common::{LocalObjectReference, PersistentVolumeClaimTemplate, PodTemplate};
use crate::extensions::EnvVar;

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
