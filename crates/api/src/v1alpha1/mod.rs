//! `v1alpha1`: the deprecated version, still served; converted to and from `v1beta1` (see [`crate::convert`]).

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
pub use claim::{SandboxClaim, SandboxClaimSpec, WarmPoolPolicy};
pub use sandbox::{Sandbox, SandboxSpec, SandboxStatus};
pub use template::{SandboxTemplate, SandboxTemplateSpec};
pub use warmpool::{SandboxWarmPool, SandboxWarmPoolSpec, SandboxWarmPoolStatus};
