//! The secure defaults of a Pod built from a template: no service-account token unless asked for,
//! and public DNS where the default NetworkPolicy blocks cluster DNS.

use agent_sandbox_api::extensions::NetworkPolicyManagement;
use agent_sandbox_api::v1beta1::SandboxTemplate;
use k8s_openapi::api::core::v1::{PodDNSConfig, PodSpec};

/// Public resolvers used when the default policy blocks cluster DNS.
pub const PUBLIC_NAMESERVERS: [&str; 2] = ["8.8.8.8", "1.1.1.1"];

/// The secure defaults for a Pod spec built from `template`: no service-account token unless asked for,
/// and public DNS when the default policy (which blocks cluster DNS) applies and no DNS policy is set.
pub fn apply_secure_defaults(spec: &mut PodSpec, template: &SandboxTemplate) {
    spec.automount_service_account_token.get_or_insert(false);
    let managed = template.spec.network_policy_management.unwrap_or_default()
        == NetworkPolicyManagement::Managed;
    if managed
        && template.spec.network_policy.is_none()
        && spec.dns_policy.as_deref().unwrap_or_default().is_empty()
    {
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(PodDNSConfig {
            nameservers: Some(PUBLIC_NAMESERVERS.iter().map(|n| (*n).to_owned()).collect()),
            ..PodDNSConfig::default()
        });
    }
}
