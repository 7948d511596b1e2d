//! Warm adoption: candidate choice, the two locked writes, conflicts, cache lag and exclusivity.

use std::collections::BTreeSet;
use std::time::Duration;

use agent_sandbox_api::keys::{annotations, labels};
use serde_json::json;

use super::*;

fn label(sandbox: &Sandbox, key: &str) -> Option<String> {
    sandbox.metadata.labels.as_ref()?.get(key).cloned()
}

fn controller_uid(sandbox: &Sandbox) -> Option<String> {
    crate::ownership::any_controller(&sandbox.metadata).map(|r| r.uid.clone())
}

fn assigned(claim: &SandboxClaim) -> Option<String> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::SANDBOX_NAME)
        .cloned()
}

#[test]
fn the_oldest_ready_candidate_is_adopted_and_moved_from_the_pool_to_the_claim() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    let sb = w.sandbox("p-a").expect("adopted");
    assert_eq!(controller_uid(&sb).as_deref(), Some("uid-c"));
    assert_eq!(label(&sb, labels::WARM_POOL_SANDBOX), None);
    assert_eq!(label(&sb, labels::LAUNCH_TYPE).as_deref(), Some("warm"));
    assert!(label(&sb, labels::SANDBOX_TEMPLATE_REF_HASH).is_some());
    let pod = &sb.spec.blueprint.pod_template.metadata;
    assert!(!pod.annotations.contains_key(annotations::SAFE_TO_EVICT));
    assert_eq!(
        pod.labels.get(labels::CLAIM_UID).map(String::as_str),
        Some("uid-c")
    );
    assert!(
        !sb.metadata
            .annotations
            .iter()
            .flatten()
            .any(|(k, _)| k == annotations::POD_NAME),
        "the legacy pod-name annotation is not written"
    );
    let c = w.claim("c").expect("claim");
    assert_eq!(assigned(&c).as_deref(), Some("p-a"));
    assert_eq!(bound(&c), "p-a");
    assert_eq!(ready(&c).0, "True", "Ready copied in the same pass");
    assert!(w.sandbox("c").is_none(), "no cold create");
    assert_eq!(w.queued("p"), vec!["p-b".to_owned()]);
    assert_eq!(out.events[0].reason, "SandboxAdopted");
    assert_eq!(out.events[0].note, "Adopted warm pool Sandbox \"p-a\"");
    assert_eq!(
        (out.served[0].launch_type, out.served[0].ready),
        ("warm", true)
    );
    assert_eq!(out.served[0].warmpool_name, "p");
}

#[test]
fn a_ready_candidate_is_preferred_over_an_older_unready_one_which_stays_queued() {
    let w = world();
    member(&w, "p", "p-a");
    w.set_sandbox_status("p-a", Some("False"), true, None);
    member(&w, "p", "p-b");
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-b");
    assert_eq!(w.queued("p"), vec!["p-a".to_owned()]);
}

#[test]
fn the_first_networked_unready_candidate_is_adopted_when_none_is_ready() {
    let w = world();
    member(&w, "p", "p-a");
    w.set_sandbox_status("p-a", Some("False"), true, None);
    member(&w, "p", "p-b");
    w.set_sandbox_status("p-b", Some("False"), true, None);
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
}

#[test]
fn a_young_claim_waits_for_candidates_without_network_and_writes_no_status() {
    let w = world();
    member(&w, "p", "p-a");
    w.set_sandbox_status("p-a", None, false, None);
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(0));
    assert_eq!(out.requeue_after, Some(Duration::from_millis(500)));
    assert!(w.claim("c").expect("claim").status.is_none());
    assert!(w.sandbox("c").is_none());
    assert_eq!(
        w.queued("p"),
        vec!["p-a".to_owned()],
        "kept for the next pass"
    );
    // It gets its IP within the grace: adopted.
    w.set_sandbox_status("p-a", Some("True"), true, None);
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
}

