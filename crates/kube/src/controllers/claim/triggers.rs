//! What wakes a claim besides its own changes, and the adoption queue kept from the Sandbox feed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use agent_sandbox_api::conditions::types;
use agent_sandbox_api::keys::{EXTENSIONS_GROUP, labels};
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::claim::api::Candidate;
use agent_sandbox_core::conditions::find;
use agent_sandbox_core::ownership::{controller_of, controlling_pool};
use futures::channel::mpsc::{self, UnboundedReceiver};
use futures::{StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::task::JoinHandle;

use crate::controllers::claim::writes::{Caches, SharedQueue, queue_key};
use crate::runtime::feed::Change;

/// Claims to look at.
pub type Wake = Vec<ObjectRef<SandboxClaim>>;

fn has_label(sandbox: &Sandbox, key: &str) -> bool {
    sandbox
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .is_some_and(|v| !v.is_empty())
}

/// The pool a Sandbox can be adopted from: not deleting, both pool labels, controlled by a pool.
pub fn adoptable(sandbox: &Sandbox) -> Option<&str> {
    if sandbox.metadata.deletion_timestamp.is_some()
        || !has_label(sandbox, labels::WARM_POOL_SANDBOX)
        || !has_label(sandbox, labels::SANDBOX_TEMPLATE_REF_HASH)
    {
        return None;
    }
    controlling_pool(sandbox)
}

fn node(sandbox: &Sandbox) -> String {
    sandbox
        .status
        .as_ref()
        .map(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// The claim controlling a Sandbox, if any.
pub fn controlling_claim(sandbox: &Sandbox) -> Option<ObjectRef<SandboxClaim>> {
    let owner = controller_of(&sandbox.metadata, EXTENSIONS_GROUP, "SandboxClaim")?;
    Some(
        ObjectRef::new(&owner.name)
            .within(sandbox.metadata.namespace.as_deref().unwrap_or_default()),
    )
}

/// The parts of a Sandbox's status its claim's status mirrors besides conditions.
fn mirrored(sandbox: &Sandbox) -> Option<(&Vec<String>, &String)> {
    let status = sandbox.status.as_ref()?;
    Some((&status.pod_ips, &status.service_fqdn))
}

fn condition<'a>(sandbox: &'a Sandbox, type_: &str) -> Option<&'a Condition> {
    find(&sandbox.status.as_ref()?.conditions, type_)
}

/// Whether a claim must look at its Sandbox's change: deletion started, Pod IPs or Service FQDN (both
/// mirrored in the claim's status), or the whole Ready or Finished condition changed (a reason-only
/// change to `SandboxExpired` counts).
pub fn relevant_change(old: &Sandbox, new: &Sandbox) -> bool {
    old.metadata.deletion_timestamp.is_some() != new.metadata.deletion_timestamp.is_some()
        || mirrored(old) != mirrored(new)
        || condition(old, types::READY) != condition(new, types::READY)
        || condition(old, types::FINISHED) != condition(new, types::FINISHED)
}

/// Follows the Sandbox feed: keeps the adoption queue and says which claims to wake.
pub struct SandboxWatch {
    queue: SharedQueue,
    last: HashMap<(String, String), Arc<Sandbox>>,
}

impl SandboxWatch {
    /// Feeds `queue`.
    pub fn new(queue: SharedQueue) -> Self {
        Self {
            queue,
            last: HashMap::new(),
        }
    }

    /// Applies one Sandbox change.
    pub fn apply(&mut self, change: &Change<Sandbox>) -> Wake {
        let sandbox = change.object();
        let namespace = sandbox.metadata.namespace.clone().unwrap_or_default();
        let name = sandbox.metadata.name.clone().unwrap_or_default();
        let key = (namespace.clone(), name.clone());
        let Ok(mut queue) = self.queue.lock() else {
            return Vec::new();
        };
        match change {
            Change::Deleted(_) => {
                if let Some(pool) = self
                    .last
                    .remove(&key)
                    .as_deref()
                    .and_then(adoptable)
                    .or_else(|| adoptable(sandbox))
                {
                    queue.remove(&queue_key(&namespace, pool), &name);
                }
                controlling_claim(sandbox).into_iter().collect()
            }
            Change::Applied(new) => {
                let old = self.last.insert(key, new.clone());
                let old_pool = old.as_deref().and_then(adoptable);
                match adoptable(new) {
                    Some(pool) => {
                        if old_pool != Some(pool) || old.as_deref().map(node) != Some(node(new)) {
                            if let Some(previous) = old_pool.filter(|p| *p != pool) {
                                queue.remove(&queue_key(&namespace, previous), &name);
                            }
                            queue.add(
                                &queue_key(&namespace, pool),
                                Candidate {
                                    name: name.clone(),
                                    node_name: node(new),
                                },
                            );
                        }
                    }
                    None => {
                        if let Some(pool) = old_pool {
                            queue.remove(&queue_key(&namespace, pool), &name);
                        }
                    }
                }
                match (controlling_claim(new), old) {
                    (Some(claim), None) => vec![claim],
                    (Some(claim), Some(old)) if relevant_change(&old, new) => vec![claim],
                    // Just adopted: the claim finalises its status from this state.
                    (Some(claim), Some(old)) if controlling_claim(&old).is_none() => vec![claim],
                    _ => Vec::new(),
                }
            }
        }
    }
}

/// Follows pools: a spec change (generation) wakes the pool's unbound claims; a deleted pool drops
/// its queue.
pub struct PoolWatch {
    generations: HashMap<(String, String), Option<i64>>,
}

impl PoolWatch {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self {
            generations: HashMap::new(),
        }
    }

    /// Applies one pool change; claims are looked up in `claims`.
    pub fn apply(
        &mut self,
        change: &Change<SandboxWarmPool>,
        claims: &Store<SandboxClaim>,
        queue: &SharedQueue,
    ) -> Wake {
        let pool = change.object();
        let namespace = pool.metadata.namespace.clone().unwrap_or_default();
        let name = pool.metadata.name.clone().unwrap_or_default();
        let key = (namespace.clone(), name.clone());
        match change {
            Change::Deleted(_) => {
                self.generations.remove(&key);
                if let Ok(mut queue) = queue.lock() {
                    queue.remove_pool(&queue_key(&namespace, &name));
                }
            }
            Change::Applied(_) => {
                let generation = pool.metadata.generation;
                if self.generations.insert(key, generation) == Some(generation) {
                    return Vec::new();
                }
            }
        }
        claims_of(claims, &namespace, |claim| {
            claim.spec.warm_pool_ref.name == name
                && claim
                    .status
                    .as_ref()
                    .is_none_or(|s| s.sandbox.name.is_empty())
        })
    }
}

