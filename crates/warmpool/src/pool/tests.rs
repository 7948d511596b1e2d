//! TestReconcilePool and the over-creation tests (controllers.md §11.3), on an in-memory namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox_api::common::LocalObjectReference;
use agent_sandbox_api::extensions::{
    SandboxWarmPoolUpdateStrategy, SandboxWarmPoolUpdateStrategyType,
};
use agent_sandbox_api::hash::name_hash;
use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{
    Sandbox, SandboxStatus, SandboxTemplate, SandboxTemplateSpec, SandboxWarmPool,
    SandboxWarmPoolSpec, SandboxWarmPoolStatus,
};
use agent_sandbox_core::events::EventType;
use agent_sandbox_core::ownership::controller_reference;
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::progress::go_duration;
use super::*;
use crate::expectations::Expectations;
use crate::member::{MemberConfig, build};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid")
}

fn template(image: &str) -> SandboxTemplate {
    let mut t = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
    t.spec.blueprint.pod_template.spec.containers = vec![Container {
        name: "c".into(),
        image: Some(image.into()),
        ..Default::default()
    }];
    t
}

fn pool(replicas: Option<i32>) -> SandboxWarmPool {
    let mut p = SandboxWarmPool::new(
        "pool",
        SandboxWarmPoolSpec {
            replicas,
            sandbox_template_ref: LocalObjectReference { name: "tpl".into() },
            ..Default::default()
        },
    );
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some("pool-uid".into());
    p.metadata.generation = Some(4);
    p
}

/// A namespace with one pool: members, their pods, and a cache that may lag behind the writes.
struct World {
    pool: SandboxWarmPool,
    template: Option<SandboxTemplate>,
    members: Vec<Sandbox>,
    pods: BTreeMap<String, Pod>,
    memory: Memory,
    expectations: Expectations,
    config: Config,
    now: Timestamp,
    created: u32,
    next: u32,
}

impl World {
    fn new(pool: SandboxWarmPool) -> Self {
        Self {
            pool,
            template: Some(template("v1")),
            members: Vec::new(),
            pods: BTreeMap::new(),
            memory: Memory::default(),
            expectations: Expectations::default(),
            config: Config::default(),
            now: at(0),
            created: 0,
            next: 0,
        }
    }

    /// Runs a pass; with `cache_sees_writes` false the writes happen but the next pass does not see them.
    fn pass_with(&mut self, cache_sees_writes: bool) -> Plan {
        let members: Vec<Member> = self
            .members
            .iter()
            .map(|s| Member {
                sandbox: s,
                pod: self
                    .pods
                    .get(s.metadata.name.as_deref().unwrap_or_default()),
            })
            .collect();
        let observed = Observed {
            pool: &self.pool,
            members,
            template: Ok(self.template.as_ref()),
        };
        let plan = plan(
            &observed,
            &mut self.memory,
            &mut self.expectations,
            self.now,
            &self.config,
        );
        let key = key(&self.pool);
        for action in plan.actions.clone() {
            match action {
                Action::Create { sandbox, count } => {
                    for _ in 0..count {
                        self.created += 1;
                        self.next += 1;
                        let mut member = (*sandbox).clone();
                        let name = format!("pool-{:05}", self.next);
                        member.metadata.name = Some(name.clone());
                        member.metadata.uid = Some(format!("{name}-uid"));
                        member.metadata.creation_timestamp = Some(Time(self.now));
                        if cache_sees_writes {
                            self.expectations.creation_observed(&key);
                            self.members.push(member);
                        }
                    }
                    self.memory.replenish.note_creates(count);
                }
                Action::Delete { name, uid, .. } => {
                    if cache_sees_writes {
                        self.members
                            .retain(|m| m.metadata.name.as_deref() != Some(name.as_str()));
                        self.expectations.deletion_observed(&key, &uid);
                    }
                }
                Action::Update(sandbox) => {
                    if let Some(m) = self
                        .members
                        .iter_mut()
                        .find(|m| m.metadata.name == sandbox.metadata.name)
                    {
                        *m = *sandbox;
                    }
                }
            }
        }
        plan
    }

