//! Every write of every controller goes through here: one field manager, and the preconditions that
//! keep a write from landing on an object other than the one decided on (UID in a merge patch's
//! metadata, UID and resourceVersion on deletes).

use agent_sandbox_core::ownership::FIELD_MANAGER;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::runtime::error::is_not_found;

/// A namespaced kind the controllers write.
pub trait Writable:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Writable for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// What a delete must still find for it to happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    /// The object's UID (another object of the same name is left alone).
    pub uid: Option<String>,
    /// The object's resourceVersion (a changed object is left alone).
    pub resource_version: Option<String>,
}

impl Guard {
    /// Only the object with this UID.
    pub fn uid(uid: &str) -> Self {
        Self {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }
    }
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

/// Writes as the controllers' field manager.
#[derive(Clone)]
pub struct Writer {
    client: Client,
}

impl Writer {
    /// Writes with `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The client, for reads.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api<K: Writable>(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
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

    /// Creates `object`; returns it as written.
    pub async fn create<K: Writable>(&self, namespace: &str, object: &K) -> kube::Result<K> {
        self.api(namespace)
            .create(&Self::post_params(), object)
            .await
    }

    /// Replaces the object named like `object` (its resourceVersion, if set, is the precondition).
    pub async fn replace<K: Writable>(&self, namespace: &str, object: &K) -> kube::Result<K> {
        let name = object.meta().name.clone().unwrap_or_default();
        self.api(namespace)
            .replace(&name, &Self::post_params(), object)
            .await
    }

    /// Merge-patches `name`, only if it still has `uid` when one is given.
    pub async fn patch<K: Writable>(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
        patch: &Value,
    ) -> kube::Result<K> {
        let patch = match uid {
            Some(uid) => with_uid(patch, uid),
            None => patch.clone(),
        };
        self.api(namespace)
            .patch(name, &Self::patch_params(), &Patch::Merge(patch))
            .await
    }

    /// Merge-patches the status subresource of `name`; `None` when the object is gone (it needs no
    /// status).
    pub async fn patch_status<K: Writable>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> kube::Result<Option<K>> {
        match self
            .api(namespace)
            .patch_status(name, &Self::patch_params(), &Patch::Merge(patch))
            .await
        {
            Ok(written) => Ok(Some(written)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes `name` if it still matches `guard`, in the foreground when asked. `Ok(false)` when it
    /// was already gone.
    pub async fn delete<K: Writable>(
        &self,
        namespace: &str,
        name: &str,
        guard: Guard,
        foreground: bool,
    ) -> kube::Result<bool> {
        let mut params = if foreground {
            DeleteParams::foreground()
        } else {
            DeleteParams::default()
        };
        if guard != Guard::default() {
            params.preconditions = Some(Preconditions {
                uid: guard.uid,
                resource_version: guard.resource_version,
            });
        }
        match self.api::<K>(namespace).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
