//! Permanent configuration errors of a Sandbox (`Ready=False/InvalidConfiguration`): a spec failing
//! the semantic checks, a child name the API server would refuse, or a create the API server rejected
//! as invalid. Only a change of the Sandbox can fix one, so it is reported once and not retried, and no
//! child is created while it lasts.

use agent_sandbox_api::conditions::{sandbox as reason, types};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxStatus};
use agent_sandbox_api::validate::{self, ValidationContext, is_dns_label};

use super::pvc::pvc_name;
use crate::conditions as condition_list;

/// The longest name of a PVC (a DNS subdomain).
const MAX_NAME: usize = 253;

/// What is wrong with the Sandbox as it is, one line per problem, each naming the object and field.
pub(super) fn problems(sandbox: &Sandbox) -> Vec<String> {
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    if let Err(invalid) = validate::check(&sandbox.spec, &ValidationContext::default()) {
        problems.push(format!("invalid spec: {invalid}"));
    }
    if sandbox.spec.blueprint.service == Some(true) {
        problems.extend(service_name_problem(name));
    }
    for template in &sandbox.spec.blueprint.volume_claim_templates {
        let pvc = pvc_name(&template.metadata.name, name);
        // Both parts are valid names (checked above, and by the API server for the Sandbox's), so
        // only the length can fail.
        if pvc.len() > MAX_NAME {
            problems.push(format!(
                "cannot create PVC {pvc:?}: its name (volumeClaimTemplates {:?} + \"-\" + \
                 metadata.name) is longer than {MAX_NAME} characters",
                template.metadata.name
            ));
        }
    }
    problems
}

/// The Service is named like the Sandbox, and a Service name must be a DNS-1035 label.
fn service_name_problem(name: &str) -> Option<String> {
    let why = if name.len() > 63 {
        format!("is {} characters long, more than 63", name.len())
    } else if !is_dns_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter)"
            .to_owned()
    } else {
        return None;
    };
    Some(format!(
        "cannot create Service {name:?} (spec.service is true): its name, the Sandbox's \
         metadata.name, {why}"
    ))
}

/// The message of an earlier rejection by the API server that still holds: the Ready condition says
/// `InvalidConfiguration` for this very generation. Creating the same objects again would fail the
/// same way, so the pass does not try until the spec changes.
pub(super) fn rejected_earlier(old: &SandboxStatus, generation: Option<i64>) -> Option<String> {
    condition_list::find(&old.conditions, types::READY)
        .filter(|c| {
            c.reason == reason::INVALID_CONFIGURATION && c.observed_generation == generation
        })
        .map(|c| c.message.clone())
}

#[cfg(test)]
mod tests {
    use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
    use agent_sandbox_api::v1beta1::SandboxSpec;
    use k8s_openapi::api::core::v1::Container;

    use super::*;

    fn named(name: &str, service: Option<bool>, templates: &[&str]) -> Sandbox {
        let mut sandbox = Sandbox::new(name, SandboxSpec::default());
        let blueprint = &mut sandbox.spec.blueprint;
        blueprint.pod_template.spec.containers = vec![Container {
            name: "main".into(),
            ..Container::default()
        }];
        blueprint.service = service;
        blueprint.volume_claim_templates = templates
            .iter()
            .map(|t| PersistentVolumeClaimTemplate::named(*t))
            .collect();
        sandbox
    }

    #[test]
    fn a_service_name_must_be_a_dns_1035_label_only_when_a_service_is_wanted() {
        let long = "a".repeat(64);
        assert!(problems(&named(&long, None, &[])).is_empty());
        assert!(problems(&named(&long, Some(false), &[])).is_empty());
        assert_eq!(
            problems(&named(&long, Some(true), &[])),
            [format!(
                "cannot create Service {long:?} (spec.service is true): its name, the Sandbox's \
                 metadata.name, is 64 characters long, more than 63"
            )]
        );
        for bad in ["1abc", "a.b"] {
            let found = problems(&named(bad, Some(true), &[]));
            assert!(
                found.len() == 1 && found[0].contains("is not a DNS-1035 label"),
                "{bad}: {found:?}"
            );
        }
        assert!(problems(&named(&"a".repeat(63), Some(true), &[])).is_empty());
    }

    #[test]
    fn a_pvc_name_over_253_characters_is_reported_with_its_template() {
        // A Sandbox name is a DNS subdomain: labels of at most 63 characters joined by dots.
        let labels = |n: usize| vec!["b".repeat(62); n].join(".");
        let found = problems(&named(&labels(4), None, &["data"]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("volumeClaimTemplates \"data\""),
            "{}",
            found[0]
        );
        assert!(problems(&named(&labels(3), None, &["data"])).is_empty());
    }

    #[test]
    fn an_earlier_rejection_holds_for_its_generation_only() {
        let mut status = SandboxStatus::default();
        condition_list::set(
            &mut status.conditions,
            crate::conditions::Desired::new(
                types::READY,
                "False",
                reason::INVALID_CONFIGURATION,
                "failed to create pod: bad",
            ),
            Some(3),
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            rejected_earlier(&status, Some(3)).as_deref(),
            Some("failed to create pod: bad")
        );
        assert_eq!(rejected_earlier(&status, Some(4)), None);
        assert_eq!(rejected_earlier(&SandboxStatus::default(), Some(3)), None);
    }
}
