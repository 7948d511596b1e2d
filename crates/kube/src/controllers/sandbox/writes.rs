//! Executes a Sandbox plan's actions, one call each through the [`Writer`], with the preconditions
//! the plan carries (UID on patches and deletes, resourceVersion on replaces), and writes the status.

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::sandbox::{Action, Failure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use serde_json::Value;

use crate::controllers::sandbox::expectations::{ChildKey, ChildKind, Expected};
use crate::runtime::error::{ErrorKind, failure_message};
use crate::runtime::writes::{Guard, Writable, Writer};

/// A write whose effect the caches must show before the Sandbox is decided on again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The child written.
    pub child: ChildKey,
    /// What the cache will show.
    pub expected: Expected,
}

/// The result of executing a plan.
#[derive(Debug, Default)]
pub struct Executed {
    /// Actions that failed, by index.
    pub failures: Vec<Failure>,
    /// The errors of those actions, for the retry policy and the metrics.
    pub errors: Vec<kube::Error>,
    /// Creates and deletes that succeeded.
    pub written: Vec<Written>,
    /// Names of the actions that succeeded and failed, for metrics.
    pub outcomes: Vec<(&'static str, bool)>,
}

/// The metric label of an action.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CreatePvc(_) => "create_pvc",
        Action::PatchPvc { .. } => "patch_pvc",
        Action::CreatePod(_) => "create_pod",
        Action::PatchPod { .. } => "patch_pod",
        Action::DeletePod { .. } => "delete_pod",
        Action::CreateService(_) => "create_service",
        Action::ReplaceService(_) => "replace_service",
        Action::PatchService { .. } => "patch_service",
        Action::DeleteService { .. } => "delete_service",
        Action::DeleteSandbox { .. } => "delete_sandbox",
    }
}

/// Runs `actions` in order in the namespace of `sandbox`, continuing past failures.
pub async fn execute(writer: &Writer, sandbox: &Sandbox, actions: &[Action]) -> Executed {
    let mut executed = Executed::default();
    for (index, action) in actions.iter().enumerate() {
        let result = execute_one(writer, sandbox, action).await;
        executed
            .outcomes
            .push((action_name(action), result.is_ok()));
        match result {
            Ok(Some(written)) => executed.written.push(written),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(action = action_name(action), %error, "action failed");
                executed.failures.push(Failure {
                    index,
                    message: failure_message(&error),
                    invalid: ErrorKind::of(&error) == ErrorKind::Invalid,
                });
                executed.errors.push(error);
            }
        }
    }
    executed
}

async fn execute_one(
    writer: &Writer,
    sandbox: &Sandbox,
    action: &Action,
) -> Result<Option<Written>, kube::Error> {
    let namespace = sandbox.metadata.namespace.as_deref().unwrap_or_default();
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    match action {
        Action::CreatePvc(pvc) => create(writer, namespace, ChildKind::Pvc, pvc).await,
        Action::PatchPvc { name, uid, patch } => {
            patch_with_uid::<PersistentVolumeClaim>(writer, namespace, name, uid, patch).await
        }
        Action::CreatePod(pod) => create(writer, namespace, ChildKind::Pod, pod).await,
        Action::PatchPod { name, uid, patch } => {
            patch_with_uid::<Pod>(writer, namespace, name, uid, patch).await
        }
        Action::DeletePod { name, uid } => {
            delete_with_uid::<Pod>(writer, namespace, name, uid, Some(ChildKind::Pod)).await
        }
        Action::CreateService(service) => {
            create(writer, namespace, ChildKind::Service, service).await
        }
        Action::ReplaceService(service) => writer.replace(namespace, service).await.map(|_| None),
        Action::PatchService { name, uid, patch } => {
            patch_with_uid::<Service>(writer, namespace, name, uid, patch).await
        }
        Action::DeleteService { name, uid } => {
            delete_with_uid::<Service>(writer, namespace, name, uid, Some(ChildKind::Service)).await
        }
        Action::DeleteSandbox { uid } => {
            delete_with_uid::<Sandbox>(writer, namespace, name, uid, None).await
        }
    }
}

