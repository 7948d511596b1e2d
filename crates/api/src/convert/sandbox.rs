//! Sandbox: `replicas` 0/1 ⇄ `operatingMode`; `status.replicas` is synthesised, `status.nodeName` dropped.

use super::metadata::{read_snapshot, snapshot, with_annotation};
use super::spoke::{ConversionError, Spoke};
use crate::keys::annotations::V1ALPHA1_SANDBOX_STATE as SNAPSHOT;
use crate::v1beta1::{Lifecycle, SandboxBlueprint, SandboxOperatingMode};
use crate::{v1alpha1, v1beta1};

impl Spoke for v1alpha1::Sandbox {
    type Hub = v1beta1::Sandbox;

    fn to_hub(&self) -> Result<v1beta1::Sandbox, ConversionError> {
        let spec = &self.spec;
        let operating_mode = if spec.replicas == Some(0) {
            SandboxOperatingMode::Suspended
        } else {
            SandboxOperatingMode::Running
        };
        Ok(v1beta1::Sandbox {
            metadata: with_annotation(&self.metadata, SNAPSHOT, snapshot(self, SNAPSHOT)),
            spec: v1beta1::SandboxSpec {
                blueprint: SandboxBlueprint {
                    pod_template: spec.pod_template.clone(),
                    volume_claim_templates: spec.volume_claim_templates.clone(),
                    service: spec.service,
                },
                lifecycle: Lifecycle {
                    shutdown_time: spec.shutdown_time.clone(),
                    shutdown_policy: spec.shutdown_policy,
                },
                operating_mode: Some(operating_mode),
            },
            status: self.status.as_ref().map(|status| v1beta1::SandboxStatus {
                service_fqdn: status.service_fqdn.clone(),
                service: status.service.clone(),
                conditions: status.conditions.clone(),
                selector: status.selector.clone(),
                pod_ips: status.pod_ips.clone(),
                node_name: String::new(),
            }),
        })
    }

    fn from_hub(hub: &v1beta1::Sandbox) -> Result<Self, ConversionError> {
        let previous: Option<v1alpha1::Sandbox> = read_snapshot(&hub.metadata, SNAPSHOT);
        let suspended = hub.spec.operating_mode() == SandboxOperatingMode::Suspended;
        let replicas = match (suspended, &previous) {
            (true, _) => Some(0),
            // An explicitly unset value round-trips as unset; a stale 0 does not survive a resume.
            (false, Some(previous)) if previous.spec.replicas != Some(0) => previous.spec.replicas,
            (false, _) => Some(1),
        };
        let hub_status = hub.status.clone().unwrap_or_default();
        let status = v1alpha1::SandboxStatus {
            service_fqdn: hub_status.service_fqdn,
            service: hub_status.service,
            conditions: hub_status.conditions,
            selector: hub_status.selector,
            pod_ips: hub_status.pod_ips,
            replicas: match &previous {
                Some(previous) => previous.status.as_ref().map_or(0, |s| s.replicas),
                None => i32::from(!suspended),
            },
        };
        let spec = &hub.spec;
        Ok(v1alpha1::Sandbox {
            metadata: with_annotation(&hub.metadata, SNAPSHOT, None),
            spec: v1alpha1::SandboxSpec {
                pod_template: spec.blueprint.pod_template.clone(),
                volume_claim_templates: spec.blueprint.volume_claim_templates.clone(),
                shutdown_time: spec.lifecycle.shutdown_time.clone(),
                shutdown_policy: spec.lifecycle.shutdown_policy,
                replicas,
                service: spec.blueprint.service,
            },
            status: (status != v1alpha1::SandboxStatus::default()).then_some(status),
        })
    }
}
