//! Drives whole claim passes against an in-memory API server: resourceVersions with optimistic
//! locking, a cache that can be frozen to lag the server, an adoption queue, and injected conflicts.

mod adoption;
mod expiry;
mod passes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use k8s_openapi::jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{ApiError, Candidate, ClaimApi};
use super::pass::{Outcome, Settings, reconcile};

/// Runs a future whose every await is immediately ready (the fake API never waits).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the fake API never waits"),
    }
}

pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid")
}

fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                apply_merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn typed<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("valid object")
}

/// Which write a conflict is injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Write {
    /// A locked claim metadata patch.
    Claim,
    /// A locked Sandbox patch.
    Sandbox,
    /// The claim status patch.
    Status,
}

#[derive(Default, Clone)]
pub(super) struct Objects {
    pub sandboxes: BTreeMap<String, Sandbox>,
    pub claims: BTreeMap<String, SandboxClaim>,
    pub pools: BTreeMap<String, SandboxWarmPool>,
    pub templates: BTreeMap<String, SandboxTemplate>,
}

/// The in-memory API server, cache and adoption queue of one namespace (`ns`).
#[derive(Default)]
pub(super) struct World {
    pub server: Mutex<Objects>,
    /// A frozen cache (lagging the server), or `None` for a cache that shows every write.
    pub frozen: Mutex<Option<Objects>>,
    pub queue: Mutex<BTreeMap<String, VecDeque<Candidate>>>,
    pub conflicts: Mutex<BTreeMap<Write, usize>>,
    /// Every write, as `verb kind/name`.
    pub log: Mutex<Vec<String>>,
    next: Mutex<u64>,
    pub foreground_deletes: Mutex<Vec<String>>,
    /// Sandboxes created through the claim API (what the adapter remembers until its cache shows them).
    pub created: Mutex<BTreeSet<String>>,
    /// Every Sandbox read from the API server (not the cache), by name.
    pub sandbox_reads: Mutex<Vec<String>>,
}

impl World {
    fn version(&self) -> String {
        let mut next = self.next.lock().expect("lock");
        *next += 1;
        next.to_string()
    }

    fn record(&self, entry: String) {
        self.log.lock().expect("lock").push(entry);
    }

    pub fn writes(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }

