//! Per-object checks before anything is written: can this object, as the API server converts it to
//! v1beta1, be stored at v1beta1 without losing what it means?

use std::collections::BTreeSet;
use std::fmt;

use agent_sandbox_api::convert::SHADOW_POOL_PREFIX;
use agent_sandbox_api::v1beta1;
use serde_json::Value;

use crate::kinds::Kind;

/// One object that cannot be migrated, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `Kind namespace/name`.
    pub object: String,
    /// The field at fault (empty when the object as a whole is).
    pub field: String,
    /// What is wrong, and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// `Kind namespace/name`, how every message names an object.
pub fn describe(kind: &Kind, namespace: &str, name: &str) -> String {
    format!("{} {namespace}/{name}", kind.kind)
}

/// Checks `object` (read at v1beta1) of `kind`; `pools` are the `(namespace, name)` of every
/// SandboxWarmPool in the cluster.
pub fn check(kind: &Kind, object: &Value, pools: &BTreeSet<(String, String)>) -> Vec<Problem> {
    let meta = &object["metadata"];
    let problem = |field: &str, message: String| Problem {
        object: describe(
            kind,
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        ),
        field: field.to_owned(),
        message,
    };
    let parsed = match kind.kind {
        "Sandbox" => parses::<v1beta1::Sandbox>(object),
        "SandboxTemplate" => parses::<v1beta1::SandboxTemplate>(object),
        "SandboxWarmPool" => parses::<v1beta1::SandboxWarmPool>(object),
        _ => parses::<v1beta1::SandboxClaim>(object),
    };
    if let Err(error) = parsed {
        return vec![problem(
            "",
            format!("does not read as v1beta1 ({error}); fix or delete it before migrating"),
        )];
    }
    if kind.kind == "SandboxClaim" {
        return missing_shadow_pool(object, pools)
            .map(|(field, message)| problem(field, message))
            .into_iter()
            .collect();
    }
    Vec::new()
}

fn parses<T: serde::de::DeserializeOwned>(object: &Value) -> Result<(), serde_json::Error> {
    T::deserialize(object).map(drop)
}

/// An unbound claim converted from a v1alpha1 claim without a warm pool names a shadow pool; without
/// that pool it would wait forever once v1alpha1 (and the template it named) is gone.
fn missing_shadow_pool(
    claim: &Value,
    pools: &BTreeSet<(String, String)>,
) -> Option<(&'static str, String)> {
    let bound = claim["status"]["sandbox"]["name"]
        .as_str()
        .is_some_and(|name| !name.is_empty());
    let pool = claim["spec"]["warmPoolRef"]["name"].as_str()?;
    let template = pool.strip_prefix(SHADOW_POOL_PREFIX)?;
    let namespace = claim["metadata"]["namespace"].as_str().unwrap_or_default();
    if bound || pools.contains(&(namespace.to_owned(), pool.to_owned())) {
        return None;
    }
    Some((
        "spec.warmPoolRef.name",
        format!(
            "names SandboxWarmPool {pool}, which does not exist (the v1alpha1 claim asked for template \
             {template} without a warm pool); create that pool from template {template} or delete the claim"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::KINDS;

    fn claim_kind() -> Kind {
        KINDS[3]
    }

    fn claim(pool: &str, bound: &str) -> Value {
        json!({
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
            "kind": "SandboxClaim",
            "metadata": {"name": "c", "namespace": "team"},
            "spec": {"warmPoolRef": {"name": pool}},
            "status": {"sandbox": {"name": bound}},
        })
    }

    fn pools(names: &[&str]) -> BTreeSet<(String, String)> {
        names
            .iter()
            .map(|n| ("team".to_owned(), (*n).to_owned()))
            .collect()
    }

    #[test]
    fn an_unbound_claim_of_a_missing_shadow_pool_is_refused_by_name_and_field() {
        let problems = check(&claim_kind(), &claim("shadow-pool-py", ""), &pools(&[]));
        assert_eq!(problems.len(), 1);
        let line = problems[0].to_string();
        assert!(
            line.starts_with(
                "SandboxClaim team/c: spec.warmPoolRef.name: names SandboxWarmPool shadow-pool-py"
            ),
            "{line}"
        );
        assert!(line.contains("template py"), "{line}");
    }

    #[test]
    fn a_claim_of_an_existing_shadow_pool_passes() {
        let problems = check(
            &claim_kind(),
            &claim("shadow-pool-py", ""),
            &pools(&["shadow-pool-py"]),
        );
        assert_eq!(problems, []);
    }

    #[test]
    fn a_bound_claim_needs_no_pool() {
        let problems = check(&claim_kind(), &claim("shadow-pool-py", "sb"), &pools(&[]));
        assert_eq!(problems, []);
    }

    #[test]
    fn a_claim_of_an_ordinary_missing_pool_is_left_to_the_controller() {
        // The same claim is valid at v1beta1; the controller reports the missing pool as a condition.
        let problems = check(&claim_kind(), &claim("python-pool", ""), &pools(&[]));
        assert_eq!(problems, []);
    }

    #[test]
    fn an_object_that_does_not_read_as_v1beta1_is_refused() {
        let sandbox = json!({
            "apiVersion": "agents.x-k8s.io/v1beta1",
            "kind": "Sandbox",
            "metadata": {"name": "s", "namespace": "team"},
            "spec": {"podTemplate": "not an object"},
        });
        let problems = check(&KINDS[0], &sandbox, &pools(&[]));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .starts_with("Sandbox team/s: does not read as v1beta1"),
            "{}",
            problems[0]
        );
    }
}