impl Default for PoolWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// A template created: wake every claim of the pools using it.
pub fn template_created(
    template: &SandboxTemplate,
    pools: &Store<SandboxWarmPool>,
    claims: &Store<SandboxClaim>,
) -> Wake {
    let namespace = template.metadata.namespace.clone().unwrap_or_default();
    let name = template.metadata.name.clone().unwrap_or_default();
    let using: Vec<String> = pools
        .state()
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && p.spec.sandbox_template_ref.name == name
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    claims_of(claims, &namespace, |claim| {
        using.contains(&claim.spec.warm_pool_ref.name)
    })
}

fn claims_of(
    claims: &Store<SandboxClaim>,
    namespace: &str,
    wanted: impl Fn(&SandboxClaim) -> bool,
) -> Wake {
    claims
        .state()
        .iter()
        .filter(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.deletion_timestamp.is_none()
                && wanted(c)
        })
        .map(|c| ObjectRef::from(c.as_ref()))
        .collect()
}

/// The feeds claims are woken by.
pub struct Feeds {
    /// Sandbox changes.
    pub sandboxes: UnboundedReceiver<Change<Sandbox>>,
    /// Pool changes.
    pub pools: UnboundedReceiver<Change<SandboxWarmPool>>,
    /// Template changes.
    pub templates: UnboundedReceiver<Change<SandboxTemplate>>,
}

