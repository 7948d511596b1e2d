//! What the caches keep of an object: never its managedFields, of a Pod only what a pass reads.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::Resource;

/// Drops `metadata.managedFields`: the controller never reads them and they dominate object size.
pub fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Slims a Pod for the cache: no managedFields, no finalizers, and of the spec only `nodeName`.
///
/// Safe because Pod writes are metadata-only merge patches and Pods are created from the Sandbox's
/// template, never from the cache.
pub fn slim_pod(pod: &mut Pod) {
    let meta = pod.meta_mut();
    meta.managed_fields = None;
    meta.finalizers = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        ..PodSpec::default()
    });
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodStatus, Service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    fn fat_pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                labels: Some([("a".to_owned(), "b".to_owned())].into()),
                annotations: Some([("c".to_owned(), "d".to_owned())].into()),
                finalizers: Some(vec!["example.com/f".into()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                hostname: Some("p".into()),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("img".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn slim_pod_keeps_metadata_status_and_node_name_only() {
        let mut pod = fat_pod();
        slim_pod(&mut pod);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.metadata.finalizers, None);
        assert_eq!(pod.metadata.labels, fat_pod().metadata.labels);
        assert_eq!(pod.metadata.annotations, fat_pod().metadata.annotations);
        assert_eq!(
            pod.spec,
            Some(PodSpec {
                node_name: Some("node-1".into()),
                ..PodSpec::default()
            })
        );
        assert_eq!(pod.status, fat_pod().status);
    }

    #[test]
    fn slim_pod_without_spec_stays_without_spec() {
        let mut pod = fat_pod();
        pod.spec = None;
        slim_pod(&mut pod);
        assert_eq!(pod.spec, None);
    }

    #[test]
    fn strip_managed_fields_leaves_everything_else() {
        let mut service = Service {
            metadata: ObjectMeta {
                name: Some("s".into()),
                finalizers: Some(vec!["keep".into()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        strip_managed_fields(&mut service);
        assert_eq!(service.metadata.managed_fields, None);
        assert_eq!(service.metadata.finalizers, Some(vec!["keep".into()]));
    }
}
