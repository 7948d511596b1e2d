//! SandboxClaim: v1alpha1 names a template and a `warmpool` policy, v1beta1 names a pool.

use super::metadata::{read_snapshot, snapshot, with_annotation};
use super::spoke::{ConversionError, Spoke};
use crate::common::LocalObjectReference;
use crate::keys::annotations::V1ALPHA1_SANDBOXCLAIM_STATE as SNAPSHOT;
use crate::v1alpha1::WarmPoolPolicy;
use crate::{v1alpha1, v1beta1};

/// Prefix of the pools the migration creates to serve v1alpha1 cold-start claims.
pub const SHADOW_POOL_PREFIX: &str = "shadow-pool-";

/// `name` without its last `-suffix` (the random suffix of a pool member), or all of it without a dash.
fn without_last_suffix(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(prefix, _)| prefix)
}

/// The sandbox name in a claim status, if any.
fn bound_sandbox(status: Option<&v1beta1::SandboxClaimStatus>) -> Option<&str> {
    status
        .map(|status| status.sandbox.name.as_str())
        .filter(|name| !name.is_empty())
}

/// The pool a v1alpha1 claim is served from.
fn warm_pool_name(claim: &v1alpha1::SandboxClaim) -> String {
    if let WarmPoolPolicy::Specific(pool) = claim.spec.warm_pool_policy() {
        return pool.to_owned();
    }
    let own_name = claim.metadata.name.as_deref().unwrap_or_default();
    match bound_sandbox(claim.status.as_ref()) {
        Some(sandbox) if sandbox != own_name => without_last_suffix(sandbox).to_owned(),
        _ => format!(
            "{SHADOW_POOL_PREFIX}{}",
            claim.spec.sandbox_template_ref.name
        ),
    }
}

impl Spoke for v1alpha1::SandboxClaim {
    type Hub = v1beta1::SandboxClaim;

    fn to_hub(&self) -> Result<v1beta1::SandboxClaim, ConversionError> {
        Ok(v1beta1::SandboxClaim {
            metadata: with_annotation(&self.metadata, SNAPSHOT, snapshot(self, SNAPSHOT)),
            spec: v1beta1::SandboxClaimSpec {
                warm_pool_ref: LocalObjectReference {
                    name: warm_pool_name(self),
                },
                lifecycle: self.spec.lifecycle.clone(),
                additional_pod_metadata: self.spec.additional_pod_metadata.clone(),
                env: self.spec.env.clone(),
                volume_claim_templates: Vec::new(),
            },
            status: self.status.clone(),
        })
    }

    fn from_hub(hub: &v1beta1::SandboxClaim) -> Result<Self, ConversionError> {
        let pool = hub.spec.warm_pool_ref.name.as_str();
        let previous: Option<v1alpha1::SandboxClaim> = read_snapshot(&hub.metadata, SNAPSHOT);
        let (template, warmpool) = match previous {
            Some(previous) => {
                let expected = match previous.spec.warm_pool_policy() {
                    WarmPoolPolicy::Specific(pool) => pool.to_owned(),
                    _ => previous.spec.sandbox_template_ref.name.clone(),
                };
                let sandbox = bound_sandbox(hub.status.as_ref());
                let unchanged = pool == expected
                    || pool == format!("{SHADOW_POOL_PREFIX}{expected}")
                    || sandbox.is_some_and(|s| pool == s || pool == without_last_suffix(s));
                if unchanged {
                    (previous.spec.sandbox_template_ref, previous.spec.warmpool)
                } else {
                    (previous.spec.sandbox_template_ref, Some(pool.to_owned()))
                }
            }
            None => match pool.strip_prefix(SHADOW_POOL_PREFIX) {
                Some(template) => (
                    LocalObjectReference {
                        name: template.to_owned(),
                    },
                    Some("default".to_owned()),
                ),
                // Without a snapshot the template is unknown; the pool name is the best guess.
                None => (
                    LocalObjectReference {
                        name: pool.to_owned(),
                    },
                    Some(pool.to_owned()),
                ),
            },
        };
        Ok(v1alpha1::SandboxClaim {
            metadata: with_annotation(&hub.metadata, SNAPSHOT, None),
            spec: v1alpha1::SandboxClaimSpec {
                sandbox_template_ref: template,
                lifecycle: hub.spec.lifecycle.clone(),
                warmpool,
                additional_pod_metadata: hub.spec.additional_pod_metadata.clone(),
                env: hub.spec.env.clone(),
            },
            status: hub.status.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_removal_keeps_the_pool_name() {
        assert_eq!(without_last_suffix("my-pool-x7k2q"), "my-pool");
        assert_eq!(without_last_suffix("nodash"), "nodash");
    }
}
