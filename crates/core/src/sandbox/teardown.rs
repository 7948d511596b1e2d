//! The second pass past `shutdownTime`: remove the owned Pods and Service, then the Sandbox itself
//! (policy `Delete`) or its status down to the expired condition (policy `Retain`).

use agent_sandbox_api::v1beta1::{SandboxStatus, ShutdownPolicy};
use k8s_openapi::jiff::Timestamp;

use super::owner::uid_of;
use super::plan::{Action, Failed, Failure, Observed, Outcome, Target};
use super::status::{expired_status, patch_if_changed};
use crate::ownership::{Ownership, ownership};

/// What finishing a teardown needs to know.
#[derive(Clone, Debug)]
pub(super) struct Teardown {
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
    errors: Vec<String>,
    deletes_sandbox: bool,
}

/// The deletes of a teardown, in order: the Pods the Sandbox controls (whatever their name: an older
/// controller's warm Pod may not be named like the Sandbox), the Service, then the Sandbox when its
/// policy says so. A Pod the Sandbox does not control is never deleted.
pub(super) fn decide(
    observed: &Observed,
    old: SandboxStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> (Vec<Action>, Teardown) {
    let sandbox = observed.sandbox;
    let uid = uid_of(&sandbox.metadata);
    let mut actions = Vec::new();
    let mut errors = Vec::new();
    match &observed.pods {
        Err(e) => errors.push(format!("pod get failed: {e}")),
        Ok(pods) => actions.extend(
            pods.iter()
                .filter(|p| ownership(&p.metadata, &uid) == Ownership::Owned)
                .map(|pod| Action::DeletePod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    uid: uid_of(&pod.metadata),
                }),
        ),
    }
    match &observed.service {
        Err(e) => errors.push(format!("service get failed: {e}")),
        Ok(Some(svc)) if ownership(&svc.metadata, &uid) == Ownership::Owned => {
            actions.push(Action::DeleteService {
                name: svc.metadata.name.clone().unwrap_or_default(),
                uid: uid_of(&svc.metadata),
            });
        }
        Ok(_) => {}
    }
    let deletes_sandbox = sandbox.spec.lifecycle.shutdown_policy == Some(ShutdownPolicy::Delete);
    if deletes_sandbox {
        actions.push(Action::DeleteSandbox { uid });
    }
    let teardown = Teardown {
        old,
        generation,
        now,
        errors,
        deletes_sandbox,
    };
    (actions, teardown)
}

/// The end of a teardown: nothing once the Sandbox is deleted, the expired status once a retained
/// Sandbox's children are gone, else the errors to retry on.
pub(super) fn finish(
    teardown: Teardown,
    actions: &[Action],
    described: Vec<Failed>,
    failures: &[Failure],
) -> Outcome {
    let mut errors = teardown.errors;
    errors.extend(
        described
            .into_iter()
            .filter(|f| f.target != Target::Sandbox)
            .map(|f| f.message),
    );
    if teardown.deletes_sandbox {
        let index = actions
            .iter()
            .position(|a| matches!(a, Action::DeleteSandbox { .. }));
        match index.and_then(|i| failures.iter().find(|f| f.index == i)) {
            // Deleted: nothing left to write, whatever happened to the children.
            None => return Outcome::default(),
            Some(failure) => errors.push(actions[failure.index].describe_failure(&failure.message)),
        }
    } else if errors.is_empty() {
        let status = expired_status(&teardown.old, teardown.generation, teardown.now);
        return Outcome {
            status_patch: patch_if_changed(&teardown.old, &status),
            ..Outcome::default()
        };
    }
    Outcome {
        error: Some(errors.join("; ")),
        ..Outcome::default()
    }
}