/// Follows the feeds on tasks of their own — from the first list on, so the adoption queue is
/// complete by the time claims are decided — and returns the claims to wake, with the tasks.
pub fn spawn(
    feeds: Feeds,
    caches: &Caches,
    claims: &Store<SandboxClaim>,
) -> (
    UnboundedReceiver<ObjectRef<SandboxClaim>>,
    Vec<JoinHandle<()>>,
) {
    let (wake, woken) = mpsc::unbounded::<ObjectRef<SandboxClaim>>();
    let mut sandbox_watch = SandboxWatch::new(caches.queue.clone());
    let sandbox_wake = wake.clone();
    let created_unseen = caches.created_unseen.clone();
    let sandbox_task = tokio::spawn(feeds.sandboxes.for_each(move |change| {
        if let (Change::Deleted(sandbox), Ok(mut created)) = (&change, created_unseen.lock()) {
            created.remove(&format!(
                "{}/{}",
                sandbox.namespace().unwrap_or_default(),
                sandbox.name_any()
            ));
        }
        for key in sandbox_watch.apply(&change) {
            let _ = sandbox_wake.unbounded_send(key);
        }
        future::ready(())
    }));
    let mut pool_watch = PoolWatch::new();
    let (pool_wake, claim_store, queue) = (wake.clone(), claims.clone(), caches.queue.clone());
    let pool_task = tokio::spawn(feeds.pools.for_each(move |change| {
        for key in pool_watch.apply(&change, &claim_store, &queue) {
            let _ = pool_wake.unbounded_send(key);
        }
        future::ready(())
    }));
    let (claim_store, pool_store) = (claims.clone(), caches.pools.clone());
    let mut seen_templates = HashSet::new();
    let template_task = tokio::spawn(feeds.templates.for_each(move |change| {
        if let Change::Applied(template) = &change
            && seen_templates.insert(ObjectRef::from(template.as_ref()))
        {
            for key in template_created(template, &pool_store, &claim_store) {
                let _ = wake.unbounded_send(key);
            }
        }
        if let Change::Deleted(template) = &change {
            seen_templates.remove(&ObjectRef::from(template.as_ref()));
        }
        future::ready(())
    }));
    (woken, vec![sandbox_task, pool_task, template_task])
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use agent_sandbox_api::v1beta1::SandboxStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    fn member(name: &str, owner_kind: &str) -> Sandbox {
        let mut s = Sandbox::new(name, Default::default());
        s.metadata.namespace = Some("ns".into());
        s.metadata.labels = Some(
            [
                (labels::WARM_POOL_SANDBOX.to_owned(), "h".to_owned()),
                (labels::SANDBOX_TEMPLATE_REF_HASH.to_owned(), "t".to_owned()),
            ]
            .into(),
        );
        s.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "extensions.agents.x-k8s.io/v1beta1".into(),
            kind: owner_kind.into(),
            name: "p".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        s
    }

    fn applied(s: Sandbox) -> Change<Sandbox> {
        Change::Applied(Arc::new(s))
    }

    #[test]
    fn adoptable_members_are_queued_per_namespace_and_pool_and_leave_when_adopted_or_deleted() {
        let queue: SharedQueue = Arc::new(Mutex::new(Default::default()));
        let mut watch = SandboxWatch::new(queue.clone());
        let len = || queue.lock().map(|q| q.len("ns/p")).unwrap_or(0);
        assert!(
            watch
                .apply(&applied(member("a", "SandboxWarmPool")))
                .is_empty()
        );
        watch.apply(&applied(member("b", "SandboxWarmPool")));
        assert_eq!(len(), 2);
        // a is adopted by claim c: it leaves the queue and wakes c.
        let mut adopted = member("a", "SandboxClaim");
        adopted.metadata.owner_references.as_mut().expect("refs")[0].name = "c".into();
        assert_eq!(
            watch.apply(&applied(adopted)),
            vec![ObjectRef::new("c").within("ns")]
        );
        assert_eq!(len(), 1);
        watch.apply(&Change::Deleted(Arc::new(member("b", "SandboxWarmPool"))));
        assert_eq!(len(), 0);
    }

    #[test]
    fn unowned_or_deleting_sandboxes_are_not_adoptable() {
        let mut unowned = member("a", "SandboxWarmPool");
        unowned.metadata.owner_references = None;
        assert_eq!(adoptable(&unowned), None);
        let mut deleting = member("a", "SandboxWarmPool");
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(adoptable(&deleting), None);
        assert_eq!(adoptable(&member("a", "Other")), None);
        assert_eq!(adoptable(&member("a", "SandboxWarmPool")), Some("p"));
    }

    #[test]
    fn only_deletion_ip_fqdn_ready_and_finished_changes_are_relevant_to_a_claim() {
        let old = member("a", "SandboxClaim");
        assert!(!relevant_change(&old, &old));
        let mut labelled = old.clone();
        labelled.metadata.labels = None;
        assert!(!relevant_change(&old, &labelled));
        let mut with_ip = old.clone();
        with_ip.status = Some(SandboxStatus {
            pod_ips: vec!["10.0.0.1".into()],
            ..Default::default()
        });
        assert!(relevant_change(&old, &with_ip));
        let mut with_fqdn = with_ip.clone();
        if let Some(s) = with_fqdn.status.as_mut() {
            s.service_fqdn = "a.ns.svc.cluster.local".into();
        }
        assert!(relevant_change(&with_ip, &with_fqdn));
        let ready = |reason: &str| Condition {
            type_: types::READY.into(),
            status: "False".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        let mut a = old.clone();
        a.status = Some(SandboxStatus {
            conditions: vec![ready("DependenciesNotReady")],
            ..Default::default()
        });
        let mut b = a.clone();
        if let Some(s) = b.status.as_mut() {
            s.conditions = vec![ready("SandboxExpired")];
        }
        assert!(relevant_change(&a, &b), "reason-only change passes");
        let mut other = a.clone();
        if let Some(s) = other.status.as_mut() {
            s.conditions.push(Condition {
                type_: "Suspended".into(),
                ..ready("NotSuspended")
            });
        }
        assert!(!relevant_change(&a, &other), "other conditions are ignored");
    }
}
