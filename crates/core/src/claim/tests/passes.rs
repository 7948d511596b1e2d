//! Cold starts, status mirroring, error classification and first-Ready bookkeeping.

use std::time::Duration;

use agent_sandbox_api::keys::{annotations, labels};
use serde_json::json;

use super::*;

fn annotation(claim: &SandboxClaim, key: &str) -> Option<String> {
    claim.metadata.annotations.as_ref()?.get(key).cloned()
}

#[test]
fn a_claim_on_an_empty_pool_creates_a_secure_cold_sandbox_and_reports_sandbox_not_ready() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    let sb = w.sandbox("c").expect("cold sandbox named like the claim");
    let spec = &sb.spec.blueprint.pod_template.spec;
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    let l = sb.metadata.labels.clone().unwrap_or_default();
    assert_eq!(l.get(labels::LAUNCH_TYPE).map(String::as_str), Some("cold"));
    let c = w.claim("c").expect("claim");
    assert_eq!(
        ready(&c),
        (
            "False".into(),
            "SandboxNotReady".into(),
            "Sandbox is not ready".into()
        )
    );
    assert_eq!(bound(&c), "c");
    assert_eq!(out.events[0].reason, "SandboxProvisioned");
    assert_eq!(out.events[0].note, "Created Sandbox \"c\"");
    assert_eq!(out.served[0].launch_type, "cold");
    assert_eq!(out.served[0].warmpool_name, "p");
    assert!(annotation(&c, annotations::CONTROLLER_FIRST_OBSERVED_AT).is_some());
}

#[test]
fn a_missing_template_reports_template_not_found_and_looks_again_within_a_minute() {
    let w = World::default();
    w.add_pool(pool("p", json!({})));
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(out.requeue_after, Some(Duration::from_secs(60)));
    assert!(w.sandboxes().is_empty());
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).1, "TemplateNotFound");
    assert_eq!(ready(&c).2, "SandboxTemplate \"tpl\" not found");
    w.add_template(template(json!({})));
    w.reconcile("c", at(2));
    assert!(
        w.sandbox("c").is_some(),
        "recovers once the template exists"
    );
}

#[test]
fn a_missing_pool_reports_warm_pool_not_found_without_error() {
    let w = World::default();
    w.add_claim(claim("c", "nope", json!({})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    let c = w.claim("c").expect("claim");
    assert_eq!(
        ready(&c),
        (
            "False".into(),
            "WarmPoolNotFound".into(),
            "SandboxWarmPool \"nope\" not found".into()
        )
    );
}

#[test]
fn a_foreign_sandbox_named_like_the_claim_is_an_error_retried_with_backoff() {
    let w = world();
    w.add_sandbox(typed(
        json!({"metadata": {"name": "c"}, "spec": {"podTemplate": {"spec": {"containers": []}}}}),
    ));
    w.add_claim(claim("c", "p", json!({})));
    let out = w.reconcile("c", at(1));
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("Please use a different claim name"))
    );
    assert_eq!(ready(&w.claim("c").expect("claim")).1, "ReconcilerError");
}

#[test]
fn a_controlled_ready_sandbox_is_reused_and_its_ready_condition_ips_and_fqdn_mirrored() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("True"), true, None);
    let out = w.reconcile("c", at(2));
    assert_eq!(out.error, None);
    assert_eq!(w.sandboxes().len(), 1);
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).0, "True");
    assert_eq!(ready(&c).1, "DependenciesReady");
    assert_eq!(
        c.status.as_ref().map(|s| s.sandbox.pod_ips.clone()),
        Some(vec!["10.0.0.1".to_owned()])
    );
    assert_eq!(
        c.status.as_ref().map(|s| s.sandbox.service_fqdn.as_str()),
        Some("c.ns.svc.cluster.local"),
        "written by the status patch"
    );
}

#[test]
fn invalid_additional_metadata_is_reported_and_not_retried() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"additionalPodMetadata": {"labels": {"nodomain": "x"}}}),
    ));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert!(w.sandboxes().is_empty());
    let c = w.claim("c").expect("claim");
    assert_eq!(ready(&c).1, "InvalidMetadata");
    assert!(ready(&c).2.starts_with("invalid additionalPodMetadata: "));
}

#[test]
fn additional_metadata_is_merged_into_the_cold_pod_template() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"additionalPodMetadata": {
        "labels": {"sandbox.users.io/team": "a"}, "annotations": {"note": "n"}}}),
    ));
    w.reconcile("c", at(1));
    let sb = w.sandbox("c").expect("sandbox");
    let meta = &sb.spec.blueprint.pod_template.metadata;
    assert_eq!(
        meta.labels.get("sandbox.users.io/team").map(String::as_str),
        Some("a")
    );
    assert_eq!(meta.annotations.get("note").map(String::as_str), Some("n"));
    assert_eq!(
        meta.labels.get(labels::CLAIM_UID).map(String::as_str),
        Some("uid-c")
    );
}

#[test]
fn a_claim_metadata_edit_flows_into_the_bound_sandbox() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    {
        let mut server = w.server.lock().expect("lock");
        let c = server.claims.get_mut("c").expect("claim");
        c.spec
            .additional_pod_metadata
            .labels
            .insert("sandbox.users.io/x".into(), "y".into());
    }
    w.reconcile("c", at(2));
    let sb = w.sandbox("c").expect("sandbox");
    assert_eq!(
        sb.spec
            .blueprint
            .pod_template
            .metadata
            .labels
            .get("sandbox.users.io/x")
            .map(String::as_str),
        Some("y")
    );
}

