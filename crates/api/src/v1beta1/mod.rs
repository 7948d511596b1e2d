//! `v1beta1`: the storage (hub) version of every kind.

mod claim;
mod sandbox;
mod template;
mod warmpool;

pub use crate::common::{
    EmbeddedObjectMetadata, LocalObjectReference, PersistentVolumeClaimTemplate, PodMetadata,
    PodTemplate, ShutdownPolicy,
};
pub use crate::extensions::{
    ClaimLifecycle, ClaimShutdownPolicy, EnvVar, EnvVarsInjectionPolicy, NetworkPolicyManagement,
    NetworkPolicySpec, SandboxClaimStatus, SandboxWarmPoolUpdateStrategy,
    SandboxWarmPoolUpdateStrategyType, SandboxedObjectStatus,
};
pub use claim::{SandboxClaim, SandboxClaimSpec};
pub use sandbox::{
    Lifecycle, Sandbox, SandboxBlueprint, SandboxOperatingMode, SandboxSpec, SandboxStatus,
};
pub use template::{SandboxTemplate, SandboxTemplateSpec, VolumeClaimTemplatesPolicy};
pub use warmpool::{SandboxWarmPool, SandboxWarmPoolSpec, SandboxWarmPoolStatus};