    fn pass(&mut self) -> Plan {
        self.pass_with(true)
    }

    fn member(
        &mut self,
        name: &str,
        owner_uid: Option<&str>,
        ready: bool,
        age: Duration,
    ) -> &mut Sandbox {
        let mut s = build(
            &self.pool,
            self.template.as_ref().expect("template"),
            MemberConfig::default(),
        );
        s.metadata.name = Some(name.into());
        s.metadata.uid = Some(format!("{name}-uid"));
        s.metadata.creation_timestamp = Some(Time(self.now - age));
        s.metadata.owner_references = owner_uid.map(|uid| {
            let mut r = controller_reference(
                "x/v1",
                "SandboxWarmPool",
                &ObjectMeta {
                    uid: Some(uid.into()),
                    ..Default::default()
                },
            );
            r.uid = uid.into();
            vec![r]
        });
        s.status = Some(SandboxStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: "r".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(self.now),
            }],
            ..Default::default()
        });
        self.members.push(s);
        self.members.last_mut().expect("just pushed")
    }

    fn creates(plan: &Plan) -> u32 {
        plan.actions
            .iter()
            .map(|a| {
                if let Action::Create { count, .. } = a {
                    *count
                } else {
                    0
                }
            })
            .sum()
    }

    /// The member a pass creates (it must create).
    fn created_member(plan: &Plan) -> &Sandbox {
        let Some(Action::Create { sandbox, .. }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        sandbox
    }

    fn image(sandbox: &Sandbox) -> Option<&str> {
        sandbox.spec.blueprint.pod_template.spec.containers[0]
            .image
            .as_deref()
    }

    fn deletes(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| {
                if let Action::Delete { name, .. } = a {
                    Some(name.clone())
                } else {
                    None
                }
            })
            .collect()
    }
}

const ONE_MINUTE: Duration = Duration::from_secs(60);

#[test]
fn nil_replicas_means_one_and_an_empty_pool_is_filled() {
    let mut world = World::new(pool(None));
    assert_eq!(World::creates(&world.pass()), 1);
    let mut world = World::new(pool(Some(3)));
    let plan = world.pass();
    assert_eq!(World::creates(&plan), 3);
    assert_eq!(
        plan.status.replicas, 0,
        "status is computed before this pass's writes"
    );
    assert_eq!(
        world.pass().actions,
        vec![],
        "steady once the members are seen"
    );
}

#[test]
fn status_reports_members_ready_ones_selector_and_generation() {
    let mut world = World::new(pool(Some(3)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), false, ONE_MINUTE);
    world.member("c", Some("pool-uid"), true, ONE_MINUTE);
    let plan = world.pass();
    assert_eq!(
        plan.status,
        SandboxWarmPoolStatus {
            replicas: 3,
            ready_replicas: 2,
            selector: format!("{}={}", labels::WARM_POOL_SANDBOX, name_hash("pool")),
            observed_generation: 4,
        }
    );
}

