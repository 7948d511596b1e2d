//! Keeps the bound Sandbox's pod metadata equal to template + claim identity + the claim's additional
//! metadata, so later claim edits reach the Pod in place.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate};

use super::state::Pass;
use crate::claim::api::ClaimApi;
use crate::claim::metadata::{created_by, merge_no_override, set_created_by};
use crate::claim::patch;
use crate::claim::status::ClaimError;

/// The bound Sandbox after the sync (as written, or unchanged), and why the sync failed, if it did.
pub(super) async fn sync_metadata<A: ClaimApi>(
    pass: &Pass<'_, A>,
    sandbox: Sandbox,
) -> (Sandbox, Option<ClaimError>) {
    let template = match pass.template() {
        Ok(template) => template,
        Err(error) => {
            let extra = &pass.claim.spec.additional_pod_metadata;
            if extra.labels.is_empty() && extra.annotations.is_empty() {
                return (sandbox, None);
            }
            return (sandbox, Some(template_missing(error)));
        }
    };
    let updated = match synced(&sandbox, &pass.claim, &template) {
        Ok(updated) => updated,
        Err(conflict) => return (sandbox, Some(ClaimError::Other(conflict))),
    };
    let (Ok(before), Ok(after)) = (
        serde_json::to_value(&sandbox),
        serde_json::to_value(&updated),
    ) else {
        return (sandbox, None);
    };
    let diff = patch::diff(&before, &after);
    if patch::is_empty(&diff) {
        return (sandbox, None);
    }
    let name = sandbox.metadata.name.clone().unwrap_or_default();
    match pass.api.patch_sandbox(&name, diff).await {
        Ok(written) => (written, None),
        // The status keeps naming the Sandbox: this is transient.
        Err(error) => {
            let error = format!("failed to update sandbox {name:?} metadata: {error}");
            (sandbox, Some(ClaimError::Other(error)))
        }
    }
}

fn template_missing(error: ClaimError) -> ClaimError {
    ClaimError::Other(format!(
        "failed to get template for metadata propagation: {error}"
    ))
}

/// `sandbox` with the pod metadata and the labels the claim and template want; the error names a
/// key the claim's additional metadata would override.
fn synced(
    sandbox: &Sandbox,
    claim: &SandboxClaim,
    template: &SandboxTemplate,
) -> Result<Sandbox, String> {
    let template_hash = name_hash(template.metadata.name.as_deref().unwrap_or_default());
    let created_by = created_by(claim);
    let mut desired = template.spec.blueprint.pod_template.metadata.clone();
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    desired.labels.insert(labels::CLAIM_UID.to_owned(), uid);
    desired.labels.insert(
        labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(),
        template_hash.clone(),
    );
    set_created_by(&mut desired.labels, created_by.as_ref());
    merge_no_override(&mut desired, &claim.spec.additional_pod_metadata)?;
    let mut updated = sandbox.clone();
    updated.spec.blueprint.pod_template.metadata = desired;
    let sandbox_labels = updated.metadata.labels.get_or_insert_with(Default::default);
    sandbox_labels.insert(labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(), template_hash);
    set_created_by(sandbox_labels, created_by.as_ref());
    Ok(updated)
}
