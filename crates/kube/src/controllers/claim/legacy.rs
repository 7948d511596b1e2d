//! Old upstream versions made a NetworkPolicy per claim (`<claim>-network-policy`); nothing makes it
//! any more, so each claim's is looked for once per process and deleted if the claim controls it.

use std::collections::HashSet;
use std::sync::Mutex;

use agent_sandbox_api::keys::EXTENSIONS_GROUP;
use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_core::ownership::controller_of;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Api, ResourceExt};

use crate::runtime::writes::{Guard, Writer};

/// Claims (by UID) whose legacy NetworkPolicy was looked for.
#[derive(Default)]
pub struct LegacyPolicies {
    checked: Mutex<HashSet<String>>,
}

impl LegacyPolicies {
    /// Deletes `<claim>-network-policy` if this claim controls it; once per claim.
    pub async fn remove(&self, writer: &Writer, claim: &SandboxClaim) {
        let Some(uid) = claim.metadata.uid.clone() else {
            return;
        };
        if !self
            .checked
            .lock()
            .is_ok_and(|mut checked| checked.insert(uid.clone()))
        {
            return;
        }
        let namespace = claim.namespace().unwrap_or_default();
        let api: Api<NetworkPolicy> = Api::namespaced(writer.client().clone(), &namespace);
        let name = format!("{}-network-policy", claim.name_any());
        let Ok(Some(policy)) = api.get_opt(&name).await else {
            return;
        };
        let ours = controller_of(&policy.metadata, EXTENSIONS_GROUP, "SandboxClaim")
            .is_some_and(|r| r.uid == uid);
        if !ours {
            return;
        }
        let guard = Guard {
            uid: policy.metadata.uid.clone(),
            resource_version: None,
        };
        if let Err(error) = writer
            .delete::<NetworkPolicy>(&namespace, &name, guard, false)
            .await
        {
            tracing::info!(%error, policy = name, "could not delete the legacy claim NetworkPolicy");
        }
    }

    /// Forgets a deleted claim.
    pub fn forget(&self, claim: &SandboxClaim) {
        if let (Ok(mut checked), Some(uid)) = (self.checked.lock(), &claim.metadata.uid) {
            checked.remove(uid);
        }
    }
}