#[test]
fn every_status_carries_the_current_generation_even_when_nothing_else_changed() {
    let mut world = World::new(pool(Some(1)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    let before = world.pass().status;
    world.pool.metadata.generation = Some(5);
    let after = world.pass().status;
    assert_eq!(
        after,
        SandboxWarmPoolStatus {
            observed_generation: 5,
            ..before
        },
        "a spec change alone makes the status differ, so it is written"
    );
    world.template = None;
    world.pool.metadata.generation = Some(6);
    assert_eq!(
        world.pass().status.observed_generation,
        6,
        "also while the template is missing"
    );
}

#[test]
fn over_provisioned_pools_trim_not_ready_then_newest_first() {
    let mut world = World::new(pool(Some(2)));
    world.member(
        "old-ready",
        Some("pool-uid"),
        true,
        Duration::from_secs(300),
    );
    world.member("new-ready", Some("pool-uid"), true, Duration::from_secs(10));
    world.member(
        "not-ready",
        Some("pool-uid"),
        false,
        Duration::from_secs(200),
    );
    world.member(
        "mid-ready",
        Some("pool-uid"),
        true,
        Duration::from_secs(100),
    );
    assert_eq!(World::deletes(&world.pass()), ["not-ready", "new-ready"]);
}

#[test]
fn zero_replicas_deletes_every_member() {
    let mut world = World::new(pool(Some(0)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), true, ONE_MINUTE);
    assert_eq!(World::deletes(&world.pass()).len(), 2);
    assert!(world.members.is_empty());
}

#[test]
fn orphans_are_adopted_foreign_members_ignored() {
    let mut world = World::new(pool(Some(2)));
    world.member("orphan", None, true, ONE_MINUTE);
    world.member("foreign", Some("claim-uid"), true, ONE_MINUTE);
    let plan = world.pass();
    let Some(Action::Update(adopted)) = plan.actions.first() else {
        panic!("{:?}", plan.actions)
    };
    assert!(adopted.metadata.owner_references.as_ref().is_some_and(|r| {
        r.iter()
            .any(|r| r.uid == "pool-uid" && r.controller == Some(true))
    }));
    assert_eq!(plan.status.replicas, 1, "the foreign member does not count");
    assert_eq!(World::creates(&plan), 1);
}

#[test]
fn stuck_members_are_replaced_on_a_later_pass_and_young_ones_get_a_deadline() {
    let mut world = World::new(pool(Some(2)));
    world.member("stuck", Some("pool-uid"), false, Duration::from_secs(301));
    world.member("young", Some("pool-uid"), false, Duration::from_secs(100));
    let plan = world.pass();
    assert_eq!(World::deletes(&plan), ["stuck"]);
    assert_eq!(
        World::creates(&plan),
        0,
        "the replacement waits for the deletion to be observed"
    );
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(202)),
        "grace - age + 2s"
    );
    assert_eq!(World::creates(&world.pass()), 1);
}