#[test]
fn env_rejected_by_the_template_policy_is_reported_and_not_retried() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"env": [{"name": "A", "value": "1"}]}),
    ));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(
        ready(&w.claim("c").expect("claim")).1,
        "EnvVarsInjectionRejected"
    );
}

#[test]
fn env_for_a_missing_container_is_a_reconciler_error_retried_with_backoff() {
    let w = World::default();
    w.add_template(template(json!({"envVarsInjectionPolicy": "Allowed"})));
    w.add_pool(pool("p", json!({})));
    w.add_claim(claim(
        "c",
        "p",
        json!({"env": [{"name": "A", "value": "1", "containerName": "nope"}]}),
    ));
    let out = w.reconcile("c", at(1));
    assert!(out.error.is_some());
    assert_eq!(ready(&w.claim("c").expect("claim")).1, "ReconcilerError");
}

#[test]
fn volume_claim_templates_disallowed_by_default_are_reported_and_not_retried() {
    let w = world();
    w.add_claim(claim("c", "p", json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]})));
    let out = w.reconcile("c", at(1));
    assert_eq!(out.error, None);
    assert_eq!(
        ready(&w.claim("c").expect("claim")).1,
        "VolumeClaimTemplatesError"
    );
}

#[test]
fn a_sandbox_the_cache_has_not_shown_yet_is_found_on_the_api_server_not_created_again() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    let mut lagging = w.server.lock().expect("lock").clone();
    lagging.sandboxes.clear();
    *w.frozen.lock().expect("lock") = Some(lagging);
    let out = w.reconcile("c", at(2));
    assert_eq!(out.error, None);
    assert_eq!(
        w.writes()
            .iter()
            .filter(|e| e.starts_with("create"))
            .count(),
        1
    );
    assert_eq!(bound(&w.claim("c").expect("claim")), "c");
}

#[test]
fn a_transient_error_never_clears_the_bound_sandbox() {
    let w = world();
    w.add_claim(claim(
        "c",
        "p",
        json!({"additionalPodMetadata": {"labels": {"sandbox.users.io/a": "b"}}}),
    ));
    w.reconcile("c", at(1));
    // The pool disappears: metadata propagation fails, which is transient.
    w.server.lock().expect("lock").pools.clear();
    let out = w.reconcile("c", at(2));
    assert!(out.error.is_some());
    assert_eq!(bound(&w.claim("c").expect("claim")), "c");
}

#[test]
fn the_status_patch_is_locked_and_a_stale_conflict_is_dropped_without_metrics() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("True"), true, None);
    w.inject(Write::Status, 1);
    let out = w.reconcile("c", at(2));
    assert_eq!(out.error, None, "409 dropped");
    assert_eq!(out.requeue_after, None);
    assert_eq!(out.latencies, None, "no metrics from a stale pass");
    let out = w.reconcile("c", at(3));
    assert!(
        out.latencies.is_some(),
        "recorded once by the authoritative pass"
    );
    let again = w.reconcile("c", at(4));
    assert_eq!(again.latencies, None, "never twice");
}

#[test]
fn first_ready_records_latencies_once_and_stamps_the_claim() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("True"), true, None);
    let out = w.reconcile("c", at(5));
    let l = out.latencies.expect("recorded");
    assert_eq!(l.launch_type, "cold");
    assert_eq!(l.sandbox_template, "tpl");
    assert_eq!(l.controller_startup, Some(5000));
    assert_eq!(l.claim_startup, None, "no webhook annotation");
    assert!(out.drain_first_observed);
    let c = w.claim("c").expect("claim");
    assert_eq!(
        annotation(&c, annotations::CLAIM_FIRST_READY_AT),
        Some(at(5).to_string())
    );
    // A readiness flap does not count again.
    w.set_sandbox_status("c", Some("False"), true, None);
    assert_eq!(w.reconcile("c", at(6)).latencies, None);
    w.set_sandbox_status("c", Some("True"), true, None);
    assert_eq!(w.reconcile("c", at(7)).latencies, None);
}

#[test]
fn a_claim_already_ready_without_a_stamp_is_backfilled_with_unknown() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    w.reconcile("c", at(1));
    w.set_sandbox_status("c", Some("True"), true, None);
    w.reconcile("c", at(2));
    {
        let mut server = w.server.lock().expect("lock");
        let c = server.claims.get_mut("c").expect("claim");
        c.metadata
            .annotations
            .as_mut()
            .map(|a| a.remove(annotations::CLAIM_FIRST_READY_AT));
    }
    w.set_sandbox_status("c", Some("False"), true, None);
    let out = w.reconcile("c", at(3));
    assert_eq!(out.latencies, None);
    assert_eq!(
        annotation(
            &w.claim("c").expect("claim"),
            annotations::CLAIM_FIRST_READY_AT
        )
        .as_deref(),
        Some("unknown")
    );
}

#[test]
fn with_observability_annotations_disabled_the_first_observed_time_is_not_written() {
    let w = world();
    w.add_claim(claim("c", "p", json!({})));
    let quiet = Settings {
        observability_annotations: false,
        ..settings()
    };
    w.reconcile_with("c", at(1), &quiet);
    assert_eq!(
        annotation(
            &w.claim("c").expect("claim"),
            annotations::CONTROLLER_FIRST_OBSERVED_AT
        ),
        None
    );
}

#[test]
fn a_deleting_claim_is_left_to_garbage_collection() {
    let w = world();
    let mut c = claim("c", "p", json!({}));
    c["metadata"]["deletionTimestamp"] = json!(at(0).to_string());
    w.add_claim(c);
    let out = w.reconcile("c", at(1));
    assert_eq!(out, Outcome::default());
    assert!(w.writes().is_empty());
}
