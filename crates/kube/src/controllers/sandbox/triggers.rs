//! What wakes a Sandbox besides its own changes: a change of a Pod, Service or PVC it controls.

use agent_sandbox_api::keys::CORE_GROUP;
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::ownership::controller_of;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;

use crate::controllers::sandbox::caches::SandboxCaches;
use crate::runtime::feed::Change;

/// The Sandbox a child object reports to: its controller owner reference, if that names a Sandbox of
/// `agents.x-k8s.io` (any version: owner references written by older controllers say v1alpha1).
pub fn owning_sandbox<K: kube::Resource>(child: &K) -> Option<ObjectRef<Sandbox>> {
    let meta = child.meta();
    let owner = controller_of(meta, CORE_GROUP, "Sandbox")?;
    Some(ObjectRef::new(&owner.name).within(meta.namespace.as_deref().unwrap_or_default()))
}

fn owners<K: kube::Resource + Send + Sync + 'static>(
    changes: impl Stream<Item = Change<K>> + Send + 'static,
) -> BoxStream<'static, ObjectRef<Sandbox>> {
    changes
        .filter_map(|change| async move { owning_sandbox(change.object().as_ref()) })
        .boxed()
}

/// The owners of every changed Pod, Service and PVC (subscribe before the watches start).
pub fn child_triggers(caches: &SandboxCaches) -> BoxStream<'static, ObjectRef<Sandbox>> {
    stream::select_all([
        owners(caches.pods.feed.subscribe()),
        owners(caches.services.feed.subscribe()),
        owners(caches.pvcs.feed.subscribe()),
    ])
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod_owned_by(api_version: &str, kind: &str, controller: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("p".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: "sb".into(),
                    uid: "u".into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn children_trigger_the_sandbox_named_by_their_controller_reference() {
        let want = Some(ObjectRef::<Sandbox>::new("sb").within("ns"));
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Sandbox", true)),
            want
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1alpha1", "Sandbox", true)),
            want
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Sandbox", false)),
            None
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("example.com/v1", "Sandbox", true)),
            None
        );
        assert_eq!(
            owning_sandbox(&pod_owned_by("agents.x-k8s.io/v1beta1", "Other", true)),
            None
        );
        assert_eq!(owning_sandbox(&Pod::default()), None);
    }
}