#[test]
fn unschedulable_members_are_held_with_one_event_each_way() {
    let mut world = World::new(pool(Some(1)));
    world.member("pending", Some("pool-uid"), false, Duration::from_secs(400));
    let pod = Pod {
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    world.pods.insert("pending".into(), pod);
    let plan = world.pass();
    assert!(plan.actions.is_empty(), "held: no delete, no create");
    assert_eq!(plan.requeue_after, Some(ONE_MINUTE));
    assert_eq!(plan.events.len(), 1);
    assert_eq!(
        plan.events[0].note,
        "1/1 sandboxes are unschedulable past the 5m0s readiness grace period; holding them instead of replacing (replacements would be equally unschedulable)"
    );
    assert!(world.pass().events.is_empty(), "one Warning across passes");
    world.members[0].status.as_mut().expect("status").conditions[0].status = "True".into();
    let plan = world.pass();
    assert_eq!(plan.requeue_after, None);
    assert_eq!(
        plan.events
            .iter()
            .map(|e| (e.type_, e.reason))
            .collect::<Vec<_>>(),
        [(EventType::Normal, "WarmPoolProgressing")]
    );
}

#[test]
fn a_stale_cache_never_over_creates() {
    let mut world = World::new(pool(Some(3)));
    for _ in 0..5 {
        world.pass_with(false);
    }
    assert_eq!(world.created, 3, "not 15");
}

#[test]
fn terminating_members_count_against_the_target() {
    let mut world = World::new(pool(Some(1)));
    world
        .member("leaving", Some("pool-uid"), true, ONE_MINUTE)
        .metadata
        .deletion_timestamp = Some(Time(at(0)));
    let plan = world.pass();
    assert_eq!(World::creates(&plan), 0);
    assert_eq!(plan.status.replicas, 0);
}

#[test]
fn recreate_replaces_stale_members_and_on_replenish_keeps_them() {
    for (strategy, replaced) in [
        (Some(SandboxWarmPoolUpdateStrategyType::Recreate), true),
        (Some(SandboxWarmPoolUpdateStrategyType::OnReplenish), false),
        (None, false),
    ] {
        let mut p = pool(Some(1));
        p.spec.update_strategy = Some(SandboxWarmPoolUpdateStrategy { type_: strategy });
        let mut world = World::new(p);
        world.member("old", Some("pool-uid"), true, ONE_MINUTE);
        world.template = Some(template("v2"));
        let plan = world.pass();
        assert_eq!(World::deletes(&plan) == ["old"], replaced, "{strategy:?}");
        if replaced {
            assert_eq!(
                World::image(World::created_member(&world.pass())),
                Some("v2")
            );
        }
    }
}

#[test]
fn a_missing_template_blocks_creation_but_not_status() {
    let mut world = World::new(pool(Some(2)));
    world.template = None;
    let plan = world.pass();
    assert!(plan.actions.is_empty() && plan.error.is_none());
    assert_eq!(
        plan.status.selector,
        format!("{}={}", labels::WARM_POOL_SANDBOX, name_hash("pool"))
    );
}

#[test]
fn an_unreadable_template_is_an_error() {
    let p = pool(Some(1));
    let observed = Observed {
        pool: &p,
        members: vec![],
        template: Err("timeout".into()),
    };
    let plan = plan(
        &observed,
        &mut Memory::default(),
        &mut Expectations::default(),
        at(0),
        &Config::default(),
    );
    assert_eq!(
        plan.error.as_deref(),
        Some("reading SandboxTemplate \"tpl\": timeout")
    );
}

#[test]
fn the_refill_rate_paces_creates() {
    let mut world = World::new(pool(Some(5)));
    world.config.max_refill_rate = 2.0;
    assert_eq!(World::creates(&world.pass()), 2);
    let plan = world.pass();
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (0, Some(Duration::from_millis(500)))
    );
    world.now = at(1);
    assert_eq!(World::creates(&world.pass()), 2);
}

#[test]
fn the_replenish_delay_holds_refills_after_a_drop() {
    let mut world = World::new(pool(Some(2)));
    world.config.replenish_delay = Duration::from_secs(10);
    world.pass();
    world.pass();
    assert_eq!(world.members.len(), 2);
    world.members.pop();
    let plan = world.pass();
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (0, Some(Duration::from_secs(10)))
    );
    world.now = at(10);
    assert_eq!(World::creates(&world.pass()), 1);
}

#[test]
fn go_durations() {
    assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    assert_eq!(go_duration(Duration::from_secs(30)), "30s");
    assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
}

