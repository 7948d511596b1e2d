//! Rust-side defaults, enum spellings and JSON field names of the API types.

use agent_sandbox_api::extensions::{
    ClaimShutdownPolicy, EnvVarsInjectionPolicy, NetworkPolicyManagement,
    SandboxWarmPoolUpdateStrategyType,
};
use agent_sandbox_api::v1alpha1::{self, WarmPoolPolicy};
use agent_sandbox_api::v1beta1::{
    self, SandboxOperatingMode, ShutdownPolicy, VolumeClaimTemplatesPolicy,
};
use serde_json::json;

#[test]
fn unset_fields_take_upstreams_defaults() {
    assert_eq!(ShutdownPolicy::default(), ShutdownPolicy::Retain);
    assert_eq!(ClaimShutdownPolicy::default(), ClaimShutdownPolicy::Retain);
    assert_eq!(
        SandboxOperatingMode::default(),
        SandboxOperatingMode::Running
    );
    assert_eq!(
        NetworkPolicyManagement::default(),
        NetworkPolicyManagement::Managed
    );
    assert_eq!(
        EnvVarsInjectionPolicy::default(),
        EnvVarsInjectionPolicy::Disallowed
    );
    assert_eq!(
        VolumeClaimTemplatesPolicy::default(),
        VolumeClaimTemplatesPolicy::Disallowed
    );
    assert_eq!(
        SandboxWarmPoolUpdateStrategyType::default(),
        SandboxWarmPoolUpdateStrategyType::OnReplenish
    );
    assert_eq!(
        v1beta1::SandboxSpec::default().operating_mode(),
        SandboxOperatingMode::Running
    );
    assert_eq!(v1beta1::SandboxWarmPoolSpec::default().replicas(), 1);
}

#[test]
fn enums_are_spelled_as_upstream() {
    let spell = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    assert_eq!(
        spell(json!(ClaimShutdownPolicy::DeleteForeground)),
        "DeleteForeground"
    );
    assert_eq!(spell(json!(SandboxOperatingMode::Suspended)), "Suspended");
    assert_eq!(
        spell(json!(SandboxWarmPoolUpdateStrategyType::OnReplenish)),
        "OnReplenish"
    );
    assert_eq!(spell(json!(EnvVarsInjectionPolicy::Overrides)), "Overrides");
    let unknown: Result<SandboxOperatingMode, _> = serde_json::from_value(json!("Paused"));
    assert!(
        unknown.is_err(),
        "unknown enum values are rejected, not guessed"
    );
}

#[test]
fn json_names_match_upstream_including_the_odd_ones() {
    let status = v1beta1::SandboxStatus {
        service_fqdn: "a.ns.svc.cluster.local".into(),
        pod_ips: vec!["10.0.0.1".into()],
        node_name: "n".into(),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&status).expect("serialisable"),
        json!({"serviceFQDN": "a.ns.svc.cluster.local", "podIPs": ["10.0.0.1"], "nodeName": "n"})
    );
    let claim: v1alpha1::SandboxClaimSpec =
        serde_json::from_value(json!({"sandboxTemplateRef": {"name": "t"}, "warmpool": "none"}))
            .expect("parses");
    assert_eq!(claim.warm_pool_policy(), WarmPoolPolicy::None);
    let pool: v1beta1::SandboxWarmPoolSpec = serde_json::from_value(
        json!({"sandboxTemplateRef": {"name": "t"}, "updateStrategy": {"type": "Recreate"}}),
    )
    .expect("parses");
    assert_eq!(
        pool.update_strategy.and_then(|s| s.type_),
        Some(SandboxWarmPoolUpdateStrategyType::Recreate)
    );
}

#[test]
fn the_sandbox_spec_inlines_blueprint_and_lifecycle() {
    let spec: v1beta1::SandboxSpec = serde_json::from_value(json!({
        "podTemplate": {"spec": {"containers": [{"name": "c"}]}},
        "service": false,
        "shutdownTime": "2030-01-02T03:04:05Z",
        "shutdownPolicy": "Delete",
        "operatingMode": "Suspended"
    }))
    .expect("parses");
    assert_eq!(spec.blueprint.service, Some(false));
    assert_eq!(spec.lifecycle.shutdown_policy, Some(ShutdownPolicy::Delete));
    assert_eq!(spec.operating_mode(), SandboxOperatingMode::Suspended);
    let back = serde_json::to_value(&spec).expect("serialisable");
    assert_eq!(
        back["shutdownTime"],
        json!("2030-01-02T03:04:05Z"),
        "times keep second precision in UTC"
    );
    assert!(back.get("blueprint").is_none() && back.get("lifecycle").is_none());
}

#[test]
fn warmpool_policy_values() {
    let cases = [
        (None, WarmPoolPolicy::Default),
        (Some(""), WarmPoolPolicy::Default),
        (Some("default"), WarmPoolPolicy::Default),
        (Some("none"), WarmPoolPolicy::None),
        (Some("fast"), WarmPoolPolicy::Specific("fast")),
    ];
    for (warmpool, expected) in cases {
        let spec = v1alpha1::SandboxClaimSpec {
            warmpool: warmpool.map(String::from),
            ..Default::default()
        };
        assert_eq!(spec.warm_pool_policy(), expected, "{warmpool:?}");
    }
}
