//! The writes of a warm-pool pass: member updates guarded by resourceVersion, member deletes with UID
//! and resourceVersion preconditions, member creates, deletes and creates in slow-start batches, and the status merge
//! patch. Expectations the plan raised are lowered here for every write that will never be observed.

use std::future::Future;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool, SandboxWarmPoolStatus};
use agent_sandbox_core::ownership::FIELD_MANAGER;
use agent_sandbox_warmpool::member::slow_start_batches;
use agent_sandbox_warmpool::pool::Action;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Context, pool_key};
use crate::executor::{failure_message, is_not_found};

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

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

/// Executes the plan's writes and returns the errors, one message each.
pub(super) async fn execute(
    context: &Context,
    pool: &SandboxWarmPool,
    actions: Vec<Action>,
) -> Vec<String> {
    let api: Api<Sandbox> = Api::namespaced(
        context.client.clone(),
        &pool.namespace().unwrap_or_default(),
    );
    let mut errors = Vec::new();
    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    for action in actions {
        match action {
            Action::Update(sandbox) => {
                let name = sandbox.name_any();
                let result = api.replace(&name, &post_params(), &sandbox).await;
                context
                    .metrics
                    .action("pool_update_sandbox", result.is_ok());
                if let Err(error) = result {
                    errors.push(format!(
                        "updating Sandbox {name}: {}",
                        failure_message(&error)
                    ));
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
    errors.extend(delete_members(context, pool, &api, &deletes).await);
    for (sandbox, count) in creates {
        errors.extend(create_members(context, pool, &api, &sandbox, count).await);
    }
    errors
}

async fn delete_members(
    context: &Context,
    pool: &SandboxWarmPool,
    api: &Api<Sandbox>,
    deletes: &[(String, String, Option<String>)],
) -> Option<String> {
    let results = slow_start(deletes.len(), |index| async move {
        let (name, uid, resource_version) = &deletes[index];
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error),
        }
    })
    .await;
    let key = pool_key(&ObjectRef::from(pool));
    let mut error = None;
    let Ok(mut expectations) = context.state.expectations.lock() else {
        return Some("warm pool state lock poisoned".into());
    };
    for (index, (name, uid, _)) in deletes.iter().enumerate() {
        let result = results.get(index);
        if let Some(result) = result {
            context
                .metrics
                .action("pool_delete_sandbox", result.is_ok());
        }
        match result {
            // Issued: the watch will show the deletion.
            Some(Ok(true)) => {}
            // Already gone, failed, or never issued (an earlier batch failed): nothing to wait for.
            Some(Ok(false)) | None => expectations.deletion_observed(&key, uid),
            Some(Err(failure)) => {
                expectations.deletion_observed(&key, uid);
                error.get_or_insert_with(|| {
                    format!("deleting Sandbox {name}: {}", failure_message(failure))
                });
            }
        }
    }
    error
}

async fn create_members(
    context: &Context,
    pool: &SandboxWarmPool,
    api: &Api<Sandbox>,
    sandbox: &Sandbox,
    count: u32,
) -> Option<String> {
    let params = post_params();
    let results = slow_start(usize::try_from(count).unwrap_or_default(), |_| {
        api.create(&params, sandbox)
    })
    .await;
    let mut created = 0u32;
    let mut error = None;
    for result in &results {
        context
            .metrics
            .action("pool_create_sandbox", result.is_ok());
        match result {
            Ok(_) => created += 1,
            Err(failure) => {
                error.get_or_insert_with(|| {
                    format!("creating a Sandbox: {}", failure_message(failure))
                });
            }
        }
    }
    let reference = ObjectRef::from(pool);
    if let Ok(mut expectations) = context.state.expectations.lock() {
        expectations.lower_creations(&pool_key(&reference), count - created);
    }
    if let Ok(mut memory) = context.state.memory.lock()
        && let Some(memory) = memory.get_mut(&reference)
    {
        memory.replenish.note_creates(created);
    }
    error
}

/// Merge-patches the pool's status when it differs from `status` (no optimistic lock: the controller
/// is its only writer). A pool that is gone needs no status.
pub(super) async fn write_status(
    context: &Context,
    pool: &SandboxWarmPool,
    status: &SandboxWarmPoolStatus,
) -> Result<(), String> {
    if pool.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<SandboxWarmPool> = Api::namespaced(
        context.client.clone(),
        &pool.namespace().unwrap_or_default(),
    );
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let result = api
        .patch_status(
            &pool.name_any(),
            &params,
            &Patch::Merge(json!({ "status": status })),
        )
        .await;
    context.metrics.action("pool_patch_status", result.is_ok());
    match result {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(format!("writing the status: {}", failure_message(&error))),
    }
}