    fn conflict(&self, write: Write) -> bool {
        let mut conflicts = self.conflicts.lock().expect("lock");
        match conflicts.get_mut(&write) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    pub fn inject(&self, write: Write, times: usize) {
        self.conflicts.lock().expect("lock").insert(write, times);
    }

    fn stamp(&self, meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
        meta.namespace = Some("ns".into());
        meta.resource_version = Some(self.version());
        if meta.uid.is_none() {
            meta.uid = Some(format!("uid-{}", meta.name.as_deref().unwrap_or_default()));
        }
        if meta.creation_timestamp.is_none() {
            meta.creation_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
        }
    }

    pub fn add_template(&self, template: Value) {
        let mut t: SandboxTemplate = typed(template);
        self.stamp(&mut t.metadata);
        let name = t.metadata.name.clone().unwrap_or_default();
        self.server.lock().expect("lock").templates.insert(name, t);
    }

    pub fn add_pool(&self, pool: Value) {
        let mut p: SandboxWarmPool = typed(pool);
        self.stamp(&mut p.metadata);
        let name = p.metadata.name.clone().unwrap_or_default();
        self.server.lock().expect("lock").pools.insert(name, p);
    }

    pub fn add_claim(&self, claim: Value) -> SandboxClaim {
        let mut c: SandboxClaim = typed(claim);
        self.stamp(&mut c.metadata);
        let name = c.metadata.name.clone().unwrap_or_default();
        self.server
            .lock()
            .expect("lock")
            .claims
            .insert(name, c.clone());
        c
    }

    pub fn add_sandbox(&self, sandbox: Sandbox) {
        let mut s = sandbox;
        self.stamp(&mut s.metadata);
        let name = s.metadata.name.clone().unwrap_or_default();
        self.server.lock().expect("lock").sandboxes.insert(name, s);
    }

    /// Queues a warm Sandbox as the Sandbox feed would.
    pub fn enqueue(&self, pool: &str, name: &str) {
        self.queue
            .lock()
            .expect("lock")
            .entry(pool.into())
            .or_default()
            .push_back(Candidate {
                name: name.into(),
                node_name: String::new(),
            });
    }

    pub fn queued(&self, pool: &str) -> Vec<String> {
        self.queue
            .lock()
            .expect("lock")
            .get(pool)
            .map(|q| q.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    /// From now on the cache shows the server as it is now.
    pub fn freeze(&self) {
        *self.frozen.lock().expect("lock") = Some(self.server.lock().expect("lock").clone());
    }

    pub fn thaw(&self) {
        *self.frozen.lock().expect("lock") = None;
    }

    fn cached<T>(&self, read: impl Fn(&Objects) -> T) -> T {
        match &*self.frozen.lock().expect("lock") {
            Some(objects) => read(objects),
            None => read(&self.server.lock().expect("lock")),
        }
    }

    pub fn claim(&self, name: &str) -> Option<SandboxClaim> {
        self.server.lock().expect("lock").claims.get(name).cloned()
    }

    pub fn sandbox(&self, name: &str) -> Option<Sandbox> {
        self.server
            .lock()
            .expect("lock")
            .sandboxes
            .get(name)
            .cloned()
    }

    pub fn sandboxes(&self) -> Vec<Sandbox> {
        self.server
            .lock()
            .expect("lock")
            .sandboxes
            .values()
            .cloned()
            .collect()
    }

    /// Marks a Sandbox as the Sandbox controller would: Ready (or not) with an IP.
    pub fn set_sandbox_status(
        &self,
        name: &str,
        ready: Option<&str>,
        ip: bool,
        finished_at: Option<i64>,
    ) {
        let mut server = self.server.lock().expect("lock");
        let Some(s) = server.sandboxes.get_mut(name) else {
            return;
        };
        let mut conditions = vec![];
        if let Some(status) = ready {
            conditions.push(json!({"type": types::READY, "status": status,
                "reason": if status == "True" {"DependenciesReady"} else {"DependenciesNotReady"},
                "message": "", "lastTransitionTime": at(1).to_string()}));
        }
        if let Some(when) = finished_at {
            conditions.push(
                json!({"type": types::FINISHED, "status": "True", "reason": "PodSucceeded",
                "message": "", "lastTransitionTime": at(when).to_string()}),
            );
        }
        s.status = Some(typed(json!({
            "conditions": conditions,
            "podIPs": if ip { json!(["10.0.0.1"]) } else { json!([]) },
            "serviceFQDN": if ip { format!("{name}.ns.svc.cluster.local") } else { String::new() },
        })));
        s.metadata.resource_version = Some(self.version());
    }

    /// Runs one pass of the named claim (read from the cache) at `now`.
    pub fn reconcile(&self, claim: &str, now: Timestamp) -> Outcome {
        self.reconcile_with(claim, now, &settings())
    }

    pub fn reconcile_with(&self, claim: &str, now: Timestamp, settings: &Settings) -> Outcome {
        let cached = self
            .cached(|o| o.claims.get(claim).cloned())
            .expect("claim cached");
        let api = Fake {
            world: self,
            claim: claim.into(),
        };
        block_on(reconcile(&api, cached, Some(at(0)), now, settings))
    }
}

pub(super) fn settings() -> Settings {
    Settings {
        observability_annotations: true,
        validation: Default::default(),
    }
}

/// The claim-scoped API over a [`World`].
pub(super) struct Fake<'w> {
    pub world: &'w World,
    pub claim: String,
}

fn patched<K: serde::Serialize + DeserializeOwned + Clone>(
    world: &World,
    object: &K,
    patch: &Value,
    write: Write,
) -> Result<K, ApiError> {
    let mut value = serde_json::to_value(object).expect("serialise");
    let current = value
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(wanted) = patch.pointer("/metadata/resourceVersion") {
        if world.conflict(write) {
            return Err(ApiError::Conflict("injected".into()));
        }
        if *wanted != current {
            return Err(ApiError::Conflict(
                "the object has been modified; please apply your changes to the latest version"
                    .into(),
            ));
        }
    } else if write == Write::Status && world.conflict(write) {
        return Err(ApiError::Conflict("injected".into()));
    }
    apply_merge_patch(&mut value, patch);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(world.version()));
    }
    Ok(typed(value))
}

