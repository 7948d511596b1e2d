//! The pass's Pod step: which Pod the Sandbox tracks, and whether to delete it (suspended), create
//! it, adopt it or repair its metadata. It also decides the pod-name annotation the Sandbox keeps.

use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::owner::{refuse_adoption, uid_of, with_controller};
use super::plan::{Action, Observed};
use super::pod;
use crate::ownership::{Ownership, describe, may_adopt, ownership};

/// The Pod name a Sandbox tracks: its `agents.x-k8s.io/pod-name` annotation if non-empty, else its name.
pub fn tracked_pod_name(sandbox: &Sandbox) -> String {
    pod_name_annotation(sandbox)
        .filter(|n| !n.is_empty())
        .or(sandbox.metadata.name.clone())
        .unwrap_or_default()
}

/// The Sandbox's pod-name annotation as it is now.
fn pod_name_annotation(sandbox: &Sandbox) -> Option<String> {
    sandbox
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::POD_NAME))
        .cloned()
}

/// What the pass wants of the Pod.
#[derive(Clone, Copy)]
pub(super) struct PodIntent {
    /// `operatingMode` is `Suspended`.
    pub suspended: bool,
    /// A missing Pod may be created (not when the spec is invalid).
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
    /// The pod-name annotation the Sandbox should carry.
    pub annotation: Option<String>,
}

impl PodStep {
    /// The Sandbox metadata patch that records the annotation, when it changes.
    pub(super) fn annotation_patch(&self, sandbox: &Sandbox) -> Option<Action> {
        (self.annotation != pod_name_annotation(sandbox)).then(|| Action::PatchSandbox {
            patch: json!({"metadata": {"annotations": {annotations::POD_NAME: self.annotation}}}),
        })
    }
}

/// The Pod a pass works on.
struct Choice<'a> {
    /// The tracked Pod, or the one Pod the Sandbox controls when the annotation names another.
    pod: Option<&'a Pod>,
    /// The pod-name annotation still names `pod` (otherwise it is dropped).
    named: bool,
    /// More than one Pod is controlled by the Sandbox: the pass refuses to choose.
    multiple: Option<String>,
}

/// Chooses the Pod: the owner UID beats the annotation.
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
    let tracked_name = tracked_pod_name(sandbox);
    let tracked = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(tracked_name.as_str()));
    if owned.len() > 1 {
        let multiple = format!(
            "multiple Pods ({}) are controlled by this Sandbox; refusing to choose or create a Pod",
            owned.len()
        );
        return Choice {
            pod: None,
            named: tracked.is_some(),
            multiple: Some(multiple),
        };
    }
    match owned.as_slice() {
        [survivor] if tracked.is_none_or(|p| p.metadata.name != survivor.metadata.name) => Choice {
            pod: Some(survivor),
            named: false,
            multiple: None,
        },
        _ => Choice {
            pod: tracked,
            named: tracked.is_some(),
            multiple: None,
        },
    }
}

/// The annotation naming `name`, unless it already names a (different) Pod.
fn ensure_named(annotation: Option<String>, name: &str) -> Option<String> {
    match annotation {
        Some(existing) if !existing.is_empty() => Some(existing),
        _ => Some(name.to_owned()),
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
                annotation: pod_name_annotation(sandbox),
                ..PodStep::default()
            };
        }
    };
    let choice = choose(sandbox, pods, uid);
    let annotation = pod_name_annotation(sandbox).filter(|_| choice.named);
    if let Some(multiple) = choice.multiple {
        return PodStep {
            error: Some(multiple.clone()),
            multiple: Some(multiple),
            annotation,
            ..PodStep::default()
        };
    }
    match choice.pod {
        _ if intent.suspended => suspend(choice.pod, uid, annotation),
        None if !intent.may_create => PodStep {
            annotation,
            ..PodStep::default()
        },
        None => create(sandbox, hash, annotation),
        Some(existing) => adopt_or_repair(sandbox, existing, hash, uid, annotation),
    }
}

/// Suspended: delete the owned Pod (once), leave a foreign one alone.
fn suspend(pod: Option<&Pod>, uid: &str, annotation: Option<String>) -> PodStep {
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
            annotation,
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
fn create(sandbox: &Sandbox, hash: &str, annotation: Option<String>) -> PodStep {
    let new_pod = pod::build(sandbox, hash);
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    PodStep {
        action: Some(Action::CreatePod(new_pod.clone())),
        pod: Some(new_pod),
        owned: true,
        annotation: ensure_named(annotation, name),
        ..PodStep::default()
    }
}

/// An existing Pod: refuse someone else's, adopt an adoptable unowned one, repair metadata drift.
fn adopt_or_repair(
    sandbox: &Sandbox,
    existing: &Pod,
    hash: &str,
    uid: &str,
    annotation: Option<String>,
) -> PodStep {
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
                annotation,
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
        annotation: ensure_named(annotation, &pod_name),
        ..PodStep::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn with_annotations(annotations: Option<BTreeMap<String, String>>) -> Sandbox {
        let mut sandbox = Sandbox::new("sb", Default::default());
        sandbox.metadata.annotations = annotations;
        sandbox
    }

    #[test]
    fn resolve_pod_name() {
        assert_eq!(
            tracked_pod_name(&with_annotations(None)),
            "sb",
            "no annotations"
        );
        let other = BTreeMap::from([("x".to_owned(), "y".to_owned())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(other))),
            "sb",
            "annotation absent"
        );
        let empty = BTreeMap::from([(annotations::POD_NAME.to_owned(), String::new())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(empty))),
            "sb",
            "annotation empty"
        );
        let set = BTreeMap::from([(annotations::POD_NAME.to_owned(), "warm-pod".to_owned())]);
        assert_eq!(
            tracked_pod_name(&with_annotations(Some(set))),
            "warm-pod",
            "annotation set"
        );
    }
}