#[test]
fn past_the_network_grace_the_claim_starts_cold() {
    let w = world();
    member(&w, "p", "p-a");
    w.set_sandbox_status("p-a", None, false, None);
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(3));
    assert_eq!(bound(&w.claim("c").expect("claim")), "c");
}

#[test]
fn env_bypasses_an_available_warm_candidate() {
    let w = World::default();
    w.add_template(template(json!({"envVarsInjectionPolicy": "Allowed"})));
    w.add_pool(pool("p", json!({})));
    member(&w, "p", "p-a");
    w.add_claim(claim(
        "c",
        "p",
        json!({"env": [{"name": "A", "value": "1"}]}),
    ));
    w.reconcile("c", at(1));
    let sb = w.sandbox("c").expect("cold");
    assert_eq!(label(&sb, labels::LAUNCH_TYPE).as_deref(), Some("cold"));
    let env = sb.spec.blueprint.pod_template.spec.containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert_eq!(env[0].name, "A");
    assert_eq!(w.queued("p"), vec!["p-a".to_owned()]);
}

#[test]
fn candidates_of_another_pool_are_never_adopted() {
    let w = world();
    w.add_pool(pool("other", json!({})));
    member(&w, "other", "other-a");
    // Even if it shows up in this pool's queue.
    w.enqueue("p", "other-a");
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "c");
    assert_eq!(
        controller_uid(&w.sandbox("other-a").expect("kept")).as_deref(),
        Some("uid-pool-other")
    );
}

#[test]
fn a_recreate_pool_skips_outdated_candidates_and_adopts_current_ones() {
    let w = World::default();
    w.add_template(template(json!({})));
    w.add_pool(pool("p", json!({"updateStrategy": {"type": "Recreate"}})));
    member(&w, "p", "p-old");
    {
        let mut server = w.server.lock().expect("lock");
        let s = server.sandboxes.get_mut("p-old").expect("member");
        s.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(labels::SANDBOX_TEMPLATE_HASH.into(), "stale".into());
    }
    member(&w, "p", "p-new");
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-new");
    assert!(
        w.queued("p").is_empty(),
        "the outdated one is dropped: the pool deletes it"
    );
}

#[test]
fn an_on_replenish_pool_adopts_outdated_candidates() {
    let w = world();
    member(&w, "p", "p-old");
    {
        let mut server = w.server.lock().expect("lock");
        let s = server.sandboxes.get_mut("p-old").expect("member");
        s.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(labels::SANDBOX_TEMPLATE_HASH.into(), "stale".into());
    }
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-old");
}

#[test]
fn a_conflict_on_the_claim_annotation_write_is_retried_in_the_same_pass() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    // The first-observed stamp is written first; conflict the locked adoption write.
    let quiet = Settings {
        observability_annotations: false,
        ..settings()
    };
    w.inject(Write::Claim, 1);
    let out = w.reconcile_with("c", at(1), &quiet);
    assert_eq!(out.error, None);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
}

#[test]
fn a_conflict_on_the_sandbox_write_is_resolved_on_the_same_candidate() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    w.add_claim(claim("c", "p", json!({})));
    w.inject(Write::Sandbox, 1);
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
    assert_eq!(
        controller_uid(&w.sandbox("p-a").expect("adopted")).as_deref(),
        Some("uid-c")
    );
    assert_eq!(
        w.queued("p"),
        vec!["p-b".to_owned()],
        "never switched candidates"
    );
}

#[test]
fn both_guarded_writes_conflicting_are_resolved_in_one_pass() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    let quiet = Settings {
        observability_annotations: false,
        ..settings()
    };
    w.inject(Write::Claim, 1);
    w.inject(Write::Sandbox, 1);
    let out = w.reconcile_with("c", at(1), &quiet);
    assert_eq!(out.error, None);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
}

