//! One pass of the template controller: the template's hash label, then its NetworkPolicy.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use serde_json::json;

use super::decision::{Action, Observed, Plan};
use super::network_policy;

/// Decides one pass for a template.
pub fn plan(observed: &Observed) -> Plan {
    let template = observed.template;
    // A template being deleted is left as it is: no label patch, no policy work (GC removes the policy).
    if template.metadata.deletion_timestamp.is_some() {
        return Plan::default();
    }
    let hash = name_hash(template.metadata.name.as_deref().unwrap_or_default());
    let current = template
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SANDBOX_TEMPLATE_REF_HASH));
    let mut actions = Vec::new();
    if current != Some(&hash) {
        actions.push(Action::PatchTemplate {
            patch: json!({"metadata": {"labels": {labels::SANDBOX_TEMPLATE_REF_HASH: hash}}}),
        });
    }
    match network_policy::reconcile(template, observed.network_policy, &hash) {
        Ok(action) => {
            actions.extend(action);
            Plan {
                actions,
                error: None,
            }
        }
        Err(error) => Plan {
            actions,
            error: Some(error),
        },
    }
}