fn unschedulable_pod(scheduled: &str, reason: &str) -> Pod {
    Pod {
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: scheduled.into(),
                reason: Some(reason.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn under_provisioned_pools_are_topped_up() {
    let mut world = World::new(pool(Some(3)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    let plan = world.pass();
    assert_eq!(World::creates(&plan), 2);
    assert_eq!(plan.status.replicas, 1);
    assert_eq!(world.members.len(), 3);
}

#[test]
fn a_member_without_a_ready_condition_is_not_ready() {
    let mut world = World::new(pool(Some(2)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), true, ONE_MINUTE).status = None;
    let plan = world.pass();
    assert_eq!((plan.status.replicas, plan.status.ready_replicas), (2, 1));
}

#[test]
fn an_empty_status_still_writes_its_zero_counts() {
    let mut world = World::new(pool(Some(0)));
    let status = serde_json::to_value(world.pass().status).expect("serialises");
    assert_eq!(status["replicas"], 0, "{status}");
    assert_eq!(status["readyReplicas"], 0, "{status}");
}

#[test]
fn owned_members_without_the_warm_launch_type_are_labelled() {
    let mut world = World::new(pool(Some(1)));
    world
        .member("a", Some("pool-uid"), true, ONE_MINUTE)
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .remove(labels::LAUNCH_TYPE);
    let plan = world.pass();
    let [Action::Update(updated)] = plan.actions.as_slice() else {
        panic!("{:?}", plan.actions)
    };
    assert_eq!(
        updated
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::LAUNCH_TYPE))
            .map(String::as_str),
        Some("warm")
    );
    assert_eq!(plan.status.replicas, 1);
}

#[test]
fn a_member_deleted_under_on_replenish_is_replaced_from_the_new_template() {
    let mut world = World::new(pool(Some(2)));
    world.member("old-1", Some("pool-uid"), true, ONE_MINUTE);
    world.member("old-2", Some("pool-uid"), true, ONE_MINUTE);
    world.template = Some(template("v2"));
    assert!(world.pass().actions.is_empty(), "stale members are kept");
    world.members.remove(0);
    let plan = world.pass();
    assert_eq!(World::creates(&plan), 1);
    assert_eq!(World::image(World::created_member(&plan)), Some("v2"));
}

#[test]
fn a_renamed_template_reference_recreates_members_only_under_recreate() {
    for (strategy, replaced) in [
        (SandboxWarmPoolUpdateStrategyType::Recreate, true),
        (SandboxWarmPoolUpdateStrategyType::OnReplenish, false),
    ] {
        let mut p = pool(Some(1));
        p.spec.update_strategy = Some(SandboxWarmPoolUpdateStrategy {
            type_: Some(strategy),
        });
        let mut world = World::new(p);
        world.member("old", Some("pool-uid"), true, ONE_MINUTE);
        world.pool.spec.sandbox_template_ref.name = "tpl-copy".into();
        assert_eq!(World::deletes(&world.pass()) == ["old"], replaced);
        if replaced {
            let plan = world.pass();
            assert_eq!(
                World::created_member(&plan)
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::SANDBOX_TEMPLATE_REF_HASH)),
                Some(&name_hash("tpl-copy"))
            );
        }
    }
}

#[test]
fn stale_orphans_are_deleted_under_any_strategy_without_counting_as_terminating() {
    let mut world = World::new(pool(Some(1)));
    world
        .member("orphan", None, true, ONE_MINUTE)
        .spec
        .blueprint
        .pod_template
        .spec
        .containers[0]
        .image = Some("smuggled".into());
    let plan = world.pass();
    assert_eq!(World::deletes(&plan), ["orphan"]);
    assert_eq!(
        World::creates(&plan),
        1,
        "an orphan is no member: its replacement is not held back"
    );
    assert!(
        !world
            .expectations
            .is_pending_deletion(&key(&world.pool), "orphan-uid", world.now)
    );
}

#[test]
fn a_member_being_deleted_by_the_pool_counts_as_terminating_until_seen_gone() {
    let mut world = World::new(pool(Some(1)));
    world.member("old", Some("pool-uid"), true, Duration::from_secs(100));
    world.member("new", Some("pool-uid"), true, Duration::from_secs(10));
    assert_eq!(World::deletes(&world.pass_with(false)), ["new"]);
    let plan = world.pass_with(false);
    assert_eq!(plan.status.replicas, 1, "the deleted member is not counted");
    assert!(
        plan.actions.is_empty(),
        "neither deleted again nor replaced"
    );
}

#[test]
fn excess_members_wait_for_earlier_writes_to_be_seen() {
    let mut world = World::new(pool(Some(1)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), true, ONE_MINUTE);
    let key = key(&world.pool);
    world
        .expectations
        .expect_deletion(&key, "elsewhere", world.now);
    let plan = world.pass();
    assert!(World::deletes(&plan).is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
}

#[test]
fn a_not_found_delete_observed_at_once_does_not_block_the_next_pass() {
    let mut world = World::new(pool(Some(1)));
    world.member("a", Some("pool-uid"), true, Duration::from_secs(100));
    world.member("b", Some("pool-uid"), true, Duration::from_secs(10));
    assert_eq!(World::deletes(&world.pass_with(false)), ["b"]);
    // The executor's DELETE found nothing: it observes the deletion itself.
    world
        .members
        .retain(|m| m.metadata.name.as_deref() != Some("b"));
    world
        .expectations
        .deletion_observed(&key(&world.pool), "b-uid");
    world.member("c", Some("pool-uid"), true, Duration::from_secs(5));
    let plan = world.pass();
    assert_eq!(World::deletes(&plan), ["c"]);
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn the_batch_size_caps_creates_and_deletes() {
    let mut world = World::new(pool(Some(5)));
    world.config.max_batch = 2;
    assert_eq!(World::creates(&world.pass()), 2);
    assert_eq!(World::creates(&world.pass()), 2);
    assert_eq!(World::creates(&world.pass()), 1);
    world.pool.spec.replicas = Some(0);
    assert_eq!(World::deletes(&world.pass()).len(), 2);
}

#[test]
fn excess_members_are_trimmed_even_without_a_template() {
    let mut world = World::new(pool(Some(1)));
    world.member("a", Some("pool-uid"), true, Duration::from_secs(100));
    world.member("b", Some("pool-uid"), true, Duration::from_secs(10));
    world.template = None;
    let plan = world.pass();
    assert_eq!(World::deletes(&plan), ["b"]);
    assert!(plan.error.is_none(), "a missing template is not an error");
}

#[test]
fn a_partial_refill_grant_relies_on_watch_events_not_a_requeue() {
    let mut world = World::new(pool(Some(5)));
    world.config.max_refill_rate = 2.0;
    assert_eq!(World::creates(&world.pass()), 2);
    let plan = world.pass();
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (0, Some(Duration::from_millis(500)))
    );
    world.now += Duration::from_millis(500);
    let plan = world.pass();
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (1, Some(Duration::from_millis(301_500))),
        "only the new members' grace deadline, no token wait"
    );
    world.now += Duration::from_secs(1);
    assert_eq!(World::creates(&world.pass()), 2);
}

#[test]
fn without_a_rate_the_whole_deficit_is_created_and_no_bucket_kept() {
    let mut world = World::new(pool(Some(5)));
    assert_eq!(World::creates(&world.pass()), 5);
    assert!(world.memory.bucket.is_none());
    let mut world = World::new(pool(Some(0)));
    world.config.max_refill_rate = 2.0;
    world.pass();
    assert!(
        world.memory.bucket.is_none(),
        "no bucket until something is wanted"
    );
}

#[test]
fn creates_refused_by_the_expectations_gate_give_their_tokens_back() {
    let mut world = World::new(pool(Some(2)));
    world.config.max_refill_rate = 2.0;
    let key = key(&world.pool);
    world
        .expectations
        .expect_deletion(&key, "elsewhere", world.now);
    let plan = world.pass();
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (0, Some(Duration::from_secs(30)))
    );
    world.expectations.deletion_observed(&key, "elsewhere");
    assert_eq!(
        World::creates(&world.pass()),
        2,
        "the refunded tokens are spent at once"
    );
}

