//! SandboxTemplate: v1beta1's `volumeClaimTemplatesPolicy` travels through v1alpha1 in an annotation.

use super::metadata::{object_name, with_annotation};
use super::spoke::{ConversionError, Spoke};
use crate::keys::annotations::{
    V1ALPHA1_SANDBOXTEMPLATE_STATE as SNAPSHOT, V1BETA1_VOLUME_CLAIM_TEMPLATES_POLICY as POLICY,
};
use crate::v1beta1::{SandboxBlueprint, VolumeClaimTemplatesPolicy};
use crate::{v1alpha1, v1beta1};

fn parse_policy(value: &str) -> Option<VolumeClaimTemplatesPolicy> {
    match value {
        "Disallowed" => Some(VolumeClaimTemplatesPolicy::Disallowed),
        "Allowed" => Some(VolumeClaimTemplatesPolicy::Allowed),
        "Overrides" => Some(VolumeClaimTemplatesPolicy::Overrides),
        _ => None,
    }
}

fn policy_name(policy: VolumeClaimTemplatesPolicy) -> &'static str {
    match policy {
        VolumeClaimTemplatesPolicy::Disallowed => "Disallowed",
        VolumeClaimTemplatesPolicy::Allowed => "Allowed",
        VolumeClaimTemplatesPolicy::Overrides => "Overrides",
    }
}

impl Spoke for v1alpha1::SandboxTemplate {
    type Hub = v1beta1::SandboxTemplate;

    fn to_hub(&self) -> Result<v1beta1::SandboxTemplate, ConversionError> {
        let carried = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(POLICY));
        let policy = carried
            .map(|value| {
                parse_policy(value).ok_or_else(|| ConversionError::InvalidAnnotation {
                    kind: "SandboxTemplate",
                    object: object_name(&self.metadata),
                    key: POLICY,
                    value: value.clone(),
                    allowed: "Disallowed, Allowed, Overrides",
                })
            })
            .transpose()?;
        let metadata = with_annotation(&self.metadata, POLICY, None);
        let spec = &self.spec;
        Ok(v1beta1::SandboxTemplate {
            metadata: with_annotation(&metadata, SNAPSHOT, None),
            spec: v1beta1::SandboxTemplateSpec {
                blueprint: SandboxBlueprint {
                    pod_template: spec.pod_template.clone(),
                    volume_claim_templates: spec.volume_claim_templates.clone(),
                    service: spec.service,
                },
                network_policy: spec.network_policy.clone(),
                network_policy_management: spec.network_policy_management,
                env_vars_injection_policy: spec.env_vars_injection_policy,
                volume_claim_templates_policy: policy,
            },
        })
    }

    fn from_hub(hub: &v1beta1::SandboxTemplate) -> Result<Self, ConversionError> {
        let carried = hub
            .spec
            .volume_claim_templates_policy
            .map(|p| policy_name(p).to_owned());
        let metadata = with_annotation(&hub.metadata, POLICY, carried);
        let spec = &hub.spec;
        Ok(v1alpha1::SandboxTemplate {
            metadata: with_annotation(&metadata, SNAPSHOT, None),
            spec: v1alpha1::SandboxTemplateSpec {
                pod_template: spec.blueprint.pod_template.clone(),
                volume_claim_templates: spec.blueprint.volume_claim_templates.clone(),
                network_policy: spec.network_policy.clone(),
                network_policy_management: spec.network_policy_management,
                env_vars_injection_policy: spec.env_vars_injection_policy,
                service: spec.blueprint.service,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_parse_back() {
        for policy in [
            VolumeClaimTemplatesPolicy::Disallowed,
            VolumeClaimTemplatesPolicy::Allowed,
            VolumeClaimTemplatesPolicy::Overrides,
        ] {
            assert_eq!(parse_policy(policy_name(policy)), Some(policy));
        }
        assert_eq!(parse_policy("allowed"), None);
    }
}