async fn create<K: Writable>(
    writer: &Writer,
    namespace: &str,
    kind: ChildKind,
    object: &K,
) -> Result<Option<Written>, kube::Error> {
    let created = writer.create(namespace, object).await?;
    let meta = created.meta();
    Ok(Some(Written {
        child: ChildKey {
            kind,
            namespace: namespace.to_owned(),
            name: meta.name.clone().unwrap_or_default(),
        },
        expected: Expected::Exists {
            uid: meta.uid.clone().unwrap_or_default(),
        },
    }))
}

async fn patch_with_uid<K: Writable>(
    writer: &Writer,
    namespace: &str,
    name: &str,
    uid: &str,
    patch: &Value,
) -> Result<Option<Written>, kube::Error> {
    writer
        .patch::<K>(namespace, name, Some(uid), patch)
        .await
        .map(|_| None)
}

/// Deletes a child with its UID as the precondition; one already gone counts as deleted.
async fn delete_with_uid<K: Writable>(
    writer: &Writer,
    namespace: &str,
    name: &str,
    uid: &str,
    kind: Option<ChildKind>,
) -> Result<Option<Written>, kube::Error> {
    writer
        .delete::<K>(namespace, name, Guard::uid(uid), false)
        .await?;
    Ok(kind.map(|kind| Written {
        child: ChildKey {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        expected: Expected::Gone {
            uid: uid.to_owned(),
        },
    }))
}

/// The expectation a write to the Sandbox leaves: the cache must move past the resourceVersion the pass
/// decided on; none when the write changed nothing.
pub fn sandbox_written(before: &Sandbox, after: &Sandbox) -> Option<Written> {
    let from = before.metadata.resource_version.clone().unwrap_or_default();
    (after.metadata.resource_version.as_deref() != Some(from.as_str())).then(|| Written {
        child: ChildKey {
            kind: ChildKind::Sandbox,
            namespace: before.metadata.namespace.clone().unwrap_or_default(),
            name: before.metadata.name.clone().unwrap_or_default(),
        },
        expected: Expected::Changed { from },
    })
}

/// Writes the status merge patch to the status subresource, without a resourceVersion precondition
/// (the controller is the sole status writer). A Sandbox that is gone needs no status.
pub async fn write_status(
    writer: &Writer,
    sandbox: &Sandbox,
    patch: &Value,
) -> Result<Option<Written>, kube::Error> {
    let namespace = sandbox.metadata.namespace.as_deref().unwrap_or_default();
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let written: Option<Sandbox> = writer.patch_status(namespace, name, patch).await?;
    Ok(written.and_then(|written| sandbox_written(sandbox, &written)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sandbox_write_is_expected_only_when_it_changed_the_resource_version() {
        let at = |rv: &str| {
            let mut s = Sandbox::new("sb", Default::default());
            s.metadata.namespace = Some("ns".into());
            s.metadata.resource_version = Some(rv.into());
            s
        };
        assert_eq!(sandbox_written(&at("5"), &at("5")), None);
        assert_eq!(
            sandbox_written(&at("5"), &at("6")),
            Some(Written {
                child: ChildKey {
                    kind: ChildKind::Sandbox,
                    namespace: "ns".into(),
                    name: "sb".into(),
                },
                expected: Expected::Changed { from: "5".into() },
            })
        );
    }

    #[test]
    fn every_action_has_a_distinct_metric_name() {
        let actions = [
            Action::CreatePvc(PersistentVolumeClaim::default()),
            Action::PatchPvc {
                name: String::new(),
                uid: String::new(),
                patch: json!({}),
            },
            Action::CreatePod(Pod::default()),
            Action::PatchPod {
                name: String::new(),
                uid: String::new(),
                patch: json!({}),
            },
            Action::DeletePod {
                name: String::new(),
                uid: String::new(),
            },
            Action::CreateService(Service::default()),
            Action::ReplaceService(Service::default()),
            Action::PatchService {
                name: String::new(),
                uid: String::new(),
                patch: json!({}),
            },
            Action::DeleteService {
                name: String::new(),
                uid: String::new(),
            },
            Action::DeleteSandbox { uid: String::new() },
        ];
        let names: std::collections::BTreeSet<_> = actions.iter().map(action_name).collect();
        assert_eq!(names.len(), actions.len());
    }
}