impl ClaimApi for Fake<'_> {
    fn cached_sandbox(&self, name: &str) -> Option<Sandbox> {
        self.world.cached(|o| o.sandboxes.get(name).cloned())
    }

    fn cached_pool(&self, name: &str) -> Option<SandboxWarmPool> {
        self.world.cached(|o| o.pools.get(name).cloned())
    }

    fn cached_template(&self, name: &str) -> Option<SandboxTemplate> {
        self.world.cached(|o| o.templates.get(name).cloned())
    }

    fn pop_candidate(&self, pool: &str) -> Option<Candidate> {
        self.world
            .queue
            .lock()
            .expect("lock")
            .get_mut(pool)?
            .pop_front()
    }

    fn push_candidate(&self, pool: &str, candidate: Candidate) {
        let mut queue = self.world.queue.lock().expect("lock");
        let list = queue.entry(pool.into()).or_default();
        if !list.iter().any(|c| c.name == candidate.name) {
            list.push_back(candidate);
        }
    }

    fn outdated(&self, _template: &SandboxTemplate, sandbox: &Sandbox) -> bool {
        sandbox
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SANDBOX_TEMPLATE_HASH))
            .is_some_and(|h| h == "stale")
    }

    fn created_unseen(&self, name: &str) -> bool {
        self.world.created.lock().expect("lock").contains(name)
            && self.world.cached(|o| !o.sandboxes.contains_key(name))
    }

    async fn read_claim(&self) -> Result<SandboxClaim, ApiError> {
        self.world.claim(&self.claim).ok_or(ApiError::NotFound)
    }

    async fn read_sandbox(&self, name: &str) -> Result<Sandbox, ApiError> {
        self.world
            .sandbox_reads
            .lock()
            .expect("lock")
            .push(name.into());
        self.world.sandbox(name).ok_or(ApiError::NotFound)
    }

    async fn patch_claim(&self, patch: Value) -> Result<SandboxClaim, ApiError> {
        let mut server = self.world.server.lock().expect("lock");
        let claim = server.claims.get(&self.claim).ok_or(ApiError::NotFound)?;
        let written = patched(self.world, claim, &patch, Write::Claim)?;
        self.world.record(format!("patch claim/{}", self.claim));
        server.claims.insert(self.claim.clone(), written.clone());
        Ok(written)
    }

    async fn patch_claim_status(&self, patch: Value) -> Result<(), ApiError> {
        let mut server = self.world.server.lock().expect("lock");
        let claim = server.claims.get(&self.claim).ok_or(ApiError::NotFound)?;
        let mut written = patched(self.world, claim, &patch, Write::Status)?;
        // The status subresource ignores everything but status.
        let mut kept = claim.clone();
        kept.status = written.status.take();
        kept.metadata.resource_version = written.metadata.resource_version;
        self.world.record(format!("status claim/{}", self.claim));
        server.claims.insert(self.claim.clone(), kept);
        Ok(())
    }

    async fn delete_claim(&self, foreground: bool) -> Result<(), ApiError> {
        let mut server = self.world.server.lock().expect("lock");
        server
            .claims
            .remove(&self.claim)
            .ok_or(ApiError::NotFound)?;
        if foreground {
            self.world
                .foreground_deletes
                .lock()
                .expect("lock")
                .push(self.claim.clone());
        }
        self.world.record(format!("delete claim/{}", self.claim));
        Ok(())
    }

    async fn patch_sandbox(&self, name: &str, patch: Value) -> Result<Sandbox, ApiError> {
        let mut server = self.world.server.lock().expect("lock");
        let sandbox = server.sandboxes.get(name).ok_or(ApiError::NotFound)?;
        let written = patched(self.world, sandbox, &patch, Write::Sandbox)?;
        self.world.record(format!("patch sandbox/{name}"));
        server.sandboxes.insert(name.into(), written.clone());
        Ok(written)
    }

    async fn create_sandbox(&self, sandbox: Sandbox) -> Result<Sandbox, ApiError> {
        let name = sandbox.metadata.name.clone().unwrap_or_default();
        if self.world.sandbox(&name).is_some() {
            return Err(ApiError::AlreadyExists);
        }
        let mut s = sandbox;
        self.world.stamp(&mut s.metadata);
        self.world.record(format!("create sandbox/{name}"));
        self.world
            .created
            .lock()
            .expect("lock")
            .insert(name.clone());
        self.world
            .server
            .lock()
            .expect("lock")
            .sandboxes
            .insert(name, s.clone());
        Ok(s)
    }

    async fn delete_sandbox(&self, name: &str, uid: &str) -> Result<(), ApiError> {
        let mut server = self.world.server.lock().expect("lock");
        match server.sandboxes.get(name) {
            Some(s) if s.metadata.uid.as_deref() == Some(uid) => {
                server.sandboxes.remove(name);
                self.world.record(format!("delete sandbox/{name}"));
                Ok(())
            }
            _ => Err(ApiError::NotFound),
        }
    }
}

