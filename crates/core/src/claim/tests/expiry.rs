//! The claim lifecycle: shutdownTime, TTL after Finished, and the three shutdown policies, always in
//! two passes.

use std::time::Duration;

use serde_json::json;

use super::*;

fn expiring(policy: &str) -> Value {
    claim(
        "c",
        "p",
        json!({"lifecycle": {"shutdownTime": at(10).to_string(), "shutdownPolicy": policy}}),
    )
}

#[test]
fn before_shutdown_time_the_claim_looks_again_exactly_at_the_deadline() {
    let w = world();
    w.add_claim(expiring("Retain"));
    let out = w.reconcile("c", at(4));
    assert_eq!(out.requeue_after, Some(Duration::from_secs(6)));
}

#[test]
fn retain_first_persists_claim_expired_then_deletes_the_sandbox_and_keeps_the_claim() {
    let w = world();
    w.add_claim(expiring("Retain"));
    w.reconcile("c", at(1));
    let out = w.reconcile("c", at(11));
    assert_eq!(out.requeue_after, Some(Duration::from_millis(1)));
    assert_eq!(out.events[0].reason, "ClaimExpired");
    assert_eq!(out.events[0].action, "Claim Expired");
    assert!(
        w.sandbox("c").is_some(),
        "nothing deleted in the first pass"
    );
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).1, "ClaimExpired");
    assert_eq!(ready(&c).2, "Claim expired. Sandbox cleanup initiated.");
    let out = w.reconcile("c", at(11));
    assert_eq!(out.error, None);
    assert!(w.sandbox("c").is_none(), "second pass deletes the Sandbox");
    assert!(w.claim("c").is_some(), "claim kept");
    assert_eq!(ready(&w.claim("c").expect("claim")).1, "ClaimExpired");
}

#[test]
fn delete_removes_the_claim_only_on_the_second_pass() {
    let w = world();
    w.add_claim(expiring("Delete"));
    w.reconcile("c", at(11));
    assert!(w.claim("c").is_some());
    let out = w.reconcile("c", at(11));
    assert!(w.claim("c").is_none());
    assert_eq!(out.events[0].action, "Deleting");
    assert_eq!(out.events[0].note, "Deleting Claim (ShutdownPolicy=Delete)");
    assert!(w.foreground_deletes.lock().expect("lock").is_empty());
}

#[test]
fn delete_foreground_deletes_the_claim_with_foreground_propagation() {
    let w = world();
    w.add_claim(expiring("DeleteForeground"));
    w.reconcile("c", at(11));
    w.reconcile("c", at(11));
    assert!(w.claim("c").is_none());
    assert_eq!(
        *w.foreground_deletes.lock().expect("lock"),
        vec!["c".to_owned()]
    );
}

#[test]
fn retain_with_a_foreign_sandbox_at_the_bound_name_deletes_nothing_and_clears_the_binding() {
    let w = world();
    w.add_claim(expiring("Retain"));
    w.reconcile("c", at(1));
    // Someone replaced the Sandbox with one the claim does not control.
    w.server.lock().expect("lock").sandboxes.clear();
    w.add_sandbox(typed(
        json!({"metadata": {"name": "c"}, "spec": {"podTemplate": {"spec": {"containers": []}}}}),
    ));
    w.reconcile("c", at(11));
    let out = w.reconcile("c", at(11));
    assert_eq!(out.error, None);
    assert!(w.sandbox("c").is_some());
    let c = w.claim("c").expect("claim");
    assert_eq!(bound(&c), "");
    assert!(ready(&c).2.ends_with("; deletion skipped."));
}

#[test]
fn the_ttl_starts_at_the_mirrored_finished_condition_and_expires_in_two_passes() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"lifecycle": {"ttlSecondsAfterFinished": 5}}),
    ));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("False"), true, Some(3));
    let out = w.reconcile("c", at(4));
    assert_eq!(
        out.requeue_after,
        Some(Duration::from_secs(4)),
        "finished at 3 + 5 s"
    );
    let c = w.claim("c").expect("claim");
    assert!(
        c.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Finished"))
    );
    w.reconcile("c", at(8));
    assert_eq!(ready(&w.claim("c").expect("claim")).1, "ClaimExpired");
    assert!(w.sandbox("c").is_some());
    w.reconcile("c", at(8));
    assert!(
        w.sandbox("c").is_none(),
        "Retain (the default) deletes the Sandbox"
    );
}

#[test]
fn ttl_zero_expires_in_the_pass_that_mirrors_finished() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"lifecycle": {"ttlSecondsAfterFinished": 0}}),
    ));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("False"), true, Some(3));
    let out = w.reconcile("c", at(3));
    assert_eq!(out.requeue_after, Some(Duration::from_millis(1)));
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).1, "ClaimExpired");
    assert!(
        c.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Finished"))
    );
}

#[test]
fn the_earlier_of_shutdown_time_and_ttl_wins() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"lifecycle": {"ttlSecondsAfterFinished": 100,
        "shutdownTime": at(20).to_string()}}),
    ));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("False"), true, Some(3));
    assert_eq!(
        w.reconcile("c", at(4)).requeue_after,
        Some(Duration::from_secs(16))
    );
}
