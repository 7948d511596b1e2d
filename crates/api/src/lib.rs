//! Kubernetes Agent Sandbox API: the `agents.x-k8s.io` and `extensions.agents.x-k8s.io` kinds in both
//! served versions, their well-known keys, pure version conversion and semantic validation.
//!
//! ```
//! use agent_sandbox_api::hash::name_hash;
//! use agent_sandbox_api::keys::labels::SANDBOX_NAME_HASH;
//!
//! // The CRDs of the default install (v1beta1 only), as `cargo xtask crdgen` writes them.
//! let crds = agent_sandbox_api::crd::all();
//! assert_eq!(crds.len(), 4);
//! // The label the controller puts on a Sandbox's Pod, as upstream computes it.
//! let label = format!("{SANDBOX_NAME_HASH}={}", name_hash("demo"));
//! assert!(label.starts_with("agents.x-k8s.io/sandbox-name-hash="));
//! ```

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
