//! SandboxWarmPool: `replicas` is required in v1alpha1 and optional (default 1) in v1beta1.

use super::metadata::with_annotation;
use super::spoke::{ConversionError, Spoke};
use crate::keys::annotations::V1ALPHA1_SANDBOXWARMPOOL_STATE as SNAPSHOT;
use crate::{v1alpha1, v1beta1};

impl Spoke for v1alpha1::SandboxWarmPool {
    type Hub = v1beta1::SandboxWarmPool;

    fn to_hub(&self) -> Result<v1beta1::SandboxWarmPool, ConversionError> {
        Ok(v1beta1::SandboxWarmPool {
            metadata: with_annotation(&self.metadata, SNAPSHOT, None),
            spec: v1beta1::SandboxWarmPoolSpec {
                replicas: Some(self.spec.replicas),
                sandbox_template_ref: self.spec.sandbox_template_ref.clone(),
                update_strategy: self.spec.update_strategy.clone(),
            },
            status: self
                .status
                .as_ref()
                .map(|status| v1beta1::SandboxWarmPoolStatus {
                    replicas: status.replicas,
                    ready_replicas: status.ready_replicas,
                    selector: status.selector.clone(),
                    observed_generation: 0,
                }),
        })
    }

    fn from_hub(hub: &v1beta1::SandboxWarmPool) -> Result<Self, ConversionError> {
        Ok(v1alpha1::SandboxWarmPool {
            metadata: with_annotation(&hub.metadata, SNAPSHOT, None),
            spec: v1alpha1::SandboxWarmPoolSpec {
                replicas: hub.spec.replicas(),
                sandbox_template_ref: hub.spec.sandbox_template_ref.clone(),
                update_strategy: hub.spec.update_strategy.clone(),
            },
            status: hub
                .status
                .as_ref()
                .map(|status| v1alpha1::SandboxWarmPoolStatus {
                    replicas: status.replicas,
                    ready_replicas: status.ready_replicas,
                    selector: status.selector.clone(),
                }),
        })
    }
}
