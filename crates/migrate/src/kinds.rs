//! The four kinds whose storage moves to v1beta1.

use agent_sandbox_api::keys::{CORE_GROUP, EXTENSIONS_GROUP, STORAGE_VERSION};
use kube::api::{ApiResource, GroupVersionKind};

/// One kind of the project's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The kind, e.g. `Sandbox`.
    pub kind: &'static str,
    /// Its API group.
    pub group: &'static str,
    /// Its plural resource name.
    pub plural: &'static str,
}

/// The kinds in a stable order (pools before claims: the claim check reads the pools).
pub const KINDS: [Kind; 4] = [
    Kind {
        kind: "Sandbox",
        group: CORE_GROUP,
        plural: "sandboxes",
    },
    Kind {
        kind: "SandboxTemplate",
        group: EXTENSIONS_GROUP,
        plural: "sandboxtemplates",
    },
    Kind {
        kind: "SandboxWarmPool",
        group: EXTENSIONS_GROUP,
        plural: "sandboxwarmpools",
    },
    Kind {
        kind: "SandboxClaim",
        group: EXTENSIONS_GROUP,
        plural: "sandboxclaims",
    },
];

impl Kind {
    /// The name of its CustomResourceDefinition.
    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// The v1beta1 resource, for dynamic calls.
    pub fn v1beta1(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, STORAGE_VERSION, self.kind),
            self.plural,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_names_match_the_generated_crds() {
        let generated: Vec<String> = agent_sandbox_api::crd::all()
            .into_iter()
            .filter_map(|crd| crd.metadata.name)
            .collect();
        let mut ours: Vec<String> = KINDS.iter().map(Kind::crd_name).collect();
        let mut expected = generated.clone();
        ours.sort();
        expected.sort();
        assert_eq!(ours, expected);
    }
}
