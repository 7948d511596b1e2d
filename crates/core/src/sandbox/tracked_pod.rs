//! The pass's Pod step: which Pod the Sandbox tracks, and whether to delete it (suspended), create
//! it, adopt it or repair its metadata.
//!
//! The Pod is named like its Sandbox. The legacy `agents.x-k8s.io/pod-name` annotation is neither read
//! nor written (as upstream 1.0): a value left by an older controller stays on the Sandbox for clients,
//! and a Pod it names is only kept in use when the Sandbox controls it (found by its name-hash label).

use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::owner::{refuse_adoption, uid_of, with_controller};
use super::plan::{Action, Observed};
use super::pod;
use crate::ownership::{Ownership, describe, may_adopt, ownership};

/// What the pass wants of the Pod.
#[derive(Clone, Copy)]
pub(super) struct PodIntent {
    /// `operatingMode` is `Suspended`.
    pub suspended: bool,
    /// A missing Pod may be created (not when the configuration is invalid).
    pub may_create: bool,
}

/// Where the Pod stands after the step, and the write it needs.
#[derive(Default)]
pub(super) struct PodStep {
    /// The write to the Pod.
    pub action: Option<Action>,
    /// The Pod as it will be after the write (owned, or a foreign one left alone while suspended).
    pub pod: Option<Pod>,
    /// The Pod is controlled by this Sandbox.
    pub owned: bool,
    /// Why the Pod could not be established.
    pub error: Option<String>,
    /// More than one Pod is controlled by the Sandbox (the text of that error).
    pub multiple: Option<String>,
}

/// The Pod a pass works on.
struct Choice<'a> {
    /// The Pod named like the Sandbox, or the one Pod the Sandbox controls when that one is not it.
    pod: Option<&'a Pod>,
    /// More than one Pod is controlled by the Sandbox: the pass refuses to choose.
    multiple: Option<String>,
}

/// Chooses the Pod: the one the Sandbox controls beats the one named like it, so a Pod of another
/// name (an older controller's warm Pod) stays in use and no second Pod is created beside it.
fn choose<'a>(sandbox: &Sandbox, pods: &'a [Pod], uid: &str) -> Choice<'a> {
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| ownership(&p.metadata, uid) == Ownership::Owned)
    {
        if !owned.iter().any(|o| o.metadata.uid == pod.metadata.uid) {
            owned.push(pod);
        }
    }
    if owned.len() > 1 {
        let multiple = format!(
            "multiple Pods ({}) are controlled by this Sandbox; refusing to choose or create a Pod",
            owned.len()
        );
        return Choice {
            pod: None,
            multiple: Some(multiple),
        };
    }
    let named = pods
        .iter()
        .find(|p| p.metadata.name.is_some() && p.metadata.name == sandbox.metadata.name);
    Choice {
        pod: owned.first().copied().or(named),
        multiple: None,
    }
}

/// Decides the Pod of the observed Sandbox.
pub(super) fn reconcile(observed: &Observed, hash: &str, uid: &str, intent: PodIntent) -> PodStep {
    let sandbox = observed.sandbox;
    let pods = match &observed.pods {
        Ok(pods) => pods,
        Err(e) => {
            return PodStep {
                error: Some(format!("pod get failed: {e}")),
                ..PodStep::default()
            };
        }
    };
    let choice = choose(sandbox, pods, uid);
    if let Some(multiple) = choice.multiple {
        return PodStep {
            error: Some(multiple.clone()),
            multiple: Some(multiple),
            ..PodStep::default()
        };
    }
    match choice.pod {
        _ if intent.suspended => suspend(choice.pod, uid),
        None if !intent.may_create => PodStep::default(),
        None => create(sandbox, hash),
        Some(existing) => adopt_or_repair(sandbox, existing, hash, uid),
    }
}

/// Suspended: delete the owned Pod (once), leave a foreign one alone.
fn suspend(pod: Option<&Pod>, uid: &str) -> PodStep {
    match pod {
        Some(p) if ownership(&p.metadata, uid) == Ownership::Owned => PodStep {
            action: p
                .metadata
                .deletion_timestamp
                .is_none()
                .then(|| Action::DeletePod {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    uid: uid_of(&p.metadata),
                }),
            pod: Some(p.clone()),
            owned: true,
            ..PodStep::default()
        },
        Some(p) => PodStep {
            pod: Some(p.clone()),
            ..PodStep::default()
        },
        None => PodStep::default(),
    }
}

/// No Pod: create one named like the Sandbox.
fn create(sandbox: &Sandbox, hash: &str) -> PodStep {
    let new_pod = pod::build(sandbox, hash);
    PodStep {
        action: Some(Action::CreatePod(new_pod.clone())),
        pod: Some(new_pod),
        owned: true,
        ..PodStep::default()
    }
}

/// An existing Pod: refuse someone else's, adopt an adoptable unowned one, repair metadata drift.
fn adopt_or_repair(sandbox: &Sandbox, existing: &Pod, hash: &str, uid: &str) -> PodStep {
    let sandbox_name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let pod_name = existing.metadata.name.clone().unwrap_or_default();
    let mut patch = serde_json::Map::new();
    match ownership(&existing.metadata, uid) {
        Ownership::Other(owner) => {
            let error = format!(
                "pod {pod_name:?} is owned by {}, not by sandbox {sandbox_name:?}",
                describe(owner)
            );
            return PodStep {
                error: Some(error),
                ..PodStep::default()
            };
        }
        Ownership::Unowned if !may_adopt(&existing.metadata, hash) => {
            return PodStep {
                error: Some(refuse_adoption("pod", &pod_name, hash)),
                ..PodStep::default()
            };
        }
        Ownership::Unowned => {
            patch.insert(
                "ownerReferences".into(),
                json!(with_controller(&existing.metadata, sandbox)),
            );
        }
        Ownership::Owned => {}
    }
    let mut view = existing.clone();
    if let Some(drift) = pod::metadata_drift(sandbox, existing, hash) {
        pod::apply_metadata(&mut view, &drift);
        patch.extend(drift);
    }
    PodStep {
        action: (!patch.is_empty()).then(|| Action::PatchPod {
            name: pod_name.clone(),
            uid: uid_of(&existing.metadata),
            patch: json!({ "metadata": patch }),
        }),
        pod: Some(view),
        owned: true,
        ..PodStep::default()
    }
}
