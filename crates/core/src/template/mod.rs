//! The SandboxTemplate decision: the template's own hash label and its managed NetworkPolicy, plus the
//! secure defaults applied to Sandboxes built from a template.

mod decision;
mod network_policy;
mod plan;
mod secure_defaults;

pub use decision::{Action, Observed, Plan};
pub use network_policy::{ROUTER_NAMESPACE, desired_spec, network_policy_name};
pub use plan::plan;
pub use secure_defaults::{PUBLIC_NAMESERVERS, apply_secure_defaults};

#[cfg(test)]
mod tests;