/// A template `tpl` (one container `agent`) with extra spec fields.
pub(super) fn template(extra: Value) -> Value {
    let mut spec =
        json!({"podTemplate": {"spec": {"containers": [{"name": "agent", "image": "img"}]}}});
    apply_merge_patch(&mut spec, &extra);
    json!({"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxTemplate",
        "metadata": {"name": "tpl"}, "spec": spec})
}

/// A pool `name` of template `tpl` with extra spec fields.
pub(super) fn pool(name: &str, extra: Value) -> Value {
    let mut spec = json!({"replicas": 2, "sandboxTemplateRef": {"name": "tpl"}});
    apply_merge_patch(&mut spec, &extra);
    json!({"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
        "metadata": {"name": name, "uid": format!("uid-pool-{name}")}, "spec": spec})
}

/// A claim `name` on pool `pool` with extra spec fields.
pub(super) fn claim(name: &str, pool: &str, extra: Value) -> Value {
    let mut spec = json!({"warmPoolRef": {"name": pool}});
    apply_merge_patch(&mut spec, &extra);
    json!({"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxClaim",
        "metadata": {"name": name, "generation": 1}, "spec": spec})
}

/// A warm member `name` of pool `pool` (Ready with an IP unless changed).
pub(super) fn member(world: &World, pool: &str, name: &str) {
    let sandbox: Sandbox = typed(json!({
        "apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox",
        "metadata": {"name": name,
            "labels": {
                labels::WARM_POOL_SANDBOX: agent_sandbox_api::hash::name_hash(pool),
                labels::SANDBOX_TEMPLATE_REF_HASH: agent_sandbox_api::hash::name_hash("tpl"),
                labels::SANDBOX_TEMPLATE_HASH: "h",
                labels::LAUNCH_TYPE: "warm",
            },
            "annotations": {agent_sandbox_api::keys::annotations::SANDBOX_TEMPLATE_REF: "tpl"},
            "ownerReferences": [{"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool",
                "name": pool, "uid": format!("uid-pool-{pool}"), "controller": true}]},
        "spec": {"podTemplate": {
            "metadata": {"annotations": {agent_sandbox_api::keys::annotations::SAFE_TO_EVICT: "true"}},
            "spec": {"containers": [{"name": "agent", "image": "img"}]}}}
    }));
    world.add_sandbox(sandbox);
    world.set_sandbox_status(name, Some("True"), true, None);
    world.enqueue(pool, name);
}

/// The claim's Ready (status, reason, message).
pub(super) fn ready(claim: &SandboxClaim) -> (String, String, String) {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// The claim's bound Sandbox name.
pub(super) fn bound(claim: &SandboxClaim) -> String {
    claim
        .status
        .as_ref()
        .map(|s| s.sandbox.name.clone())
        .unwrap_or_default()
}

/// The standard setup: template `tpl`, pool `p`.
pub(super) fn world() -> World {
    let world = World::default();
    world.add_template(template(json!({})));
    world.add_pool(pool("p", json!({})));
    world
}
