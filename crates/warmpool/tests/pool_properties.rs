//! Property tests of the warm pool against a modelled API server and a cache that lags behind it:
//! whatever order writes, failures, watch events, claims and resizes come in, no pass creates past
//! the target, and once the world goes quiet the pool settles at its target.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use agent_sandbox_api::common::LocalObjectReference;
use agent_sandbox_api::v1beta1::{
    Sandbox, SandboxStatus, SandboxTemplate, SandboxTemplateSpec, SandboxWarmPool,
    SandboxWarmPoolSpec,
};
use agent_sandbox_warmpool::Timestamp;
use agent_sandbox_warmpool::expectations::Expectations;
use agent_sandbox_warmpool::pool::{self, Action, Config, Member, Memory, Observed, Plan};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use proptest::prelude::*;

const POOL_UID: &str = "pool-uid";

/// Who controls a Sandbox on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Pool,
    /// A claim adopted it: it left the pool (label removed, owner replaced).
    Claim,
}

/// The server's record of one Sandbox the pool created.
#[derive(Clone, Debug, PartialEq)]
struct Object {
    uid: String,
    /// Bumped by every server-side change.
    resource_version: u64,
    owner: Owner,
    ready: bool,
    created: Timestamp,
}

/// A write the pool asked for that the API server has not answered yet.
#[derive(Clone, Debug)]
enum Write {
    Create,
    Delete {
        name: String,
        uid: String,
        resource_version: Option<String>,
    },
}

/// One thing that can happen in the world.
#[derive(Clone, Debug)]
enum Event {
    /// The controller runs a pass against the cache.
    Pass,
    /// The API server answers a write (the index picks among the outstanding ones).
    Succeed(usize),
    /// The API server refuses a write.
    Fail(usize),
    /// The cache catches up with the next change of one object.
    Observe(usize),
    /// A claim adopts a member.
    Claim(usize),
    /// A member's Pod becomes Ready.
    BecomeReady(usize),
    /// The pool is resized.
    Resize(u32),
    /// Time passes (milliseconds).
    Tick(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => Just(Event::Pass),
        4 => any::<usize>().prop_map(Event::Succeed),
        1 => any::<usize>().prop_map(Event::Fail),
        5 => any::<usize>().prop_map(Event::Observe),
        2 => any::<usize>().prop_map(Event::Claim),
        2 => any::<usize>().prop_map(Event::BecomeReady),
        1 => (0u32..=6).prop_map(Event::Resize),
        2 => (0u64..=3_000).prop_map(Event::Tick),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(0u64), 1u64..=20],
        prop_oneof![Just(0.0f64), 0.5f64..=5.0],
        1u32..=4,
    )
        .prop_map(|(delay, rate, batch)| Config {
            readiness_grace: Duration::from_secs(60),
            max_batch: batch,
            replenish_delay: Duration::from_secs(delay),
            max_refill_rate: rate,
            ..Config::default()
        })
}

/// The pool's API server and its (lagging) cache, with the controller's in-memory state.
struct World {
    pool: SandboxWarmPool,
    template: SandboxTemplate,
    config: Config,
    memory: Memory,
    expectations: Expectations,
    now: Timestamp,
    /// What exists on the API server.
    server: BTreeMap<String, Object>,
    /// What the controller's cache shows.
    cache: BTreeMap<String, Object>,
    /// Per object, the changes the cache has not seen yet, oldest first (`None`: deleted).
    unseen: BTreeMap<String, VecDeque<Option<Object>>>,
    /// Writes issued but not answered.
    writes: Vec<Write>,
    /// The target of the last pass that issued creates.
    last_create_target: u32,
    next: u32,
}

impl World {
    fn new(replicas: u32, config: Config) -> Self {
        let mut pool = SandboxWarmPool::new(
            "pool",
            SandboxWarmPoolSpec {
                replicas: Some(replicas as i32),
                sandbox_template_ref: LocalObjectReference { name: "tpl".into() },
                ..Default::default()
            },
        );
        pool.metadata.namespace = Some("ns".into());
        pool.metadata.uid = Some(POOL_UID.into());
        let mut template = SandboxTemplate::new("tpl", SandboxTemplateSpec::default());
        template.spec.blueprint.pod_template.spec.containers = vec![Container {
            name: "c".into(),
            image: Some("img".into()),
            ..Default::default()
        }];
        Self {
            pool,
            template,
            config,
            memory: Memory::default(),
            expectations: Expectations::default(),
            now: Timestamp::from_second(1_800_000_000).expect("valid"),
            server: BTreeMap::new(),
            cache: BTreeMap::new(),
            unseen: BTreeMap::new(),
            writes: Vec::new(),
            last_create_target: 0,
            next: 0,
        }
    }

