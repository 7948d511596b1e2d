//! Warm adoption: whether a pool Sandbox may be taken by a claim, and what it looks like once taken.

use std::collections::BTreeMap;

use agent_sandbox_api::common::PodMetadata;
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate};

use super::metadata::{
    claim_reference, created_by, merge_no_override, set_created_by, trace_context,
};
use crate::ownership::{any_controller, controlling_pool};

fn label<'a>(sandbox: &'a Sandbox, key: &str) -> Option<&'a str> {
    sandbox
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Checks that `sandbox` is an unclaimed member of the claim's pool; the error says why not.
pub fn verify_candidate(sandbox: &Sandbox, claim: &SandboxClaim) -> Result<(), String> {
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    if sandbox.metadata.namespace != claim.metadata.namespace {
        return Err(format!(
            "sandbox {name:?} is in another namespace than the claim"
        ));
    }
    if sandbox.metadata.deletion_timestamp.is_some() {
        return Err(format!("sandbox {name:?} is being deleted"));
    }
    if label(sandbox, labels::WARM_POOL_SANDBOX).is_none() {
        return Err(format!(
            "sandbox {name:?} has no {} label",
            labels::WARM_POOL_SANDBOX
        ));
    }
    if label(sandbox, labels::SANDBOX_TEMPLATE_REF_HASH).is_none() {
        return Err(format!(
            "sandbox {name:?} has no {} label",
            labels::SANDBOX_TEMPLATE_REF_HASH
        ));
    }
    match controlling_pool(sandbox) {
        None if any_controller(&sandbox.metadata).is_none() => {
            Err(format!("sandbox {name:?} is unowned"))
        }
        None => Err(format!("sandbox {name:?} is not managed by a warm pool")),
        Some(pool) if pool != claim.spec.warm_pool_ref.name => Err(format!(
            "sandbox {name:?} belongs to pool {pool:?}, not {:?}",
            claim.spec.warm_pool_ref.name
        )),
        Some(_) => Ok(()),
    }
}

/// The Sandbox after `claim` adopts it: pool labels and the eviction hint gone, the claim as sole
/// controller, the claim's identity on labels and pod template, pod metadata rebuilt from the template
/// (when known) plus the claim's additional metadata.
pub fn complete(
    sandbox: &Sandbox,
    claim: &SandboxClaim,
    template: Option<&SandboxTemplate>,
) -> Result<Sandbox, String> {
    let mut adopted = sandbox.clone();
    let identity = Identity {
        uid: claim.metadata.uid.clone().unwrap_or_default(),
        created_by: created_by(claim),
    };
    let sandbox_labels = adopted.metadata.labels.get_or_insert_with(Default::default);
    let template_hash = relabel(sandbox_labels, &identity, template);
    adopted.metadata.owner_references = Some(vec![claim_reference(claim)]);
    let sandbox_annotations = adopted
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    if let Some(trace) = trace_context(claim) {
        sandbox_annotations.insert(annotations::TRACE_CONTEXT.to_owned(), trace.clone());
    }
    let pod_metadata = &mut adopted.spec.blueprint.pod_template.metadata;
    rebuild_pod_metadata(pod_metadata, &identity, template, template_hash);
    merge_no_override(pod_metadata, &claim.spec.additional_pod_metadata)?;
    Ok(adopted)
}

/// The claim's identity as its Sandbox's labels carry it.
struct Identity {
    uid: String,
    created_by: Option<String>,
}

/// Moves the Sandbox's labels from the pool to the claim; returns the template hash it keeps (its
/// own, else derived from the template).
fn relabel(
    sandbox_labels: &mut BTreeMap<String, String>,
    identity: &Identity,
    template: Option<&SandboxTemplate>,
) -> Option<String> {
    for key in [
        labels::WARM_POOL_SANDBOX,
        labels::SANDBOX_POD_TEMPLATE_HASH,
        labels::SANDBOX_TEMPLATE_HASH,
    ] {
        sandbox_labels.remove(key);
    }
    sandbox_labels.insert(
        labels::LAUNCH_TYPE.to_owned(),
        labels::LAUNCH_TYPE_WARM.to_owned(),
    );
    sandbox_labels.insert(labels::CLAIM_UID.to_owned(), identity.uid.clone());
    set_created_by(sandbox_labels, identity.created_by.as_ref());
    let template_hash = sandbox_labels
        .get(labels::SANDBOX_TEMPLATE_REF_HASH)
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| {
            template
                .and_then(|t| t.metadata.name.as_deref())
                .map(name_hash)
        });
    if let Some(hash) = &template_hash {
        sandbox_labels.insert(labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(), hash.clone());
    }
    template_hash
}

/// The pod metadata rebuilt from the template (or kept, without the pool's eviction hint) with the
/// claim's identity.
fn rebuild_pod_metadata(
    pod_metadata: &mut PodMetadata,
    identity: &Identity,
    template: Option<&SandboxTemplate>,
    template_hash: Option<String>,
) {
    if pod_metadata
        .annotations
        .get(annotations::SAFE_TO_EVICT)
        .map(String::as_str)
        == Some("true")
    {
        pod_metadata.annotations.remove(annotations::SAFE_TO_EVICT);
    }
    if let Some(template) = template {
        *pod_metadata = template.spec.blueprint.pod_template.metadata.clone();
    }
    pod_metadata
        .labels
        .insert(labels::CLAIM_UID.to_owned(), identity.uid.clone());
    set_created_by(&mut pod_metadata.labels, identity.created_by.as_ref());
    if let Some(hash) = template_hash {
        pod_metadata
            .labels
            .insert(labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(), hash);
    }
}

#[cfg(test)]
mod tests;
