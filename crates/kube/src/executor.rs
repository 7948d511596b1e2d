//! Executes a plan's actions against the API server, one function per action, with the preconditions
//! the plan carries (UID on patches and deletes, resourceVersion on replaces).

use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::ownership::FIELD_MANAGER;
use agent_sandbox_core::sandbox::{Action, Failure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::expectations::{ChildKey, ChildKind, Expected};

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
        Action::PatchSandbox { .. } => "patch_sandbox",
        Action::DeleteSandbox { .. } => "delete_sandbox",
    }
}

/// The text a failed write shows in the Ready condition: the API server's own message when it answered
/// (e.g. `pods "x" is forbidden: exceeded quota ...`), not the client's debug rendering of the response.
pub fn failure_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Runs `actions` in order in the namespace of `sandbox`, continuing past failures.
pub async fn execute(client: &Client, sandbox: &Sandbox, actions: &[Action]) -> Executed {
    let mut executed = Executed::default();
    for (index, action) in actions.iter().enumerate() {
        let result = execute_one(client, sandbox, action).await;
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
                })
            }
        }
    }
    executed
}

async fn execute_one(
    client: &Client,
    sandbox: &Sandbox,
    action: &Action,
) -> Result<Option<Written>, kube::Error> {
    let namespace = sandbox.metadata.namespace.as_deref().unwrap_or_default();
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    match action {
        Action::CreatePvc(pvc) => create(client, namespace, ChildKind::Pvc, pvc).await,
        Action::PatchPvc { name, uid, patch } => {
            patch_with_uid::<PersistentVolumeClaim>(client, namespace, name, uid, patch).await
        }
        Action::CreatePod(pod) => create(client, namespace, ChildKind::Pod, pod).await,
        Action::PatchPod { name, uid, patch } => {
            patch_with_uid::<Pod>(client, namespace, name, uid, patch).await
        }
        Action::DeletePod { name, uid } => {
            delete_with_uid::<Pod>(client, namespace, name, uid, Some(ChildKind::Pod)).await
        }
        Action::CreateService(service) => {
            create(client, namespace, ChildKind::Service, service).await
        }
        Action::ReplaceService(service) => replace_service(client, namespace, service).await,
        Action::PatchService { name, uid, patch } => {
            patch_with_uid::<Service>(client, namespace, name, uid, patch).await
        }
        Action::DeleteService { name, uid } => {
            delete_with_uid::<Service>(client, namespace, name, uid, Some(ChildKind::Service)).await
        }
        Action::PatchSandbox { patch } => patch_sandbox(client, sandbox, patch).await,
        Action::DeleteSandbox { uid } => {
            delete_with_uid::<Sandbox>(client, namespace, name, uid, None).await
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

async fn create<K>(
    client: &Client,
    namespace: &str,
    kind: ChildKind,
    object: &K,
) -> Result<Option<Written>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let created = api.create(&post_params(), object).await?;
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

/// `patch` with `metadata.uid` set: the API server rejects it when the object's UID differs.
pub fn with_uid(patch: &Value, uid: &str) -> Value {
    let mut patch = patch.clone();
    if !patch.is_object() {
        patch = json!({});
    }
    if let Some(object) = patch.as_object_mut() {
        let metadata = object.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("uid".to_owned(), Value::String(uid.to_owned()));
        }
    }
    patch
}

async fn patch_with_uid<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    patch: &Value,
) -> Result<Option<Written>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &patch_params(), &Patch::Merge(with_uid(patch, uid)))
        .await?;
    Ok(None)
}

async fn delete_with_uid<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    kind: Option<ChildKind>,
) -> Result<Option<Written>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(error) if is_not_found(&error) => {}
        Err(error) => return Err(error),
    }
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

async fn replace_service(
    client: &Client,
    namespace: &str,
    service: &Service,
) -> Result<Option<Written>, kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let name = service.metadata.name.clone().unwrap_or_default();
    api.replace(&name, &post_params(), service).await?;
    Ok(None)
}

async fn patch_sandbox(
    client: &Client,
    sandbox: &Sandbox,
    patch: &Value,
) -> Result<Option<Written>, kube::Error> {
    let namespace = sandbox.metadata.namespace.as_deref().unwrap_or_default();
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Sandbox> = Api::namespaced(client.clone(), namespace);
    let patched = api
        .patch(name, &patch_params(), &Patch::Merge(patch))
        .await?;
    Ok(sandbox_written(sandbox, &patched))
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
    client: &Client,
    sandbox: &Sandbox,
    patch: &Value,
) -> Result<Option<Written>, kube::Error> {
    let namespace = sandbox.metadata.namespace.as_deref().unwrap_or_default();
    let name = sandbox.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Sandbox> = Api::namespaced(client.clone(), namespace);
    match api
        .patch_status(name, &patch_params(), &Patch::Merge(patch))
        .await
    {
        Ok(written) => Ok(sandbox_written(sandbox, &written)),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// True for a 404 from the API server.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_the_servers_message() {
        let status = kube::core::Status::failure("pods \"x\" already exists", "AlreadyExists")
            .with_code(409);
        assert_eq!(
            failure_message(&kube::Error::Api(Box::new(status))),
            "pods \"x\" already exists"
        );
    }

    #[test]
    fn uid_precondition_is_added_to_the_patch_metadata() {
        let patch = json!({"metadata": {"labels": {"a": "b"}}});
        assert_eq!(
            with_uid(&patch, "u-1"),
            json!({"metadata": {"labels": {"a": "b"}, "uid": "u-1"}})
        );
        assert_eq!(
            with_uid(&json!({"spec": {"x": 1}}), "u-2"),
            json!({"spec": {"x": 1}, "metadata": {"uid": "u-2"}})
        );
    }

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
            Action::PatchSandbox { patch: json!({}) },
            Action::DeleteSandbox { uid: String::new() },
        ];
        let names: std::collections::BTreeSet<_> = actions.iter().map(action_name).collect();
        assert_eq!(names.len(), actions.len());
    }
}
