//! The writes of a template pass: the template's hash label and its managed NetworkPolicy.

use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_core::template::Action;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;

use crate::runtime::error::is_not_found;
use crate::runtime::writes::{Guard, Writer};

/// The metric label of an action.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::PatchTemplate { .. } => "patch_template",
        Action::CreateNetworkPolicy(_) => "create_network_policy",
        Action::ReplaceNetworkPolicy(_) => "replace_network_policy",
        Action::DeleteNetworkPolicy { .. } => "delete_network_policy",
    }
}

/// Executes one action. A template or policy already gone needs nothing more, except a policy that
/// was to be replaced: that is a lost race (like a conflict) and is returned as the error it is, for
/// the retry policy to look again soon.
pub async fn execute(
    writer: &Writer,
    template: &SandboxTemplate,
    action: &Action,
) -> Result<(), kube::Error> {
    let namespace = template.namespace().unwrap_or_default();
    let uid = template.uid().unwrap_or_default();
    let result = match action {
        Action::PatchTemplate { patch } => writer
            .patch::<SandboxTemplate>(&namespace, &template.name_any(), Some(&uid), patch)
            .await
            .map(drop),
        Action::CreateNetworkPolicy(policy) => writer.create(&namespace, policy).await.map(drop),
        Action::ReplaceNetworkPolicy(policy) => writer.replace(&namespace, policy).await.map(drop),
        Action::DeleteNetworkPolicy { name, uid } => writer
            .delete::<NetworkPolicy>(&namespace, name, Guard::uid(uid), false)
            .await
            .map(drop),
    };
    match result {
        Err(error)
            if is_not_found(&error) && !matches!(action, Action::ReplaceNetworkPolicy(_)) =>
        {
            Ok(())
        }
        other => other,
    }
}
