//! Pure conversion between `v1alpha1` (spoke) and `v1beta1` (hub, storage) for all four kinds.
//!
//! Going to the hub, the Sandbox and SandboxClaim keep a JSON snapshot of the v1alpha1 object in an
//! annotation so that fields v1beta1 cannot express survive a round trip. Templates and pools need no
//! snapshot (nothing is restored from it), so unlike upstream none is written for them: a template with
//! a large pod spec would otherwise double in size and can exceed the annotation size limit.

mod claim;
mod metadata;
mod sandbox;
mod spoke;
mod template;
mod warmpool;

pub use claim::SHADOW_POOL_PREFIX;
pub use spoke::{ConversionError, Spoke};
