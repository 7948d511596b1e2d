//! What the warm-pool controller remembers between passes (in memory, dropped with the pool): the
//! expectations of each pool, its plan's memory, and which pool controlled each member.

use std::collections::HashMap;
use std::sync::Mutex;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool};
use agent_sandbox_core::ownership::controlling_pool;
use agent_sandbox_warmpool::expectations::Expectations;
use agent_sandbox_warmpool::pool::Memory;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::runtime::feed::Change;

/// What the controller remembers per pool between passes (in memory, dropped with the pool).
#[derive(Default)]
pub struct State {
    /// Creations and deletions issued and not yet seen, per pool.
    pub expectations: Mutex<Expectations>,
    /// What each pool's plan remembers between passes.
    pub memory: Mutex<HashMap<ObjectRef<SandboxWarmPool>, Memory>>,
    /// The pool that controlled each pool-controlled Sandbox when it was last seen, by UID.
    pub members: Mutex<HashMap<String, ObjectRef<SandboxWarmPool>>>,
}

/// The expectations key of a pool: `namespace/name`.
pub fn pool_key(pool: &ObjectRef<SandboxWarmPool>) -> String {
    format!(
        "{}/{}",
        pool.namespace.as_deref().unwrap_or_default(),
        pool.name
    )
}

/// The pool controlling `sandbox` (a SandboxWarmPool of the extensions group, any version), as a
/// reference to queue.
pub fn pool_ref(sandbox: &Sandbox) -> Option<ObjectRef<SandboxWarmPool>> {
    controlling_pool(sandbox)
        .map(|name| ObjectRef::new(name).within(&sandbox.namespace().unwrap_or_default()))
}

impl State {
    /// Records what a Sandbox change means for the expectations (a new member was seen, a member is
    /// gone) and returns the pools to look at again. Runs before those pools are queued, so a pass
    /// triggered by our own write already sees the lowered expectation.
    pub fn observe_sandbox(&self, change: &Change<Sandbox>) -> Vec<ObjectRef<SandboxWarmPool>> {
        let sandbox = change.object();
        let uid = sandbox.uid().unwrap_or_default();
        let owner = pool_ref(sandbox);
        let (Ok(mut members), Ok(mut expectations)) =
            (self.members.lock(), self.expectations.lock())
        else {
            return owner.into_iter().collect();
        };
        let mut pools = Vec::new();
        match change {
            Change::Applied(_) => {
                let previous = match &owner {
                    Some(pool) => members.insert(uid, pool.clone()),
                    None => members.remove(&uid),
                };
                match previous {
                    None => {
                        if let Some(pool) = &owner {
                            expectations.creation_observed(&pool_key(pool));
                        }
                    }
                    Some(previous) if Some(&previous) != owner.as_ref() => pools.push(previous),
                    Some(_) => {}
                }
            }
            Change::Deleted(_) => {
                if let Some(previous) = members.remove(&uid)
                    && Some(&previous) != owner.as_ref()
                {
                    expectations.deletion_observed(&pool_key(&previous), &uid);
                    pools.push(previous);
                }
                if let Some(pool) = &owner {
                    expectations.deletion_observed(&pool_key(pool), &uid);
                }
            }
        }
        pools.extend(owner);
        pools
    }

    /// Drops everything remembered about a deleted pool.
    pub fn forget(&self, pool: &ObjectRef<SandboxWarmPool>) {
        if let Ok(mut expectations) = self.expectations.lock() {
            expectations.forget(&pool_key(pool));
        }
        if let Ok(mut memory) = self.memory.lock() {
            memory.remove(pool);
        }
    }
}