#[test]
fn endless_contention_keeps_the_reference_and_reports_a_trimmed_adoption_conflict() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    w.inject(Write::Sandbox, 100);
    let out = w.reconcile("c", at(1));
    assert!(out.error.is_some());
    let c = w.claim("c").expect("claim");
    assert_eq!(assigned(&c).as_deref(), Some("p-a"), "reference kept");
    let (_, reason, message) = ready(&c);
    assert_eq!(reason, "AdoptionConflict");
    assert!(
        message.contains("(conflicting concurrent write)"),
        "{message}"
    );
    assert!(!message.contains("has been modified"));
    // Contention over: the next pass completes the same adoption.
    w.inject(Write::Sandbox, 0);
    let out = w.reconcile("c", at(2));
    assert_eq!(out.error, None);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
}

#[test]
fn a_candidate_lost_to_another_claim_drops_the_reference_and_the_next_pass_adopts_the_spare() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    w.add_claim(claim("x", "p", json!({})));
    w.add_claim(claim("c", "p", json!({})));
    // Both claims read the same stale cache in which p-a is still a free pool member...
    w.freeze();
    w.reconcile("x", at(1));
    // ...and p-a is queued again (a relist), so `c` picks it too.
    w.queue.lock().expect("lock").insert(
        "p".into(),
        [Candidate {
            name: "p-a".into(),
            node_name: String::new(),
        }]
        .into(),
    );
    let out = w.reconcile("c", at(1));
    assert!(out.error.is_some());
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).1, "AdoptionConflict");
    assert_eq!(assigned(&c), None, "reference cleaned");
    assert_eq!(
        controller_uid(&w.sandbox("p-a").expect("x's")).as_deref(),
        Some("uid-x")
    );
    w.thaw();
    w.enqueue("p", "p-b");
    w.reconcile("c", at(2));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-b");
}

#[test]
fn two_warm_sandboxes_and_three_claims_give_two_adoptions_and_one_cold_create() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    for name in ["c1", "c2", "c3"] {
        w.add_claim(claim(name, "p", json!({})));
    }
    // Every claim decides on the same stale cache, and a relist re-queues everything.
    w.freeze();
    for name in ["c1", "c2", "c3"] {
        w.queue.lock().expect("lock").insert(
            "p".into(),
            ["p-a", "p-b"]
                .iter()
                .map(|n| Candidate {
                    name: (*n).into(),
                    node_name: String::new(),
                })
                .collect(),
        );
        w.reconcile(name, at(1));
    }
    // Converge: passes on a fresh cache until nothing changes.
    w.thaw();
    for _ in 0..3 {
        for name in ["c1", "c2", "c3"] {
            w.reconcile(name, at(5));
        }
    }
    let mut owners = BTreeSet::new();
    let mut cold = 0;
    let mut warm = 0;
    for name in ["c1", "c2", "c3"] {
        let c = w.claim(name).expect("claim");
        let sandbox = bound(&c);
        assert!(!sandbox.is_empty(), "{name} bound");
        let sb = w.sandbox(&sandbox).expect("exists");
        assert_eq!(
            controller_uid(&sb),
            c.metadata.uid.clone(),
            "{name} owns {sandbox}"
        );
        assert!(owners.insert(sandbox.clone()), "{sandbox} bound twice");
        match label(&sb, labels::LAUNCH_TYPE).as_deref() {
            Some("warm") => warm += 1,
            _ => cold += 1,
        }
    }
    assert_eq!((warm, cold), (2, 1));
    assert_eq!(w.sandboxes().len(), 3, "no orphan Sandbox");
}

#[test]
fn stale_passes_after_an_adoption_neither_adopt_the_spare_nor_wipe_the_status() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    w.add_claim(claim("c", "p", json!({})));
    w.freeze();
    w.reconcile("c", at(1));
    // The cache still shows the claim without annotation or status, and p-a as a pool member.
    for _ in 0..3 {
        let out = w.reconcile("c", at(1));
        assert_eq!(out.error, None);
    }
    w.thaw();
    w.reconcile("c", at(2));
    let c = w.claim("c").expect("claim");
    assert_eq!(bound(&c), "p-a");
    assert_eq!(
        controller_uid(&w.sandbox("p-b").expect("spare")).as_deref(),
        Some("uid-pool-p")
    );
    assert_eq!(
        label(&w.sandbox("p-a").expect("adopted"), labels::LAUNCH_TYPE).as_deref(),
        Some("warm")
    );
}

