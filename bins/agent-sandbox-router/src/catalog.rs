//! The target set: every Sandbox the router knows and the pods they own, and the choice of the IP
//! a request goes to. Kept current by the watches ([`crate::watch`]); in the in-process tests it is
//! filled by hand, which is the test seam that replaces the cluster. Lookups are in memory: no
//! request ever calls the API server.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use agent_sandbox_api::keys::CORE_GROUP;
use hyper::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::guard::{Guard, Refusal};
use crate::headers::Route;

/// Namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the router keeps of a Sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    /// `metadata.uid`: pods name their Sandbox by it, and `X-Sandbox-UID` must match it.
    pub uid: String,
}

/// What the router keeps of a Sandbox's pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    /// UID of the Sandbox that controls the pod (its controller owner reference).
    pub sandbox_uid: String,
    /// `status.podIPs` (or `status.podIP`), in the order the kubelet reported them.
    pub ips: Vec<IpAddr>,
    /// The pod's Ready condition is True.
    pub ready: bool,
    /// `spec.hostNetwork`: the pod's IP is then the node's, never a target.
    pub host_network: bool,
    /// `metadata.deletionTimestamp` is set: the pod is going away.
    pub terminating: bool,
}

/// The record of a Sandbox, from its metadata.
pub fn sandbox_record(meta: &ObjectMeta) -> Option<(ObjectKey, SandboxRecord)> {
    Some((
        ObjectKey::new(meta.namespace.as_deref()?, meta.name.as_deref()?),
        SandboxRecord {
            uid: meta.uid.clone().filter(|u| !u.is_empty())?,
        },
    ))
}

/// The record of a pod, if a Sandbox controls it (controller owner reference of kind Sandbox in
/// `agents.x-k8s.io`, any version). Addresses that do not parse are dropped.
pub fn pod_record(pod: &Pod) -> Option<(ObjectKey, PodRecord)> {
    let meta = &pod.metadata;
    let owner = meta.owner_references.as_ref()?.iter().find(|r| {
        r.controller == Some(true)
            && r.kind == "Sandbox"
            && r.api_version.split('/').next() == Some(CORE_GROUP)
    })?;
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|ip| ip.ip.parse().ok()).collect())
        .unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
        && let Ok(ip) = ip.parse()
    {
        ips.push(ip);
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some((
        ObjectKey::new(meta.namespace.as_deref()?, meta.name.as_deref()?),
        PodRecord {
            sandbox_uid: owner.uid.clone(),
            ips,
            ready,
            host_network: pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false),
            terminating: meta.deletion_timestamp.is_some(),
        },
    ))
}

/// Why a request has no target. [`ResolveError::status`] is the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The watches have not listed everything yet.
    #[error("the router has not loaded the Sandboxes yet; retry shortly")]
    NotSynced,
    /// No Sandbox of that name.
    #[error("sandbox {0} not found")]
    UnknownSandbox(ObjectKey),
    /// The Sandbox exists with another UID (replaced since the client looked).
    #[error("sandbox {key} has UID {actual}, not {asked}")]
    UidMismatch {
        /// The Sandbox.
        key: ObjectKey,
        /// `X-Sandbox-UID`.
        asked: String,
        /// The Sandbox's UID.
        actual: String,
    },
    /// The Sandbox has no live pod (suspended, starting, or its pod is being replaced).
    #[error("sandbox {0} has no running pod")]
    NoPod(ObjectKey),
    /// The Sandbox's pod is not Ready.
    #[error("sandbox {0} is not ready")]
    NotReady(ObjectKey),
    /// The Sandbox's pod is Ready but reports no IP.
    #[error("sandbox {0} has no pod IP")]
    NoPodIp(ObjectKey),
    /// `X-Sandbox-Pod-IP` is not an IP of that Sandbox's pod.
    #[error("X-Sandbox-Pod-IP {ip} is not an IP of sandbox {key}'s pod")]
    ForeignIp {
        /// The Sandbox.
        key: ObjectKey,
        /// The address asked for.
        ip: IpAddr,
    },
    /// The pod shares the node's network: its IP is the node's.
    #[error(
        "sandbox {0}'s pod uses the host network; the router does not forward to node addresses"
    )]
    HostNetwork(ObjectKey),
    /// The pod's address is one the router never connects to.
    #[error("sandbox {key}'s pod IP {ip} is {refusal}; the router does not forward there")]
    Refused {
        /// The Sandbox.
        key: ObjectKey,
        /// The address.
        ip: IpAddr,
        /// Which rule refused it.
        refusal: Refusal,
    },
}

