//! The data a Sandbox pass reads and the plan it returns.

use std::time::Duration;

use agent_sandbox_api::v1beta1::Sandbox;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use serde_json::Value;

use crate::events::Event;

/// Settings of the Sandbox controller that change its decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Cluster DNS domain used in `status.serviceFQDN`.
    pub cluster_domain: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// What the adapter observed for one Sandbox (from its caches). A lookup error is kept as text: the
/// decision reports it in conditions instead of guessing.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Sandbox (v1beta1).
    pub sandbox: &'a Sandbox,
    /// Pods in the Sandbox's namespace labelled with its name hash, plus the Pod named like the Sandbox
    /// if it exists.
    pub pods: Result<Vec<Pod>, String>,
    /// The Service named like the Sandbox, if any.
    pub service: Result<Option<Service>, String>,
    /// The PVCs named `<template>-<sandbox>` for the Sandbox's volume claim templates that exist.
    pub pvcs: Result<Vec<PersistentVolumeClaim>, String>,
}

/// Which child an action touches: decides how a failure is reported in conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A PersistentVolumeClaim.
    Pvc,
    /// The Pod.
    Pod,
    /// The Service.
    Service,
    /// The Sandbox itself.
    Sandbox,
}

/// One write to perform, in order, in the Sandbox's namespace.
// A plan holds a handful of actions, so the size of the object-carrying variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this PVC.
    CreatePvc(PersistentVolumeClaim),
    /// JSON-merge-patch the PVC `name` whose UID must still be `uid`.
    PatchPvc {
        /// PVC name.
        name: String,
        /// UID precondition.
        uid: String,
        /// The merge patch.
        patch: Value,
    },
    /// Create this Pod (field manager `sandbox-controller`).
    CreatePod(Pod),
    /// JSON-merge-patch the metadata of Pod `name` whose UID must still be `uid`.
    PatchPod {
        /// Pod name.
        name: String,
        /// UID precondition.
        uid: String,
        /// The merge patch.
        patch: Value,
    },
    /// Delete Pod `name` if its UID is still `uid` (NotFound counts as done).
    DeletePod {
        /// Pod name.
        name: String,
        /// UID precondition.
        uid: String,
    },
    /// Create this Service (field manager `sandbox-controller`).
    CreateService(Service),
    /// Replace a Service (adoption); guarded by the `resourceVersion` it carries.
    ReplaceService(Service),
    /// JSON-merge-patch Service `name` whose UID must still be `uid`.
    PatchService {
        /// Service name.
        name: String,
        /// UID precondition.
        uid: String,
        /// The merge patch.
        patch: Value,
    },
    /// Delete Service `name` if its UID is still `uid` (NotFound counts as done).
    DeleteService {
        /// Service name.
        name: String,
        /// UID precondition.
        uid: String,
    },
    /// Delete the Sandbox if its UID is still `uid` (NotFound counts as done).
    DeleteSandbox {
        /// UID precondition.
        uid: String,
    },
}

impl Action {
    /// The child this action touches.
    pub fn target(&self) -> Target {
        match self {
            Action::CreatePvc(_) | Action::PatchPvc { .. } => Target::Pvc,
            Action::CreatePod(_) | Action::PatchPod { .. } | Action::DeletePod { .. } => {
                Target::Pod
            }
            Action::CreateService(_)
            | Action::ReplaceService(_)
            | Action::PatchService { .. }
            | Action::DeleteService { .. } => Target::Service,
            Action::DeleteSandbox { .. } => Target::Sandbox,
        }
    }

    /// How a failure of this action reads in conditions and errors.
    pub(super) fn describe_failure(&self, message: &str) -> String {
        let what = match self {
            Action::CreatePvc(pvc) => format!(
                "failed to create PVC {:?}",
                pvc.metadata.name.as_deref().unwrap_or_default()
            ),
            Action::PatchPvc { name, .. } => format!("failed to adopt PVC {name:?}"),
            Action::CreatePod(_) => "failed to create pod".to_owned(),
            Action::PatchPod { .. } => "failed to update pod".to_owned(),
            Action::DeletePod { .. } => "failed to delete pod".to_owned(),
            Action::CreateService(_) => "failed to create service".to_owned(),
            Action::ReplaceService(_) => "failed to adopt service".to_owned(),
            Action::PatchService { .. } => "failed to update service".to_owned(),
            Action::DeleteService { .. } => "failed to delete service".to_owned(),
            Action::DeleteSandbox { .. } => "failed to delete sandbox".to_owned(),
        };
        format!("{what}: {message}")
    }
}

/// An action that failed, by its index in [`Plan::actions`](super::Plan::actions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Index of the failed action.
    pub index: usize,
    /// The error text (shown in the Ready condition).
    pub message: String,
    /// The API server rejected the object itself (400, 422): sending it again cannot succeed.
    pub invalid: bool,
}

/// A failed action as a pass's end reads it.
#[derive(Clone, Debug)]
pub(super) struct Failed<'a> {
    /// The child the action touches.
    pub target: Target,
    /// The action.
    pub action: &'a Action,
    /// What failed, for conditions and errors.
    pub message: String,
    /// See [`Failure::invalid`].
    pub invalid: bool,
}

/// The end of a pass: what to write and when to come back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// JSON merge patch for the `status` subresource (`{"status": {...}}`); `None` when nothing changed.
    pub status_patch: Option<Value>,
    /// Events to publish.
    pub events: Vec<Event>,
    /// Look again after this long even without a watch event.
    pub requeue_after: Option<Duration>,
    /// The pass failed: retry with backoff. The status patch is still written first.
    pub error: Option<String>,
}
