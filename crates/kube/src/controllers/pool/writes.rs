//! The writes of a warm-pool pass: member updates guarded by resourceVersion, member deletes with UID
//! and resourceVersion preconditions, member creates, deletes and creates in slow-start batches, and
//! the status merge patch. Expectations the plan raised are lowered here for every write that will
//! never be observed.

use std::future::Future;
use std::sync::Arc;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool, SandboxWarmPoolStatus};
use agent_sandbox_warmpool::member::slow_start_batches;
use agent_sandbox_warmpool::pool::Action;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use crate::controllers::pool::state::{State, pool_key};
use crate::metrics::Metrics;
use crate::runtime::error::Error;
use crate::runtime::writes::{Guard, Writer};

/// Calls `call(i)` for `i` in `0..count` in batches of 1, 2, 4, … (each batch concurrently) and stops
/// after the first batch with a failure. Returns the results of the calls made, in order.
pub async fn slow_start<R, E, Fut>(count: usize, call: impl Fn(usize) -> Fut) -> Vec<Result<R, E>>
where
    Fut: Future<Output = Result<R, E>>,
{
    let mut results = Vec::with_capacity(count);
    for batch in slow_start_batches(count) {
        let start = results.len();
        let batch = futures::future::join_all((start..start + batch).map(&call)).await;
        let failed = batch.iter().any(Result::is_err);
        results.extend(batch);
        if failed {
            break;
        }
    }
    results
}

/// What the writes of a pool pass use.
pub struct PoolWrites {
    /// Writes as the controllers' field manager.
    pub writer: Writer,
    /// Action counters.
    pub metrics: Arc<Metrics>,
    /// Expectations and memory, lowered for writes that will never be observed.
    pub state: Arc<State>,
}

/// A member to delete: name, UID and (when the plan requires it unchanged) resourceVersion.
type Deletion = (String, String, Option<String>);

impl PoolWrites {
    /// Executes the plan's writes; returns the errors.
    pub async fn execute(&self, pool: &SandboxWarmPool, actions: Vec<Action>) -> Vec<Error> {
        let namespace = pool.namespace().unwrap_or_default();
        let mut errors = Vec::new();
        let mut deletes = Vec::new();
        let mut creates = Vec::new();
        for action in actions {
            match action {
                Action::Update(sandbox) => {
                    let name = sandbox.name_any();
                    let result = self.writer.replace(&namespace, sandbox.as_ref()).await;
                    self.metrics.action("pool_update_sandbox", result.is_ok());
                    if let Err(error) = result {
                        errors.push(Error::api(format!("updating Sandbox {name}"), error));
                    }
                }
                Action::Delete {
                    name,
                    uid,
                    resource_version,
                } => deletes.push((name, uid, resource_version)),
                Action::Create { sandbox, count } => creates.push((sandbox, count)),
            }
        }
        errors.extend(self.delete_members(pool, &namespace, &deletes).await);
        for (sandbox, count) in creates {
            errors.extend(self.create_members(pool, &namespace, &sandbox, count).await);
        }
        errors
    }

    async fn delete_members(
        &self,
        pool: &SandboxWarmPool,
        namespace: &str,
        deletes: &[Deletion],
    ) -> Option<Error> {
        let results = slow_start(deletes.len(), |index| async move {
            let (name, uid, resource_version) = &deletes[index];
            let guard = Guard {
                uid: Some(uid.clone()),
                resource_version: resource_version.clone(),
            };
            self.writer
                .delete::<Sandbox>(namespace, name, guard, false)
                .await
        })
        .await;
        let key = pool_key(&ObjectRef::from(pool));
        let Ok(mut expectations) = self.state.expectations.lock() else {
            return Some(Error::blocked("warm pool state lock poisoned".into()));
        };
        let mut error = None;
        let mut results = results.into_iter();
        for (name, uid, _) in deletes {
            let result = results.next();
            if let Some(result) = &result {
                self.metrics.action("pool_delete_sandbox", result.is_ok());
            }
            match result {
                // Issued: the watch will show the deletion.
                Some(Ok(true)) => {}
                // Already gone, or never issued (an earlier batch failed): nothing to wait for.
                Some(Ok(false)) | None => expectations.deletion_observed(&key, uid),
                Some(Err(failure)) => {
                    expectations.deletion_observed(&key, uid);
                    error.get_or_insert_with(|| {
                        Error::api(format!("deleting Sandbox {name}"), failure)
                    });
                }
            }
        }
        error
    }

    async fn create_members(
        &self,
        pool: &SandboxWarmPool,
        namespace: &str,
        sandbox: &Sandbox,
        count: u32,
    ) -> Option<Error> {
        let results = slow_start(usize::try_from(count).unwrap_or_default(), |_| {
            self.writer.create(namespace, sandbox)
        })
        .await;
        let mut created = 0u32;
        let mut error = None;
        for result in results {
            self.metrics.action("pool_create_sandbox", result.is_ok());
            match result {
                Ok(_) => created += 1,
                Err(failure) => {
                    error.get_or_insert_with(|| Error::api("creating a Sandbox", failure));
                }
            }
        }
        let reference = ObjectRef::from(pool);
        if let Ok(mut expectations) = self.state.expectations.lock() {
            expectations.lower_creations(&pool_key(&reference), count - created);
        }
        if let Ok(mut memory) = self.state.memory.lock()
            && let Some(memory) = memory.get_mut(&reference)
        {
            memory.replenish.note_creates(created);
        }
        error
    }

    /// Merge-patches the pool's status when it differs from `status` (no optimistic lock: the
    /// controller is its only writer). A pool that is gone needs no status.
    pub async fn write_status(
        &self,
        pool: &SandboxWarmPool,
        status: &SandboxWarmPoolStatus,
    ) -> Result<(), Error> {
        if pool.status.as_ref() == Some(status) {
            return Ok(());
        }
        let result = self
            .writer
            .patch_status::<SandboxWarmPool>(
                &pool.namespace().unwrap_or_default(),
                &pool.name_any(),
                &json!({ "status": status }),
            )
            .await;
        self.metrics.action("pool_patch_status", result.is_ok());
        result
            .map(drop)
            .map_err(|error| Error::api("writing the status", error))
    }
}
