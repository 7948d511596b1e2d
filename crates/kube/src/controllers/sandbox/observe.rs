//! Builds the decision core's [`Observed`] snapshot for one Sandbox from the caches.

use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::v1beta1::Sandbox;
use agent_sandbox_core::sandbox::{Observed, pvc_name};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use crate::controllers::sandbox::caches::Caches;
use crate::controllers::sandbox::expectations::{ChildKey, ChildKind, Seen};

fn lookup<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(namespace))
        .map(|object| (*object).clone())
}

/// The snapshot the decision core needs for `sandbox`: the Pods carrying its name hash plus the Pod named
/// like it, the Service named like it, and the PVCs of its volume claim templates that exist. The legacy
/// pod-name annotation is not read.
pub fn observe<'a>(sandbox: &'a Sandbox, caches: &Caches) -> Observed<'a> {
    let namespace = sandbox.namespace().unwrap_or_default();
    let name = sandbox.name_any();
    let hash = name_hash(&name);

    let mut pods: Vec<Pod> = caches
        .pod_index
        .names(&namespace, &hash)
        .iter()
        .filter_map(|pod| lookup(&caches.pods, &namespace, pod))
        .collect();
    if !pods
        .iter()
        .any(|pod| pod.metadata.name.as_deref() == Some(name.as_str()))
        && let Some(pod) = lookup(&caches.pods, &namespace, &name)
    {
        pods.push(pod);
    }
    // A stable order keeps plans (and their tests) deterministic.
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let pvcs: Vec<PersistentVolumeClaim> = sandbox
        .spec
        .blueprint
        .volume_claim_templates
        .iter()
        .filter_map(|template| {
            lookup(
                &caches.pvcs,
                &namespace,
                &pvc_name(&template.metadata.name, &name),
            )
        })
        .collect();

    Observed {
        sandbox,
        pods: Ok(pods),
        service: Ok(lookup::<Service>(&caches.services, &namespace, &name)),
        pvcs: Ok(pvcs),
    }
}

fn seen<K: Resource>(object: Option<K>) -> Option<Seen> {
    object.map(|o| Seen {
        uid: o.meta().uid.clone().unwrap_or_default(),
        deleting: o.meta().deletion_timestamp.is_some(),
        resource_version: o.meta().resource_version.clone().unwrap_or_default(),
    })
}

/// What the caches hold for an expected child.
pub fn seen_in_cache(caches: &Caches, child: &ChildKey) -> Option<Seen> {
    let (namespace, name) = (child.namespace.as_str(), child.name.as_str());
    match child.kind {
        ChildKind::Pod => seen(lookup::<Pod>(&caches.pods, namespace, name)),
        ChildKind::Service => seen(lookup::<Service>(&caches.services, namespace, name)),
        ChildKind::Pvc => seen(lookup::<PersistentVolumeClaim>(
            &caches.pvcs,
            namespace,
            name,
        )),
        ChildKind::Sandbox => seen(lookup::<Sandbox>(&caches.sandboxes, namespace, name)),
    }
}

#[cfg(test)]
mod tests {
    use agent_sandbox_api::common::PersistentVolumeClaimTemplate;
    use agent_sandbox_api::keys::labels;
    use agent_sandbox_api::v1beta1::SandboxSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use crate::controllers::sandbox::index::NameHashIndex;

    use super::*;

