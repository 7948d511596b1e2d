//! Kubernetes Agent Sandbox API: the `agents.x-k8s.io` and `extensions.agents.x-k8s.io` kinds in both
//! served versions, their well-known keys, pure version conversion and semantic validation.

pub mod common;
pub mod conditions;
pub mod convert;
pub mod crd;
pub mod extensions;
pub mod hash;
pub mod keys;
pub mod v1alpha1;
pub mod v1beta1;
pub mod validate;