#[test]
fn a_claim_bound_in_status_never_adopts_another_sandbox() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    member(&w, "p", "p-b");
    w.reconcile("c", at(2));
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
    assert_eq!(w.queued("p"), vec!["p-b".to_owned()]);
}

#[test]
fn a_legacy_label_reference_is_completed_and_migrated_to_the_annotation() {
    let w = world();
    member(&w, "p", "p-a");
    let mut c = claim("c", "p", json!({}));
    c["metadata"]["labels"] = json!({labels::SANDBOX_NAME: "p-a"});
    w.add_claim(c);
    w.queue.lock().expect("lock").clear();
    w.reconcile("c", at(1));
    let c = w.claim("c").expect("claim");
    assert_eq!(bound(&c), "p-a");
    assert_eq!(assigned(&c).as_deref(), Some("p-a"));
    assert!(
        c.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key(labels::SANDBOX_NAME))
    );
}

#[test]
fn a_reference_to_a_sandbox_owned_by_another_claim_is_removed() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("x", "p", json!({})));
    w.reconcile("x", at(1));
    let mut c = claim("c", "p", json!({}));
    c["metadata"]["annotations"] = json!({annotations::SANDBOX_NAME: "p-a"});
    w.add_claim(c);
    w.reconcile("c", at(1));
    let c = w.claim("c").expect("claim");
    assert_eq!(assigned(&c), None);
    assert_eq!(bound(&c), "c", "cold start instead");
    assert_eq!(
        controller_uid(&w.sandbox("p-a").expect("x's")).as_deref(),
        Some("uid-x")
    );
}

#[test]
fn an_assigned_sandbox_deleted_before_completion_is_forgotten() {
    let w = world();
    let mut c = claim("c", "p", json!({}));
    c["metadata"]["annotations"] = json!({annotations::SANDBOX_NAME: "gone"});
    w.add_claim(c);
    w.reconcile("c", at(1));
    let c = w.claim("c").expect("claim");
    assert_eq!(assigned(&c), None);
    assert_eq!(bound(&c), "c");
}

#[test]
fn the_claims_created_by_replaces_the_pools_on_adoption() {
    let w = world();
    member(&w, "p", "p-a");
    let mut c = claim("c", "p", json!({}));
    c["metadata"]["labels"] = json!({labels::CREATED_BY: "python-client"});
    w.add_claim(c);
    let out = w.reconcile("c", at(1));
    let sb = w.sandbox("p-a").expect("adopted");
    assert_eq!(
        label(&sb, labels::CREATED_BY).as_deref(),
        Some("python-client")
    );
    assert_eq!(out.served[0].created_by, "python-client");
}

#[test]
fn a_stale_pass_with_an_empty_queue_never_creates_a_second_cold_sandbox() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    // No first-observed patch, so the pass keeps deciding on the stale cached claim.
    let quiet = Settings {
        observability_annotations: false,
        ..settings()
    };
    w.freeze();
    w.reconcile_with("c", at(1), &quiet);
    // The cache still shows the claim unbound; the queue is empty now.
    assert!(w.queued("p").is_empty());
    let out = w.reconcile_with("c", at(1), &quiet);
    assert_eq!(out.error, None);
    assert!(
        out.requeue_after.is_some(),
        "looks again once the cache catches up"
    );
    assert!(
        w.sandbox("c").is_none(),
        "no cold Sandbox next to the adopted one"
    );
    w.thaw();
    w.reconcile_with("c", at(2), &quiet);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
    assert_eq!(w.sandboxes().len(), 1);
}