#[test]
fn the_replenish_hold_reports_its_remainder_and_a_truthful_status() {
    let mut world = World::new(pool(Some(2)));
    world.config.replenish_delay = Duration::from_secs(10);
    world.pass();
    world.members.pop();
    let plan = world.pass();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)));
    world.now += Duration::from_secs(4);
    let plan = world.pass();
    assert_eq!(
        (
            World::creates(&plan),
            plan.requeue_after,
            plan.status.replicas
        ),
        (0, Some(Duration::from_secs(6)), 1)
    );
}

#[test]
fn stuck_members_are_collected_during_a_replenish_hold_and_replaced_after_it() {
    let mut world = World::new(pool(Some(3)));
    world.config.replenish_delay = Duration::from_secs(10);
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), false, Duration::from_secs(100));
    world.member("c", Some("pool-uid"), true, ONE_MINUTE);
    assert!(world.pass().actions.is_empty());
    world.members.pop();
    world.now += Duration::from_secs(250);
    let plan = world.pass();
    assert_eq!(
        World::deletes(&plan),
        ["b"],
        "a claim took c; b is past grace"
    );
    assert_eq!(
        (World::creates(&plan), plan.requeue_after),
        (0, Some(Duration::from_secs(10)))
    );
    world.now += Duration::from_secs(10);
    assert_eq!(World::creates(&world.pass()), 2);
}

