//! What one CRD needs, decided from its state alone (so a rerun after a crash picks up where it stopped).

use agent_sandbox_api::keys::STORAGE_VERSION;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The parts of a CRD the migration reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrdState {
    /// The CRD's name.
    pub name: String,
    /// Versions it serves.
    pub served: Vec<String>,
    /// The version it stores new writes at, if exactly one is marked.
    pub storage: Option<String>,
    /// `status.storedVersions`: every version objects may still be stored at.
    pub stored_versions: Vec<String>,
    /// Whether its conversion strategy is `Webhook`.
    pub webhook_conversion: bool,
}

impl CrdState {
    /// Reads the state of `crd`.
    pub fn of(crd: &CustomResourceDefinition) -> Self {
        let versions = &crd.spec.versions;
        let mut storage = versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.clone());
        Self {
            name: crd.metadata.name.clone().unwrap_or_default(),
            served: versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect(),
            storage: storage.next().filter(|_| storage.next().is_none()),
            stored_versions: crd
                .status
                .as_ref()
                .and_then(|s| s.stored_versions.clone())
                .unwrap_or_default(),
            webhook_conversion: crd
                .spec
                .conversion
                .as_ref()
                .is_some_and(|c| c.strategy == "Webhook"),
        }
    }
}

/// The steps one CRD needs, in the order they run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrdPlan {
    /// Some objects may be stored at another version: rewrite every object (stored at v1beta1 then).
    pub rewrite_objects: bool,
    /// `status.storedVersions` lists more than v1beta1: prune it (after the rewrite).
    pub prune_stored_versions: bool,
    /// The CRD serves another version or converts by webhook: make it serve v1beta1 alone, no conversion.
    pub serve_v1beta1_only: bool,
}

impl CrdPlan {
    /// True when the CRD is already in upstream 1.0's shape.
    pub fn is_done(&self) -> bool {
        *self == Self::default()
    }
}

/// Why a CRD cannot be migrated as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// New writes are stored at another version: rewriting would not move anything.
    #[error(
        "CRD {crd} stores new objects at {storage}, not v1beta1: install the migration CRDs \
         (kubectl apply -k deploy/migration) first"
    )]
    StoresOtherVersion {
        /// The CRD.
        crd: String,
        /// Its storage version (or `no single version`).
        storage: String,
    },
    /// v1beta1 is not served, so objects cannot be read or written at it.
    #[error(
        "CRD {crd} does not serve v1beta1: install the migration CRDs (kubectl apply -k deploy/migration) first"
    )]
    V1beta1NotServed {
        /// The CRD.
        crd: String,
    },
}

/// The steps `state` needs, or why it cannot be migrated.
pub fn plan(state: &CrdState) -> Result<CrdPlan, PlanError> {
    if state.storage.as_deref() != Some(STORAGE_VERSION) {
        return Err(PlanError::StoresOtherVersion {
            crd: state.name.clone(),
            storage: state
                .storage
                .clone()
                .unwrap_or_else(|| "no single version".to_owned()),
        });
    }
    if !state.served.iter().any(|v| v == STORAGE_VERSION) {
        return Err(PlanError::V1beta1NotServed {
            crd: state.name.clone(),
        });
    }
    let stored_elsewhere = state.stored_versions.iter().any(|v| v != STORAGE_VERSION);
    Ok(CrdPlan {
        rewrite_objects: stored_elsewhere,
        prune_stored_versions: stored_elsewhere,
        serve_v1beta1_only: state.served.iter().any(|v| v != STORAGE_VERSION)
            || state.webhook_conversion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(served: &[&str], storage: &str, stored: &[&str], webhook: bool) -> CrdState {
        CrdState {
            name: "sandboxes.agents.x-k8s.io".into(),
            served: served.iter().map(|v| v.to_string()).collect(),
            storage: Some(storage.into()),
            stored_versions: stored.iter().map(|v| v.to_string()).collect(),
            webhook_conversion: webhook,
        }
    }

    #[test]
    fn an_upgraded_0x_install_needs_every_step() {
        let plan = plan(&state(
            &["v1beta1", "v1alpha1"],
            "v1beta1",
            &["v1alpha1", "v1beta1"],
            true,
        ));
        assert_eq!(
            plan,
            Ok(CrdPlan {
                rewrite_objects: true,
                prune_stored_versions: true,
                serve_v1beta1_only: true,
            })
        );
    }

    #[test]
    fn the_upstream_1_0_shape_needs_nothing() {
        let plan = plan(&state(&["v1beta1"], "v1beta1", &["v1beta1"], false));
        assert!(plan.is_ok_and(|p| p.is_done()));
    }

    #[test]
    fn a_crash_after_the_prune_only_switches_the_crd() {
        let plan = plan(&state(
            &["v1beta1", "v1alpha1"],
            "v1beta1",
            &["v1beta1"],
            true,
        ));
        assert_eq!(
            plan,
            Ok(CrdPlan {
                serve_v1beta1_only: true,
                ..CrdPlan::default()
            })
        );
    }

    #[test]
    fn a_webhook_alone_is_removed() {
        let plan = plan(&state(&["v1beta1"], "v1beta1", &["v1beta1"], true));
        assert_eq!(plan.map(|p| p.serve_v1beta1_only), Ok(true));
    }

    #[test]
    fn stored_versions_left_by_a_v1beta1_only_crd_are_still_rewritten() {
        // Someone removed v1alpha1 from spec.versions without pruning: the objects still need a rewrite.
        let plan = plan(&state(
            &["v1beta1"],
            "v1beta1",
            &["v1alpha1", "v1beta1"],
            false,
        ));
        assert_eq!(
            plan,
            Ok(CrdPlan {
                rewrite_objects: true,
                prune_stored_versions: true,
                serve_v1beta1_only: false,
            })
        );
    }

    #[test]
    fn a_crd_storing_v1alpha1_is_refused() {
        let plan = plan(&state(&["v1alpha1"], "v1alpha1", &["v1alpha1"], false));
        assert!(matches!(plan, Err(PlanError::StoresOtherVersion { .. })));
        let message = plan.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("deploy/migration"), "{message}");
    }

    #[test]
    fn a_crd_not_serving_v1beta1_is_refused() {
        let mut crd = state(&["v1alpha1"], "v1beta1", &["v1beta1"], false);
        crd.served = vec!["v1alpha1".into()];
        assert!(matches!(
            plan(&crd),
            Err(PlanError::V1beta1NotServed { .. })
        ));
    }

    #[test]
    fn state_is_read_from_a_crd() {
        let crds = agent_sandbox_api::crd::with_v1alpha1().unwrap_or_default();
        let state = CrdState::of(&crds[0]);
        assert_eq!(state.name, "sandboxes.agents.x-k8s.io");
        assert_eq!(state.served, ["v1beta1", "v1alpha1"]);
        assert_eq!(state.storage.as_deref(), Some("v1beta1"));
        assert!(state.webhook_conversion);
        let default = CrdState::of(&agent_sandbox_api::crd::all()[0]);
        assert_eq!(default.served, ["v1beta1"]);
        assert!(!default.webhook_conversion);
    }
}