impl ResolveError {
    /// The status code the request is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownSandbox(_) | Self::UidMismatch { .. } => StatusCode::NOT_FOUND,
            Self::NotSynced | Self::NoPod(_) | Self::NotReady(_) | Self::NoPodIp(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ForeignIp { .. } | Self::HostNetwork(_) | Self::Refused { .. } => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

#[derive(Debug, Default)]
struct Index {
    sandboxes: HashMap<ObjectKey, SandboxRecord>,
    pods: HashMap<ObjectKey, PodRecord>,
    /// Sandbox UID → its pods, so a lookup never scans every pod.
    owned: HashMap<String, BTreeSet<ObjectKey>>,
}

impl Index {
    fn insert_pod(&mut self, key: ObjectKey, pod: PodRecord) {
        self.remove_pod(&key);
        self.owned
            .entry(pod.sandbox_uid.clone())
            .or_default()
            .insert(key.clone());
        self.pods.insert(key, pod);
    }

    fn remove_pod(&mut self, key: &ObjectKey) {
        if let Some(old) = self.pods.remove(key)
            && let Some(set) = self.owned.get_mut(&old.sandbox_uid)
        {
            set.remove(key);
            if set.is_empty() {
                self.owned.remove(&old.sandbox_uid);
            }
        }
    }
}

/// The Sandboxes and Sandbox pods the router knows, shared by the watches and every request.
#[derive(Debug, Default)]
pub struct Catalog {
    index: RwLock<Index>,
    sandboxes_listed: AtomicBool,
    pods_listed: AtomicBool,
}

impl Catalog {
    /// An empty catalog that is not yet synced.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once both the Sandboxes and the pods have been listed completely at least once.
    pub fn synced(&self) -> bool {
        self.sandboxes_listed.load(Ordering::Acquire) && self.pods_listed.load(Ordering::Acquire)
    }

    /// How many Sandboxes and Sandbox pods are known.
    pub fn len(&self) -> (usize, usize) {
        let index = self.read();
        (index.sandboxes.len(), index.pods.len())
    }

    /// Replaces every Sandbox with a complete list (after a watch's initial list or re-list).
    pub fn replace_sandboxes(&self, all: impl IntoIterator<Item = (ObjectKey, SandboxRecord)>) {
        self.write().sandboxes = all.into_iter().collect();
        self.sandboxes_listed.store(true, Ordering::Release);
    }

    /// Adds or updates one Sandbox.
    pub fn upsert_sandbox(&self, key: ObjectKey, sandbox: SandboxRecord) {
        self.write().sandboxes.insert(key, sandbox);
    }

    /// Forgets one Sandbox.
    pub fn remove_sandbox(&self, key: &ObjectKey) {
        self.write().sandboxes.remove(key);
    }

    /// Replaces every pod with a complete list.
    pub fn replace_pods(&self, all: impl IntoIterator<Item = (ObjectKey, PodRecord)>) {
        let mut index = self.write();
        index.pods.clear();
        index.owned.clear();
        for (key, pod) in all {
            index.insert_pod(key, pod);
        }
        drop(index);
        self.pods_listed.store(true, Ordering::Release);
    }

    /// Adds or updates one pod.
    pub fn upsert_pod(&self, key: ObjectKey, pod: PodRecord) {
        self.write().insert_pod(key, pod);
    }

    /// Forgets one pod.
    pub fn remove_pod(&self, key: &ObjectKey) {
        self.write().remove_pod(key);
    }

    /// The IP to forward `route` to: an IP of a live, Ready pod that the named Sandbox controls
    /// and that `guard` allows. `X-Sandbox-Pod-IP` only picks among those IPs; naming any other
    /// address is refused, so a client cannot steer the router anywhere else.
    pub fn resolve(&self, route: &Route, guard: &Guard) -> Result<IpAddr, ResolveError> {
        if !self.synced() {
            return Err(ResolveError::NotSynced);
        }
        let key = ObjectKey::new(&route.namespace, &route.name);
        let index = self.read();
        let sandbox = index
            .sandboxes
            .get(&key)
            .ok_or_else(|| ResolveError::UnknownSandbox(key.clone()))?;
        if let Some(asked) = &route.uid
            && *asked != sandbox.uid
        {
            return Err(ResolveError::UidMismatch {
                key,
                asked: asked.clone(),
                actual: sandbox.uid.clone(),
            });
        }
        // Owner references never cross namespaces, but a pod is only trusted in its Sandbox's.
        let pods: Vec<&PodRecord> = index
            .owned
            .get(&sandbox.uid)
            .into_iter()
            .flatten()
            .filter(|pod_key| pod_key.namespace == key.namespace)
            .filter_map(|pod_key| index.pods.get(pod_key))
            .filter(|pod| !pod.terminating)
            .collect();
        let ip = match route.pod_ip {
            Some(ip) => {
                let ip = ip.to_canonical();
                let pod = pods
                    .iter()
                    .find(|pod| pod.ips.iter().any(|own| own.to_canonical() == ip))
                    .ok_or_else(|| ResolveError::ForeignIp {
                        key: key.clone(),
                        ip,
                    })?;
                usable(pod, &key)?;
                ip
            }
            None => {
                let Some(pod) = pods.iter().find(|pod| usable(pod, &key).is_ok()) else {
                    // Explain with the first pod's problem, or say there is none.
                    return Err(pods
                        .first()
                        .and_then(|pod| usable(pod, &key).err())
                        .unwrap_or(ResolveError::NoPod(key)));
                };
                // Prefer IPv4: single-stack IPv4 clusters are the common case and clients, like
                // upstream's SDK, pick IPv4 from status.podIPs too.
                let ip = pod
                    .ips
                    .iter()
                    .find(|ip| ip.is_ipv4())
                    .unwrap_or(&pod.ips[0]);
                ip.to_canonical()
            }
        };
        guard
            .check(ip)
            .map_err(|refusal| ResolveError::Refused { key, ip, refusal })?;
        Ok(ip)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // (each write is one insert or one replace), so a poisoned lock is used as is.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Ok` when a request may go to this pod.
fn usable(pod: &PodRecord, key: &ObjectKey) -> Result<(), ResolveError> {
    if pod.host_network {
        Err(ResolveError::HostNetwork(key.clone()))
    } else if !pod.ready {
        Err(ResolveError::NotReady(key.clone()))
    } else if pod.ips.is_empty() {
        Err(ResolveError::NoPodIp(key.clone()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(name: &str) -> Route {
        Route {
            namespace: "ns".into(),
            name: name.into(),
            port: 8888,
            pod_ip: None,
            uid: None,
            timeout: None,
        }
    }

    fn pod(uid: &str, ips: &[&str], ready: bool) -> PodRecord {
        PodRecord {
            sandbox_uid: uid.into(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            ready,
            host_network: false,
            terminating: false,
        }
    }

    /// Sandbox `sb` (uid u1) with one Ready pod at 10.88.0.5; Sandbox `idle` (uid u2) with none.
    fn catalog() -> Catalog {
        let catalog = Catalog::new();
        catalog.replace_sandboxes([
            (
                ObjectKey::new("ns", "sb"),
                SandboxRecord { uid: "u1".into() },
            ),
            (
                ObjectKey::new("ns", "idle"),
                SandboxRecord { uid: "u2".into() },
            ),
        ]);
        catalog.replace_pods([(ObjectKey::new("ns", "sb"), pod("u1", &["10.88.0.5"], true))]);
        catalog
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn nothing_resolves_before_both_lists_arrived() {
        let catalog = Catalog::new();
        catalog.replace_sandboxes([]);
        assert_eq!(
            catalog.resolve(&route("sb"), &Guard::default()),
            Err(ResolveError::NotSynced)
        );
        catalog.replace_pods([]);
        assert!(catalog.synced());
    }

    #[test]
    fn a_ready_pod_of_the_named_sandbox_is_the_target() {
        let catalog = catalog();
        assert_eq!(
            catalog.resolve(&route("sb"), &Guard::default()),
            Ok(ip("10.88.0.5"))
        );
        let mut with_ip = route("sb");
        with_ip.pod_ip = Some(ip("10.88.0.5"));
        with_ip.uid = Some("u1".into());
        assert_eq!(
            catalog.resolve(&with_ip, &Guard::default()),
            Ok(ip("10.88.0.5"))
        );
    }

    #[test]
    fn unknown_names_and_uids_are_not_found() {
        let catalog = catalog();
        let err = catalog
            .resolve(&route("nope"), &Guard::default())
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        let mut other_ns = route("sb");
        other_ns.namespace = "elsewhere".into();
        assert!(matches!(
            catalog.resolve(&other_ns, &Guard::default()),
            Err(ResolveError::UnknownSandbox(_))
        ));
        let mut wrong_uid = route("sb");
        wrong_uid.uid = Some("u9".into());
        let err = catalog.resolve(&wrong_uid, &Guard::default()).unwrap_err();
        assert!(matches!(err, ResolveError::UidMismatch { .. }));
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_named_ip_must_belong_to_the_sandboxs_pod() {
        let catalog = catalog();
        catalog.upsert_sandbox(
            ObjectKey::new("ns", "other"),
            SandboxRecord { uid: "u3".into() },
        );
        catalog.upsert_pod(
            ObjectKey::new("ns", "other"),
            pod("u3", &["10.88.0.9"], true),
        );
        // The node, the API server, loopback, and another Sandbox's pod are all foreign.
        for foreign in ["10.88.0.1", "127.0.0.1", "169.254.169.254", "10.88.0.9"] {
            let mut r = route("sb");
            r.pod_ip = Some(ip(foreign));
            let err = catalog.resolve(&r, &Guard::default()).unwrap_err();
            assert!(matches!(err, ResolveError::ForeignIp { .. }), "{foreign}");
            assert_eq!(err.status(), StatusCode::FORBIDDEN);
        }
        // The IPv4-mapped spelling of the pod's own IP is the same address.
        let mut mapped = route("sb");
        mapped.pod_ip = Some(ip("::ffff:10.88.0.5"));
        assert_eq!(
            catalog.resolve(&mapped, &Guard::default()),
            Ok(ip("10.88.0.5"))
        );
    }

    #[test]
    fn a_sandbox_without_a_usable_pod_is_unavailable() {
        let catalog = catalog();
        let err = catalog
            .resolve(&route("idle"), &Guard::default())
            .unwrap_err();
        assert_eq!(err, ResolveError::NoPod(ObjectKey::new("ns", "idle")));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);

        catalog.upsert_pod(ObjectKey::new("ns", "idle"), pod("u2", &[], false));
        assert!(matches!(
            catalog.resolve(&route("idle"), &Guard::default()),
            Err(ResolveError::NotReady(_))
        ));
        catalog.upsert_pod(ObjectKey::new("ns", "idle"), pod("u2", &[], true));
        assert!(matches!(
            catalog.resolve(&route("idle"), &Guard::default()),
            Err(ResolveError::NoPodIp(_))
        ));
        let mut leaving = pod("u2", &["10.88.0.6"], true);
        leaving.terminating = true;
        catalog.upsert_pod(ObjectKey::new("ns", "idle"), leaving);
        assert!(matches!(
            catalog.resolve(&route("idle"), &Guard::default()),
            Err(ResolveError::NoPod(_))
        ));
        catalog.remove_pod(&ObjectKey::new("ns", "idle"));
        catalog.remove_sandbox(&ObjectKey::new("ns", "idle"));
        assert!(matches!(
            catalog.resolve(&route("idle"), &Guard::default()),
            Err(ResolveError::UnknownSandbox(_))
        ));
    }

    #[test]
    fn host_network_and_guarded_addresses_are_refused() {
        let catalog = catalog();
        let mut host = pod("u1", &["10.88.0.1"], true);
        host.host_network = true;
        catalog.upsert_pod(ObjectKey::new("ns", "sb"), host);
        let err = catalog
            .resolve(&route("sb"), &Guard::default())
            .unwrap_err();
        assert!(matches!(err, ResolveError::HostNetwork(_)));
        assert_eq!(err.status(), StatusCode::FORBIDDEN);

        catalog.upsert_pod(
            ObjectKey::new("ns", "sb"),
            pod("u1", &["169.254.169.254"], true),
        );
        let err = catalog
            .resolve(&route("sb"), &Guard::default())
            .unwrap_err();
        assert!(matches!(
            err,
            ResolveError::Refused {
                refusal: Refusal::LinkLocal,
                ..
            }
        ));
        catalog.upsert_pod(ObjectKey::new("ns", "sb"), pod("u1", &["127.0.0.1"], true));
        assert!(catalog.resolve(&route("sb"), &Guard::default()).is_err());
        assert_eq!(
            catalog.resolve(
                &route("sb"),
                &Guard::default().allowing_loopback_for_tests()
            ),
            Ok(ip("127.0.0.1"))
        );
    }

    #[test]
    fn ipv4_is_preferred_and_a_replaced_pod_moves_the_target() {
        let catalog = catalog();
        catalog.upsert_pod(
            ObjectKey::new("ns", "sb"),
            pod("u1", &["fd00::5", "10.88.0.7"], true),
        );
        assert_eq!(
            catalog.resolve(&route("sb"), &Guard::default()),
            Ok(ip("10.88.0.7"))
        );
        assert_eq!(catalog.len(), (2, 1));
    }

    #[test]
    fn pods_are_recorded_only_when_a_sandbox_controls_them() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "sb", "namespace": "ns",
                "ownerReferences": [{"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
                    "name": "sb", "uid": "u1", "controller": true}]
            },
            "spec": {"containers": []},
            "status": {"podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}, {"ip": "fd00::5"}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let (key, record) = pod_record(&pod).unwrap();
        assert_eq!(key, ObjectKey::new("ns", "sb"));
        assert_eq!(
            record,
            PodRecord {
                sandbox_uid: "u1".into(),
                ips: vec![ip("10.88.0.5"), ip("fd00::5")],
                ready: true,
                host_network: false,
                terminating: false,
            }
        );
        for owner in [
            json!({"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox", "name": "sb", "uid": "u1"}),
            json!({"apiVersion": "apps/v1", "kind": "Sandbox", "name": "sb", "uid": "u1", "controller": true}),
            json!({"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "SandboxClaim", "name": "sb", "uid": "u1", "controller": true}),
        ] {
            let mut other = pod.clone();
            other.metadata.owner_references = Some(vec![serde_json::from_value(owner).unwrap()]);
            assert_eq!(pod_record(&other), None);
        }
        let mut old_status: Pod = pod.clone();
        old_status.status.as_mut().unwrap().pod_ips = None;
        assert_eq!(
            pod_record(&old_status).unwrap().1.ips,
            vec![ip("10.88.0.5")]
        );
    }
}