#[test]
fn a_cold_sandbox_the_cache_has_not_shown_yet_is_found_instead_of_adopting_a_warm_one() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    let quiet = Settings {
        observability_annotations: false,
        ..settings()
    };
    w.freeze();
    // First pass: the queue is empty, so the claim starts cold...
    w.reconcile_with("c", at(1), &quiet);
    assert!(w.sandbox("c").is_some());
    // ...and its status write is lost; then warm members appear while the cache still lags.
    {
        let mut server = w.server.lock().expect("lock");
        if let Some(c) = server.claims.get_mut("c") {
            c.status = None;
        }
    }
    member(&w, "p", "p-a");
    let mut lagging = w.frozen.lock().expect("lock").clone().expect("frozen");
    lagging
        .sandboxes
        .insert("p-a".into(), w.sandbox("p-a").expect("member"));
    *w.frozen.lock().expect("lock") = Some(lagging);
    w.reconcile_with("c", at(2), &quiet);
    assert_eq!(
        controller_uid(&w.sandbox("p-a").expect("member")).as_deref(),
        Some("uid-pool-p"),
        "the warm member is not adopted"
    );
    w.thaw();
    w.reconcile_with("c", at(3), &quiet);
    assert_eq!(bound(&w.claim("c").expect("claim")), "c");
    assert_eq!(
        w.sandboxes().len(),
        2,
        "the cold Sandbox and the untouched member"
    );
}

fn claim_writes(w: &World) -> usize {
    w.writes().iter().filter(|e| *e == "patch claim/c").count()
}

#[test]
fn a_warm_adoption_persists_the_first_observed_time_with_the_assignment_write() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    let c = w.claim("c").expect("claim");
    assert_eq!(bound(&c), "p-a");
    assert_eq!(
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::CONTROLLER_FIRST_OBSERVED_AT).cloned()),
        Some(at(0).to_string())
    );
    let writes = w.writes();
    let status = writes
        .iter()
        .position(|e| e == "status claim/c")
        .expect("status written");
    assert_eq!(
        writes[..status]
            .iter()
            .filter(|e| *e == "patch claim/c")
            .count(),
        1,
        "one claim metadata write before the status: {writes:?}"
    );
}

#[test]
fn the_first_observed_time_survives_a_conflict_on_the_assignment_write() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    w.inject(Write::Claim, 1);
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    let c = w.claim("c").expect("claim");
    assert_eq!(bound(&c), "p-a");
    assert!(
        c.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotations::CONTROLLER_FIRST_OBSERVED_AT))
    );
}

#[test]
fn a_pass_with_no_candidate_yet_still_persists_the_first_observed_time() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    // A member without network keeps a young claim waiting: no status write.
    member(&w, "p", "p-a");
    w.set_sandbox_status("p-a", Some("False"), false, None);
    let out = w.reconcile("c", at(0));
    assert!(out.requeue_after.is_some());
    assert_eq!(claim_writes(&w), 1);
    assert!(!w.writes().iter().any(|e| e == "status claim/c"));
}

#[test]
fn a_stale_pass_that_finds_the_claim_already_assigned_looks_again_without_error() {
    let w = world();
    member(&w, "p", "p-a");
    member(&w, "p", "p-b");
    w.add_claim(claim("c", "p", json!({})));
    w.freeze();
    w.reconcile("c", at(1));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(out.requeue_after, Some(Duration::from_millis(200)));
    assert_eq!(
        w.queued("p"),
        vec!["p-b".to_string()],
        "the spare goes back"
    );
}

#[test]
fn a_warm_claim_reads_nothing_from_the_api_server_when_it_created_no_sandbox() {
    let w = world();
    member(&w, "p", "p-a");
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(bound(&w.claim("c").expect("claim")), "p-a");
    assert!(w.sandbox_reads.lock().expect("lock").is_empty());
}

#[test]
fn a_cold_create_the_cache_has_not_shown_is_confirmed_with_the_api_server() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.freeze();
    w.reconcile("c", at(1));
    assert!(w.sandbox("c").is_some(), "created cold");
    // A member arrives; the cache shows neither it nor the cold Sandbox nor the claim's status.
    member(&w, "p", "p-a");
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(
        *w.sandbox_reads.lock().expect("lock"),
        vec!["c".to_string()]
    );
    assert_eq!(
        controller_uid(&w.sandbox("p-a").expect("member")).as_deref(),
        Some("uid-pool-p"),
        "the member stays in the pool"
    );
}