    fn target(&self) -> u32 {
        self.pool.spec.replicas() as u32
    }

    fn key(&self) -> String {
        pool::key(&self.pool)
    }

    /// Pool members that exist on the server plus creates the server has not answered yet.
    fn members_and_pending_creates(&self) -> u32 {
        let members = self
            .server
            .values()
            .filter(|o| o.owner == Owner::Pool)
            .count();
        let creates = self
            .writes
            .iter()
            .filter(|w| matches!(w, Write::Create))
            .count();
        (members + creates) as u32
    }

    fn sandbox(&self, name: &str, object: &Object) -> Sandbox {
        let mut sandbox = Sandbox::new(name, Default::default());
        sandbox.metadata.namespace = Some("ns".into());
        sandbox.metadata.uid = Some(object.uid.clone());
        sandbox.metadata.resource_version = Some(object.resource_version.to_string());
        sandbox.metadata.creation_timestamp = Some(Time(object.created));
        sandbox.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "extensions.agents.x-k8s.io/v1beta1".into(),
            kind: "SandboxWarmPool".into(),
            name: "pool".into(),
            uid: POOL_UID.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        sandbox.metadata.labels = Some(BTreeMap::from([(
            "agents.x-k8s.io/launch-type".to_owned(),
            "warm".to_owned(),
        )]));
        sandbox.status = Some(SandboxStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if object.ready { "True" } else { "False" }.into(),
                reason: "Modelled".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(object.created),
            }],
            ..Default::default()
        });
        sandbox
    }

    /// A server-side change of `name`, for the cache to see later.
    fn changed(&mut self, name: &str) {
        let state = self.server.get(name).cloned();
        self.unseen
            .entry(name.to_owned())
            .or_default()
            .push_back(state);
    }

    fn pass(&mut self) -> Plan {
        // The pool lists Sandboxes by its label; a claimed Sandbox has lost it.
        let listed: Vec<Sandbox> = self
            .cache
            .iter()
            .filter(|(_, o)| o.owner == Owner::Pool)
            .map(|(name, o)| self.sandbox(name, o))
            .collect();
        let observed = Observed {
            pool: &self.pool,
            members: listed
                .iter()
                .map(|sandbox| Member { sandbox, pod: None })
                .collect(),
            template: Ok(Some(&self.template)),
        };
        let plan = pool::plan(
            &observed,
            &mut self.memory,
            &mut self.expectations,
            self.now,
            &self.config,
        );
        let mut creates = 0;
        for action in &plan.actions {
            match action {
                Action::Create { count, .. } => {
                    creates += count;
                    self.writes.extend((0..*count).map(|_| Write::Create));
                }
                Action::Delete {
                    name,
                    uid,
                    resource_version,
                } => self.writes.push(Write::Delete {
                    name: name.clone(),
                    uid: uid.clone(),
                    resource_version: resource_version.clone(),
                }),
                Action::Update(sandbox) => {
                    panic!("nothing in this model needs an update: {sandbox:?}")
                }
            }
        }
        if creates > 0 {
            assert!(
                self.members_and_pending_creates() <= self.target(),
                "a pass created {creates} with {} members or creates already there for a target of {}",
                self.members_and_pending_creates() - creates,
                self.target()
            );
            self.last_create_target = self.target();
        }
        plan
    }

    /// The API server answers write `index` (modulo the outstanding ones).
    fn answer(&mut self, index: usize, ok: bool) {
        if self.writes.is_empty() {
            return;
        }
        let write = self.writes.remove(index % self.writes.len());
        let key = self.key();
        match write {
            Write::Create if ok => {
                self.next += 1;
                let name = format!("pool-{:04}", self.next);
                let object = Object {
                    uid: format!("uid-{:04}", self.next),
                    resource_version: 1,
                    owner: Owner::Pool,
                    ready: false,
                    created: self.now,
                };
                self.server.insert(name.clone(), object);
                self.changed(&name);
                self.memory.replenish.note_creates(1);
            }
            Write::Create => self.expectations.lower_creations(&key, 1),
            Write::Delete {
                name,
                uid,
                resource_version,
            } => {
                // The API server checks both preconditions; a mismatch is a 409.
                let found = self.server.get(&name).is_some_and(|o| {
                    o.uid == uid && resource_version == Some(o.resource_version.to_string())
                });
                if ok && found {
                    assert_eq!(
                        self.server.get(&name).map(|o| o.owner),
                        Some(Owner::Pool),
                        "the pool deleted {name}, which a claim had adopted"
                    );
                    self.server.remove(&name);
                    self.changed(&name);
                } else {
                    // Refused or NotFound: no watch event will come, so observe it now.
                    self.expectations.deletion_observed(&key, &uid);
                }
            }
        }
    }

    /// The cache sees the next change of one object; the watch handler lowers expectations for
    /// changes of pool-controlled Sandboxes.
    fn observe(&mut self, index: usize) {
        let names: Vec<String> = self
            .unseen
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return;
        }
        let name = names[index % names.len()].clone();
        let change = self
            .unseen
            .get_mut(&name)
            .and_then(VecDeque::pop_front)
            .expect("a change is queued");
        let key = self.key();
        match change {
            Some(object) => {
                if !self.cache.contains_key(&name) && object.owner == Owner::Pool {
                    self.expectations.creation_observed(&key);
                }
                self.cache.insert(name, object);
            }
            None => {
                if let Some(gone) = self.cache.remove(&name)
                    && gone.owner == Owner::Pool
                {
                    self.expectations.deletion_observed(&key, &gone.uid);
                }
            }
        }
    }

    fn nth_member(&self, index: usize) -> Option<String> {
        let names: Vec<&String> = self
            .server
            .iter()
            .filter(|(_, o)| o.owner == Owner::Pool)
            .map(|(n, _)| n)
            .collect();
        (!names.is_empty()).then(|| names[index % names.len()].clone())
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Pass => {
                self.pass();
            }
            Event::Succeed(i) => self.answer(i, true),
            Event::Fail(i) => self.answer(i, false),
            Event::Observe(i) => self.observe(i),
            Event::Claim(i) => {
                if let Some(name) = self.nth_member(i) {
                    let member = self.server.get_mut(&name).expect("member");
                    member.owner = Owner::Claim;
                    member.resource_version += 1;
                    self.changed(&name);
                }
            }
            Event::BecomeReady(i) => {
                if let Some(name) = self.nth_member(i) {
                    let member = self.server.get_mut(&name).expect("member");
                    member.ready = true;
                    member.resource_version += 1;
                    self.changed(&name);
                }
            }
            Event::Resize(replicas) => self.pool.spec.replicas = Some(replicas as i32),
            Event::Tick(ms) => self.now += Duration::from_millis(ms),
        }
        let bound = self.target().max(self.last_create_target);
        assert!(
            self.members_and_pending_creates() <= bound,
            "{} members or pending creates, above {bound} after {event:?}",
            self.members_and_pending_creates()
        );
    }

    /// The API server answers every write, every Pod turns Ready and the cache catches up.
    /// Returns whether anything happened (each change is a watch event that runs another pass).
    fn settle(&mut self) -> bool {
        let mut happened = !self.writes.is_empty();
        while !self.writes.is_empty() {
            self.answer(0, true);
        }
        let names: Vec<String> = self.server.keys().cloned().collect();
        for name in names {
            let object = self.server.get_mut(&name).expect("listed");
            if !object.ready {
                object.ready = true;
                self.changed(&name);
            }
        }
        while self.unseen.values().any(|q| !q.is_empty()) {
            happened = true;
            self.observe(0);
        }
        happened
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_pool_never_overshoots_and_settles_at_its_target(
        replicas in 0u32..=6,
        config in config(),
        events in prop::collection::vec(event(), 0..80),
    ) {
        let mut world = World::new(replicas, config);
        for event in events {
            world.apply(event);
        }
        // Quiet from here: a pass runs on every watch event and at every requeue, nothing else.
        let mut settled = false;
        for _ in 0..200 {
            let plan = world.pass();
            prop_assert!(plan.error.is_none());
            let happened = world.settle();
            match plan.requeue_after {
                Some(after) => world.now += after,
                None if !happened => {
                    settled = true;
                    break;
                }
                None => {}
            }
        }
        prop_assert!(settled, "still busy after 200 passes");
        let target = world.target();
        let members = world.server.values().filter(|o| o.owner == Owner::Pool).count() as u32;
        prop_assert_eq!(members, target);
        let plan = world.pass();
        prop_assert_eq!(plan.actions, vec![]);
        prop_assert_eq!(plan.status.replicas as u32, target);
        prop_assert_eq!(plan.status.ready_replicas as u32, target);
    }
}