#[test]
fn default_grace_recheck_and_batch() {
    let config = Config::default();
    assert_eq!(config.readiness_grace, Duration::from_secs(300));
    assert_eq!(config.unschedulable_recheck, ONE_MINUTE);
    assert_eq!(config.max_batch, 300);
    assert_eq!(
        (config.replenish_delay, config.max_refill_rate),
        (Duration::ZERO, 0.0)
    );
    assert!(config.member.eviction_annotation);
}

#[test]
fn a_configured_grace_and_recheck_are_honoured() {
    let mut world = World::new(pool(Some(1)));
    world.config.readiness_grace = Duration::from_secs(600);
    world.config.unschedulable_recheck = Duration::from_secs(90);
    world.member("slow", Some("pool-uid"), false, Duration::from_secs(400));
    let plan = world.pass();
    assert!(plan.actions.is_empty(), "within a 10m grace");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(202)));
    world
        .pods
        .insert("slow".into(), unschedulable_pod("False", "Unschedulable"));
    world.now += Duration::from_secs(300);
    let plan = world.pass();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(90)));
    assert!(plan.events[0].note.contains("the 10m0s readiness grace"));
}

#[test]
fn a_quiet_cluster_arms_the_grace_requeue_then_holds_the_unschedulable_member() {
    let mut world = World::new(pool(Some(1)));
    world.member("pending", Some("pool-uid"), false, Duration::from_secs(100));
    world.pods.insert(
        "pending".into(),
        unschedulable_pod("False", "Unschedulable"),
    );
    let plan = world.pass();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(202)));
    assert!(plan.events.is_empty());
    world.now += Duration::from_secs(202);
    let plan = world.pass();
    assert!(plan.actions.is_empty());
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].type_, EventType::Warning);
    assert_eq!(
        (plan.status.replicas, plan.status.ready_replicas),
        (1, 0),
        "held, counted, not Ready"
    );
}

#[test]
fn a_fully_ready_full_pool_does_not_requeue() {
    let mut world = World::new(pool(Some(2)));
    world.member("a", Some("pool-uid"), true, ONE_MINUTE);
    world.member("b", Some("pool-uid"), true, Duration::from_secs(1000));
    let plan = world.pass();
    assert_eq!((plan.actions.len(), plan.requeue_after), (0, None));
}

#[test]
fn scheduled_or_terminating_pods_of_stuck_members_are_not_held() {
    for (pod, deleting) in [
        (unschedulable_pod("True", ""), false),
        (unschedulable_pod("False", "SchedulerError"), false),
        (unschedulable_pod("False", "Unschedulable"), true),
    ] {
        let mut world = World::new(pool(Some(1)));
        world.member("stuck", Some("pool-uid"), false, Duration::from_secs(400));
        let mut pod = pod;
        if deleting {
            pod.metadata.deletion_timestamp = Some(Time(at(0)));
        }
        world.pods.insert("stuck".into(), pod);
        let plan = world.pass();
        assert_eq!(World::deletes(&plan), ["stuck"], "deleting pod: {deleting}");
        assert!(plan.events.is_empty());
    }
}