    fn meta(namespace: &str, name: &str, hash_label: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{namespace}-{name}")),
            labels: hash_label
                .map(|h| [(labels::SANDBOX_NAME_HASH.to_owned(), h.to_owned())].into()),
            ..ObjectMeta::default()
        }
    }

    fn store<K>(objects: Vec<K>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut writer = Writer::<K>::default();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        writer.as_reader()
    }

    fn pod(namespace: &str, name: &str, hash_label: Option<&str>) -> Pod {
        Pod {
            metadata: meta(namespace, name, hash_label),
            ..Pod::default()
        }
    }

    fn sandbox(name: &str, pod_annotation: Option<&str>, templates: &[&str]) -> Sandbox {
        let mut sandbox = Sandbox::new(name, SandboxSpec::default());
        sandbox.metadata.namespace = Some("ns".into());
        if let Some(p) = pod_annotation {
            sandbox.metadata.annotations = Some(
                [(
                    agent_sandbox_api::keys::annotations::POD_NAME.to_owned(),
                    p.to_owned(),
                )]
                .into(),
            );
        }
        sandbox.spec.blueprint.volume_claim_templates = templates
            .iter()
            .map(|t| PersistentVolumeClaimTemplate::named(*t))
            .collect();
        sandbox
    }

    fn caches(pods: Vec<Pod>, services: Vec<Service>, pvcs: Vec<PersistentVolumeClaim>) -> Caches {
        let index = NameHashIndex::default();
        for pod in &pods {
            index.apply(&Event::Apply(pod.clone()));
        }
        Caches::new(
            store(vec![]),
            store(pods),
            store(services),
            store(pvcs),
            index,
        )
    }

    fn names<K: Resource>(objects: &[K]) -> Vec<String> {
        objects
            .iter()
            .map(|o| o.meta().name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn pods_are_the_hash_labelled_ones_in_the_namespace_plus_the_one_named_like_the_sandbox() {
        let hash = name_hash("sb");
        let caches = caches(
            vec![
                pod("ns", "b-labelled", Some(&hash)),
                pod("ns", "a-labelled", Some(&hash)),
                pod("other", "elsewhere", Some(&hash)),
                pod("ns", "other-hash", Some("00000000")),
                pod("ns", "sb", None),
                pod("ns", "legacy", None),
                pod("ns", "unrelated", None),
            ],
            vec![],
            vec![],
        );
        // The legacy pod-name annotation is not read: the unlabelled Pod it names is not looked up.
        let sb = sandbox("sb", Some("legacy"), &[]);
        let observed = observe(&sb, &caches);
        let pods = observed.pods.as_ref().map(|p| names(p));
        assert_eq!(
            pods,
            Ok(vec!["a-labelled".into(), "b-labelled".into(), "sb".into()])
        );
    }

    #[test]
    fn the_pod_named_like_the_sandbox_is_not_listed_twice() {
        let hash = name_hash("sb");
        let caches = caches(
            vec![pod("ns", "sb", Some(&hash)), pod("ns", "x", None)],
            vec![],
            vec![],
        );
        for annotation in [None, Some("")] {
            let sb = sandbox("sb", annotation, &[]);
            let observed = observe(&sb, &caches);
            assert_eq!(observed.pods.map(|p| names(&p)), Ok(vec!["sb".into()]));
        }
    }

    #[test]
    fn service_is_the_one_named_like_the_sandbox_in_its_namespace() {
        let caches = caches(
            vec![],
            vec![
                Service {
                    metadata: meta("other", "sb", None),
                    ..Service::default()
                },
                Service {
                    metadata: meta("ns", "sb", None),
                    ..Service::default()
                },
            ],
            vec![],
        );
        let sb = sandbox("sb", None, &[]);
        let service = observe(&sb, &caches).service;
        assert_eq!(
            service.map(|s| s.and_then(|s| s.metadata.uid)),
            Ok(Some("uid-ns-sb".into()))
        );
        let none = sandbox("absent", None, &[]);
        assert_eq!(
            observe(&none, &caches).service.map(|s| s.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn pvcs_are_the_existing_ones_named_after_each_template() {
        let pvc = |ns: &str, name: &str| PersistentVolumeClaim {
            metadata: meta(ns, name, None),
            ..PersistentVolumeClaim::default()
        };
        let caches = caches(
            vec![],
            vec![],
            vec![
                pvc("ns", "data-sb"),
                pvc("other", "work-sb"),
                pvc("ns", "unrelated"),
            ],
        );
        let sb = sandbox("sb", None, &["work", "data"]);
        assert_eq!(
            observe(&sb, &caches).pvcs.map(|p| names(&p)),
            Ok(vec!["data-sb".into()])
        );
    }

    #[test]
    fn seen_in_cache_reports_uid_and_deletion() {
        let mut terminating = pod("ns", "p", None);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let caches = caches(vec![terminating], vec![], vec![]);
        let key = |kind, name: &str| ChildKey {
            kind,
            namespace: "ns".into(),
            name: name.into(),
        };
        assert_eq!(
            seen_in_cache(&caches, &key(ChildKind::Pod, "p")),
            Some(Seen {
                uid: "uid-ns-p".into(),
                deleting: true,
                resource_version: String::new(),
            })
        );
        assert_eq!(seen_in_cache(&caches, &key(ChildKind::Service, "p")), None);
        assert_eq!(seen_in_cache(&caches, &key(ChildKind::Pvc, "p")), None);
    }
}
