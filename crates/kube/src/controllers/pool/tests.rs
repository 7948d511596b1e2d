use std::sync::atomic::{AtomicUsize, Ordering};

use agent_sandbox_api::keys::EXTENSIONS_GROUP;
use agent_sandbox_warmpool::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use std::sync::Arc;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxWarmPool};
use kube::runtime::reflector::ObjectRef;

use crate::controllers::pool::state::{State, pool_key, pool_ref};
use crate::controllers::pool::writes::slow_start;
use crate::runtime::feed::Change;

fn sandbox(uid: &str, owner: Option<(&str, &str)>) -> Arc<Sandbox> {
    let mut sandbox = Sandbox::new("sb", Default::default());
    sandbox.metadata = ObjectMeta {
        name: Some(format!("sb-{uid}")),
        namespace: Some("ns".into()),
        uid: Some(uid.into()),
        owner_references: owner.map(|(kind, name)| {
            vec![OwnerReference {
                api_version: format!("{EXTENSIONS_GROUP}/v1beta1"),
                kind: kind.into(),
                name: name.into(),
                uid: format!("{name}-uid"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        }),
        ..ObjectMeta::default()
    };
    Arc::new(sandbox)
}

fn pool(name: &str) -> ObjectRef<SandboxWarmPool> {
    ObjectRef::new(name).within("ns")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_000 + seconds).expect("valid")
}

#[test]
fn a_new_member_lowers_the_creation_expectation_before_its_pool_is_queued() {
    let state = State::default();
    let key = pool_key(&pool("p"));
    if let Ok(mut expectations) = state.expectations.lock() {
        assert!(expectations.try_expect_creations(&key, 2, at(0)));
    }
    let member = sandbox("a", Some(("SandboxWarmPool", "p")));
    assert_eq!(
        state.observe_sandbox(&Change::Applied(member.clone())),
        vec![pool("p")]
    );
    // A later update of the same member is not a second creation.
    assert_eq!(
        state.observe_sandbox(&Change::Applied(member)),
        vec![pool("p")]
    );
    let satisfied = state
        .expectations
        .lock()
        .map(|mut e| e.satisfied(&key, at(1)))
        .ok();
    assert_eq!(satisfied, Some(false), "one creation is still pending");
    state.observe_sandbox(&Change::Applied(sandbox(
        "b",
        Some(("SandboxWarmPool", "p")),
    )));
    let satisfied = state
        .expectations
        .lock()
        .map(|mut e| e.satisfied(&key, at(1)))
        .ok();
    assert_eq!(satisfied, Some(true));
}

#[test]
fn a_deleted_member_is_observed_and_a_claimed_one_wakes_its_old_pool() {
    let state = State::default();
    let key = pool_key(&pool("p"));
    let member = sandbox("a", Some(("SandboxWarmPool", "p")));
    state.observe_sandbox(&Change::Applied(member.clone()));
    if let Ok(mut expectations) = state.expectations.lock() {
        expectations.expect_deletion(&key, "a", at(0));
    }
    assert_eq!(
        state.observe_sandbox(&Change::Deleted(member)),
        vec![pool("p")]
    );
    let pending = state
        .expectations
        .lock()
        .map(|e| e.is_pending_deletion(&key, "a", at(1)))
        .ok();
    assert_eq!(pending, Some(false));

    let member = sandbox("b", Some(("SandboxWarmPool", "p")));
    state.observe_sandbox(&Change::Applied(member));
    let claimed = sandbox("b", Some(("SandboxClaim", "c")));
    assert_eq!(
        state.observe_sandbox(&Change::Applied(claimed)),
        vec![pool("p")],
        "the pool that lost the member looks again"
    );
    assert!(
        state
            .members
            .lock()
            .map(|m| m.is_empty())
            .unwrap_or_default()
    );
    assert!(
        state
            .observe_sandbox(&Change::Applied(sandbox("c", None)))
            .is_empty()
    );
}

#[test]
fn only_extension_pools_control_members() {
    assert_eq!(
        pool_ref(&sandbox("a", Some(("SandboxWarmPool", "p")))),
        Some(pool("p"))
    );
    assert_eq!(pool_ref(&sandbox("a", Some(("SandboxClaim", "p")))), None);
    let mut foreign = sandbox("a", Some(("SandboxWarmPool", "p")))
        .as_ref()
        .clone();
    if let Some(owner) = foreign
        .metadata
        .owner_references
        .as_mut()
        .and_then(|o| o.first_mut())
    {
        owner.api_version = "example.com/v1".into();
    }
    assert_eq!(pool_ref(&foreign), None);
}

#[tokio::test]
async fn slow_start_stops_after_the_first_failing_batch() {
    let calls = AtomicUsize::new(0);
    let results = slow_start(14, |index| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move { if index == 5 { Err(index) } else { Ok(index) } }
    })
    .await;
    assert_eq!(calls.load(Ordering::Relaxed), 7, "batches 1, 2 and 4");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 6);
    let empty: Vec<Result<(), ()>> = slow_start(0, |_| async { Ok(()) }).await;
    assert!(empty.is_empty());
}
