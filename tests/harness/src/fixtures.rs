//! Typed test objects of the extension kinds: a template, a warm pool over it, a claim on the pool.
//! `extra` JSON is merged into the spec (top-level keys replace the defaults).

use agent_sandbox_api::v1beta1::{SandboxClaim, SandboxTemplate, SandboxWarmPool};
use anyhow::Context;
use serde_json::{Value, json};

/// The image every fixture runs (kwok never pulls it).
pub const IMAGE: &str = "registry.invalid/agent:1";

fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

fn typed<K: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> anyhow::Result<K> {
    serde_json::from_value(json!({
        "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .with_context(|| format!("building {kind} {name}"))
}

/// A SandboxTemplate with one container `agent` (port 8888) and `extra` spec fields.
pub fn template(name: &str, extra: Value) -> anyhow::Result<SandboxTemplate> {
    let spec = json!({
        "podTemplate": {"spec": {"containers": [{"name": "agent", "image": IMAGE,
            "ports": [{"containerPort": 8888, "name": "http"}]}]}}
    });
    typed("SandboxTemplate", name, merged(spec, extra))
}

/// A SandboxWarmPool of `replicas` Sandboxes from `template`, with `extra` spec fields.
pub fn warm_pool(
    name: &str,
    template: &str,
    replicas: i32,
    extra: Value,
) -> anyhow::Result<SandboxWarmPool> {
    let spec = json!({"replicas": replicas, "sandboxTemplateRef": {"name": template}});
    typed("SandboxWarmPool", name, merged(spec, extra))
}

/// A SandboxClaim on `pool`, with `extra` spec fields.
pub fn claim(name: &str, pool: &str, extra: Value) -> anyhow::Result<SandboxClaim> {
    let spec = json!({"warmPoolRef": {"name": pool}});
    typed("SandboxClaim", name, merged(spec, extra))
}

/// The name of the Sandbox bound to `claim` (its `status.sandbox.name`), if any.
pub fn bound(claim: &SandboxClaim) -> Option<String> {
    claim
        .status
        .as_ref()
        .map(|s| s.sandbox.name.clone())
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_valid_typed_objects_with_the_extra_fields() -> anyhow::Result<()> {
        let t = template("t", json!({"envVarsInjectionPolicy": "Allowed"}))?;
        assert_eq!(
            t.spec.blueprint.pod_template.spec.containers[0]
                .image
                .as_deref(),
            Some(IMAGE)
        );
        assert!(t.spec.env_vars_injection_policy.is_some());
        let p = warm_pool("p", "t", 3, json!({}))?;
        assert_eq!(
            (p.spec.replicas, p.spec.sandbox_template_ref.name.as_str()),
            (Some(3), "t")
        );
        let c = claim("c", "p", json!({"lifecycle": {"shutdownPolicy": "Delete"}}))?;
        assert_eq!(c.spec.warm_pool_ref.name, "p");
        assert!(c.spec.lifecycle.is_some());
        Ok(())
    }
}
