//! Round-trip properties of conversion (api-spec §8): what each direction must preserve.

use std::collections::BTreeMap;

use agent_sandbox_api::common::{
    EmbeddedObjectMetadata, PersistentVolumeClaimTemplate, PodMetadata, PodTemplate,
};
use agent_sandbox_api::convert::Spoke;
use agent_sandbox_api::extensions::{
    ClaimLifecycle, ClaimShutdownPolicy, EnvVar, SandboxClaimStatus, SandboxWarmPoolUpdateStrategy,
    SandboxWarmPoolUpdateStrategyType, SandboxedObjectStatus,
};
use agent_sandbox_api::keys::annotations;
use agent_sandbox_api::v1beta1::{
    Lifecycle, SandboxBlueprint, SandboxOperatingMode, ShutdownPolicy, VolumeClaimTemplatesPolicy,
};
use agent_sandbox_api::{v1alpha1, v1beta1};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

fn dns() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]"
}

fn time() -> impl Strategy<Value = Time> {
    (0i64..4_000_000_000).prop_map(|s| Time(Timestamp::from_second(s).expect("in range")))
}

fn metadata() -> impl Strategy<Value = ObjectMeta> {
    (
        dns(),
        btree_map("[a-z]{1,5}(/[a-z]{1,5})?", "[a-z0-9]{0,6}", 0..3),
        0i64..5,
    )
        .prop_map(|(name, annotations, generation)| ObjectMeta {
            name: Some(name),
            namespace: Some("ns".into()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            generation: Some(generation),
            ..ObjectMeta::default()
        })
}

fn pod_metadata() -> impl Strategy<Value = PodMetadata> {
    (
        btree_map("[a-z]{1,5}", "[a-z]{0,4}", 0..3),
        btree_map("[a-z]{1,5}", "[a-z]{0,4}", 0..3),
    )
        .prop_map(|(labels, annotations)| PodMetadata {
            labels,
            annotations,
        })
}

fn pod_template() -> impl Strategy<Value = PodTemplate> {
    (
        vec((dns(), "[a-z]{1,6}:[0-9]"), 1..3),
        pod_metadata(),
        option::of(any::<bool>()),
    )
        .prop_map(|(containers, metadata, automount)| PodTemplate {
            spec: PodSpec {
                containers: containers
                    .into_iter()
                    .map(|(name, image)| Container {
                        name,
                        image: Some(image),
                        ..Container::default()
                    })
                    .collect(),
                automount_service_account_token: automount,
                ..PodSpec::default()
            },
            metadata,
        })
}

fn volume_claim_templates() -> impl Strategy<Value = Vec<PersistentVolumeClaimTemplate>> {
    vec(dns(), 0..3).prop_map(|names| {
        names
            .into_iter()
            .map(|name| PersistentVolumeClaimTemplate {
                metadata: EmbeddedObjectMetadata {
                    name,
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect()
    })
}

fn conditions() -> impl Strategy<Value = Vec<Condition>> {
    vec(
        (
            prop_oneof!["Ready", "Suspended", "Finished"],
            prop_oneof!["True", "False", "Unknown"],
            "[A-Z][a-z]{1,8}",
            time(),
        ),
        0..3,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .map(|(type_, status, reason, at)| Condition {
                type_,
                status,
                reason,
                message: "m".into(),
                last_transition_time: at,
                observed_generation: Some(1),
            })
            .collect()
    })
}

fn shutdown_policy() -> impl Strategy<Value = Option<ShutdownPolicy>> {
    option::of(prop_oneof![
        Just(ShutdownPolicy::Delete),
        Just(ShutdownPolicy::Retain)
    ])
}

prop_compose! {
    fn alpha_sandbox()(
        metadata in metadata(),
        pod_template in pod_template(),
        volume_claim_templates in volume_claim_templates(),
        shutdown_time in option::of(time()),
        shutdown_policy in shutdown_policy(),
        replicas in option::of(0i32..=1),
        service in option::of(any::<bool>()),
        status in option::of((conditions(), "[a-z=0-9]{1,8}", vec("10\\.0\\.[0-9]\\.[0-9]", 0..2), 0i32..=1)),
    ) -> v1alpha1::Sandbox {
        v1alpha1::Sandbox {
            metadata,
            spec: v1alpha1::SandboxSpec { pod_template, volume_claim_templates, shutdown_time, shutdown_policy, replicas, service },
            status: status.map(|(conditions, selector, pod_ips, replicas)| v1alpha1::SandboxStatus {
                conditions, selector, pod_ips, replicas, service: String::new(), service_fqdn: String::new(),
            }),
        }
    }
}

prop_compose! {
    fn hub_sandbox()(
        metadata in metadata(),
        pod_template in pod_template(),
        volume_claim_templates in volume_claim_templates(),
        shutdown_time in option::of(time()),
        shutdown_policy in shutdown_policy(),
        operating_mode in option::of(prop_oneof![Just(SandboxOperatingMode::Running), Just(SandboxOperatingMode::Suspended)]),
        service in option::of(any::<bool>()),
        status in option::of((conditions(), "[a-z]{0,6}", dns())),
    ) -> v1beta1::Sandbox {
        v1beta1::Sandbox {
            metadata,
            spec: v1beta1::SandboxSpec {
                blueprint: SandboxBlueprint { pod_template, volume_claim_templates, service },
                lifecycle: Lifecycle { shutdown_time, shutdown_policy },
                operating_mode,
            },
            status: status.map(|(conditions, node_name, service)| v1beta1::SandboxStatus {
                conditions,
                node_name,
                service_fqdn: format!("{service}.ns.svc.cluster.local"),
                service,
                ..Default::default()
            }),
        }
    }
}

fn lifecycle() -> impl Strategy<Value = Option<ClaimLifecycle>> {
    option::of((
        option::of(time()),
        option::of(0i32..1000),
        option::of(prop_oneof![
            Just(ClaimShutdownPolicy::Delete),
            Just(ClaimShutdownPolicy::DeleteForeground),
            Just(ClaimShutdownPolicy::Retain)
        ]),
    ))
    .prop_map(|l| {
        l.map(
            |(shutdown_time, ttl_seconds_after_finished, shutdown_policy)| ClaimLifecycle {
                shutdown_time,
                ttl_seconds_after_finished,
                shutdown_policy,
            },
        )
    })
}

fn env() -> impl Strategy<Value = Vec<EnvVar>> {
    vec(
        (
            "[A-Z]{1,4}",
            "[a-z]{0,4}",
            prop_oneof![Just(String::new()), dns()],
        ),
        0..3,
    )
    .prop_map(|vars| {
        vars.into_iter()
            .map(|(name, value, container_name)| EnvVar {
                name,
                value,
                container_name,
            })
            .collect()
    })
}

/// A claim status whose bound sandbox is absent, cold (named like the claim) or warm (`<pool>-<suffix>`).
fn claim_status(claim_name: String) -> impl Strategy<Value = Option<SandboxClaimStatus>> {
    option::of((
        prop_oneof![
            Just(String::new()),
            Just(claim_name),
            "[a-z]{1,5}-[a-z0-9]{5}"
        ],
        conditions(),
    ))
    .prop_map(|s| {
        s.map(|(name, conditions)| SandboxClaimStatus {
            conditions,
            sandbox: SandboxedObjectStatus {
                service_fqdn: format!("{name}.ns.svc.cluster.local"),
                name,
                pod_ips: vec!["10.0.0.1".into()],
            },
        })
    })
}

fn alpha_claim() -> impl Strategy<Value = v1alpha1::SandboxClaim> {
    metadata().prop_flat_map(|metadata| {
        let name = metadata.name.clone().unwrap_or_default();
        (
            Just(metadata),
            dns(),
            option::of(prop_oneof![
                Just("none".to_owned()),
                Just("default".to_owned()),
                Just(String::new()),
                dns()
            ]),
            lifecycle(),
            pod_metadata(),
            env(),
            claim_status(name),
        )
            .prop_map(
                |(
                    metadata,
                    template,
                    warmpool,
                    lifecycle,
                    additional_pod_metadata,
                    env,
                    status,
                )| {
                    v1alpha1::SandboxClaim {
                        metadata,
                        spec: v1alpha1::SandboxClaimSpec {
                            sandbox_template_ref: v1alpha1::LocalObjectReference { name: template },
                            lifecycle,
                            warmpool,
                            additional_pod_metadata,
                            env,
                        },
                        status,
                    }
                },
            )
    })
}

fn hub_claim() -> impl Strategy<Value = v1beta1::SandboxClaim> {
    metadata().prop_flat_map(|metadata| {
        let name = metadata.name.clone().unwrap_or_default();
        (
            Just(metadata),
            prop_oneof![
                dns(),
                dns().prop_map(|t| format!("shadow-pool-{t}")),
                Just("default".to_owned()),
                Just("none".to_owned())
            ],
            lifecycle(),
            pod_metadata(),
            env(),
            volume_claim_templates(),
            claim_status(name),
        )
            .prop_map(
                |(
                    metadata,
                    pool,
                    lifecycle,
                    additional_pod_metadata,
                    env,
                    volume_claim_templates,
                    status,
                )| {
                    v1beta1::SandboxClaim {
                        metadata,
                        spec: v1beta1::SandboxClaimSpec {
                            warm_pool_ref: v1beta1::LocalObjectReference { name: pool },
                            lifecycle,
                            additional_pod_metadata,
                            env,
                            volume_claim_templates,
                        },
                        status,
                    }
                },
            )
    })
}

fn alpha_template() -> impl Strategy<Value = v1alpha1::SandboxTemplate> {
    (
        metadata(),
        pod_template(),
        volume_claim_templates(),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(metadata, pod_template, volume_claim_templates, service)| v1alpha1::SandboxTemplate {
                metadata,
                spec: v1alpha1::SandboxTemplateSpec {
                    pod_template,
                    volume_claim_templates,
                    service,
                    ..Default::default()
                },
            },
        )
}

fn hub_template() -> impl Strategy<Value = v1beta1::SandboxTemplate> {
    (
        alpha_template(),
        option::of(prop_oneof![
            Just(VolumeClaimTemplatesPolicy::Disallowed),
            Just(VolumeClaimTemplatesPolicy::Allowed),
            Just(VolumeClaimTemplatesPolicy::Overrides)
        ]),
    )
        .prop_map(|(alpha, policy)| {
            let s = alpha.spec;
            v1beta1::SandboxTemplate {
                metadata: alpha.metadata,
                spec: v1beta1::SandboxTemplateSpec {
                    blueprint: SandboxBlueprint {
                        pod_template: s.pod_template,
                        volume_claim_templates: s.volume_claim_templates,
                        service: s.service,
                    },
                    network_policy: s.network_policy,
                    network_policy_management: s.network_policy_management,
                    env_vars_injection_policy: s.env_vars_injection_policy,
                    volume_claim_templates_policy: policy,
                },
            }
        })
}

fn update_strategy() -> impl Strategy<Value = Option<SandboxWarmPoolUpdateStrategy>> {
    option::of(option::of(prop_oneof![
        Just(SandboxWarmPoolUpdateStrategyType::Recreate),
        Just(SandboxWarmPoolUpdateStrategyType::OnReplenish)
    ]))
    .prop_map(|s| s.map(|type_| SandboxWarmPoolUpdateStrategy { type_ }))
}

fn alpha_pool() -> impl Strategy<Value = v1alpha1::SandboxWarmPool> {
    (
        metadata(),
        0i32..50,
        dns(),
        update_strategy(),
        option::of((0i32..50, 0i32..50, "[a-z=0-9]{1,8}")),
    )
        .prop_map(|(metadata, replicas, template, update_strategy, status)| {
            v1alpha1::SandboxWarmPool {
                metadata,
                spec: v1alpha1::SandboxWarmPoolSpec {
                    replicas,
                    sandbox_template_ref: v1alpha1::LocalObjectReference { name: template },
                    update_strategy,
                },
                status: status.map(|(replicas, ready_replicas, selector)| {
                    v1alpha1::SandboxWarmPoolStatus {
                        replicas,
                        ready_replicas,
                        selector,
                    }
                }),
            }
        })
}

fn hub_pool() -> impl Strategy<Value = v1beta1::SandboxWarmPool> {
    (alpha_pool(), option::of(0i32..50), 0i64..9).prop_map(|(alpha, replicas, generation)| {
        v1beta1::SandboxWarmPool {
            metadata: alpha.metadata,
            spec: v1beta1::SandboxWarmPoolSpec {
                replicas,
                sandbox_template_ref: alpha.spec.sandbox_template_ref,
                update_strategy: alpha.spec.update_strategy,
            },
            status: alpha.status.map(|s| v1beta1::SandboxWarmPoolStatus {
                replicas: s.replicas,
                ready_replicas: s.ready_replicas,
                selector: s.selector,
                observed_generation: generation,
            }),
        }
    })
}

fn without_annotation(mut metadata: ObjectMeta, key: &str) -> ObjectMeta {
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(key);
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
    metadata
}

/// A v1alpha1 client's read-modify-write: read the stored object as v1alpha1, write it back, read again.
fn reread<S: Spoke + PartialEq + std::fmt::Debug>(hub: &S::Hub) -> Result<(), TestCaseError> {
    let first = S::from_hub(hub).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let stored = first
        .to_hub()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let second = S::from_hub(&stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(first, second);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// alpha → beta → alpha is the identity for a Sandbox (the snapshot restores `replicas` and
    /// `status.replicas` exactly, including an unset `replicas`).
    #[test]
    fn sandbox_alpha_round_trip_is_exact(alpha in alpha_sandbox()) {
        let hub = alpha.to_hub().expect("converts");
        prop_assert!(hub.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(annotations::V1ALPHA1_SANDBOX_STATE)));
        let mut expected = alpha.clone();
        if expected.status.as_ref().is_some_and(|s| *s == v1alpha1::SandboxStatus::default()) {
            expected.status = None;
        }
        prop_assert_eq!(v1alpha1::Sandbox::from_hub(&hub).expect("converts"), expected);
    }

    /// beta → alpha → beta keeps everything but `status.nodeName`, and the operating mode keeps its meaning.
    #[test]
    fn sandbox_beta_round_trip_keeps_all_but_node_name(hub in hub_sandbox()) {
        let back = v1alpha1::Sandbox::from_hub(&hub).and_then(|a| a.to_hub()).expect("converts");
        prop_assert_eq!(back.spec.operating_mode, Some(hub.spec.operating_mode()));
        prop_assert_eq!(&back.spec.blueprint, &hub.spec.blueprint);
        prop_assert_eq!(&back.spec.lifecycle, &hub.spec.lifecycle);
        prop_assert_eq!(without_annotation(back.metadata, annotations::V1ALPHA1_SANDBOX_STATE), hub.metadata);
        let expected_status = hub.status.clone().map(|s| v1beta1::SandboxStatus { node_name: String::new(), ..s });
        let back_status = back.status.filter(|s| *s != v1beta1::SandboxStatus::default());
        prop_assert_eq!(back_status, expected_status.filter(|s| *s != v1beta1::SandboxStatus::default()));
    }

    #[test]
    fn sandbox_v1alpha1_rewrites_are_stable(hub in hub_sandbox()) {
        reread::<v1alpha1::Sandbox>(&hub)?;
    }

    /// alpha → beta → alpha is the identity for a claim: the snapshot restores `sandboxTemplateRef` and
    /// `warmpool` because the derived pool name is one the restore rule recognises.
    #[test]
    fn claim_alpha_round_trip_is_exact(alpha in alpha_claim()) {
        let hub = alpha.to_hub().expect("converts");
        prop_assert_eq!(v1alpha1::SandboxClaim::from_hub(&hub).expect("converts"), alpha);
    }

    /// beta → alpha → beta keeps everything except `volumeClaimTemplates`, and keeps `warmPoolRef` whenever
    /// v1alpha1 can express it: not a pool literally named `none`/`default`, and not a shadow pool of a
    /// claim bound to a warm Sandbox.
    #[test]
    fn claim_beta_round_trip_keeps_what_v1alpha1_can_express(hub in hub_claim()) {
        let back = v1alpha1::SandboxClaim::from_hub(&hub).and_then(|a| a.to_hub()).expect("converts");
        prop_assert!(back.spec.volume_claim_templates.is_empty());
        prop_assert_eq!(&back.spec.lifecycle, &hub.spec.lifecycle);
        prop_assert_eq!(&back.spec.additional_pod_metadata, &hub.spec.additional_pod_metadata);
        prop_assert_eq!(&back.spec.env, &hub.spec.env);
        prop_assert_eq!(&back.status, &hub.status);
        prop_assert_eq!(without_annotation(back.metadata, annotations::V1ALPHA1_SANDBOXCLAIM_STATE), hub.metadata.clone());
        let pool = hub.spec.warm_pool_ref.name.as_str();
        let own_name = hub.metadata.name.as_deref().unwrap_or_default();
        let warm_bound = hub.status.as_ref().is_some_and(|s| !s.sandbox.name.is_empty() && s.sandbox.name != own_name);
        let inexpressible = matches!(pool, "none" | "default") || (pool.starts_with("shadow-pool-") && warm_bound);
        if !inexpressible {
            prop_assert_eq!(back.spec.warm_pool_ref.name.as_str(), pool);
        }
    }

    #[test]
    fn claim_v1alpha1_rewrites_are_stable(hub in hub_claim()) {
        reread::<v1alpha1::SandboxClaim>(&hub)?;
    }

    #[test]
    fn template_round_trips_are_exact(alpha in alpha_template(), hub in hub_template()) {
        let back = v1alpha1::SandboxTemplate::from_hub(&alpha.to_hub().expect("converts")).expect("converts");
        prop_assert_eq!(back, alpha);
        let back = v1alpha1::SandboxTemplate::from_hub(&hub).and_then(|a| a.to_hub()).expect("converts");
        prop_assert_eq!(back, hub);
    }

    #[test]
    fn pool_round_trips_keep_all_but_observed_generation(alpha in alpha_pool(), hub in hub_pool()) {
        let back = v1alpha1::SandboxWarmPool::from_hub(&alpha.to_hub().expect("converts")).expect("converts");
        prop_assert_eq!(back, alpha);
        let back = v1alpha1::SandboxWarmPool::from_hub(&hub).and_then(|a| a.to_hub()).expect("converts");
        prop_assert_eq!(back.spec.replicas, Some(hub.spec.replicas()));
        prop_assert_eq!(&back.spec.sandbox_template_ref, &hub.spec.sandbox_template_ref);
        prop_assert_eq!(&back.spec.update_strategy, &hub.spec.update_strategy);
        prop_assert_eq!(back.metadata, hub.metadata);
        prop_assert_eq!(back.status, hub.status.map(|s| v1beta1::SandboxWarmPoolStatus { observed_generation: 0, ..s }));
    }

    #[test]
    fn template_and_pool_rewrites_are_stable(template in hub_template(), pool in hub_pool()) {
        reread::<v1alpha1::SandboxTemplate>(&template)?;
        reread::<v1alpha1::SandboxWarmPool>(&pool)?;
    }
}

#[test]
fn generators_cover_the_interesting_cases() {
    // Guard against a generator change that would make the properties vacuous.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    for _ in 0..500 {
        let claim = alpha_claim()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let kind = match (
            claim.spec.warmpool.as_deref(),
            claim.status.as_ref().map(|s| s.sandbox.name.as_str()),
        ) {
            (Some("none"), _) => "none",
            (Some(p), _) if !p.is_empty() && p != "default" => "specific",
            (_, Some(name))
                if name.contains('-') && Some(name) != claim.metadata.name.as_deref() =>
            {
                "warm-bound"
            }
            _ => "shadow",
        };
        *seen.entry(kind).or_insert(0) += 1;
    }
    for kind in ["none", "specific", "warm-bound", "shadow"] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 10,
            "{kind}: {seen:?}"
        );
    }
}
