//! Property tests of the adoption queue: a Sandbox is handed out at most once until it is queued
//! again, a key is queued at most once, and each pop is the node-spread choice.

use std::collections::{BTreeMap, BTreeSet};

use agent_sandbox_core::claim::api::Candidate;
use agent_sandbox_warmpool::queue::AdoptionQueue;
use proptest::prelude::*;

const POOLS: [&str; 2] = ["ns/a", "ns/b"];

#[derive(Clone, Debug)]
enum Op {
    /// A Sandbox became adoptable (or its node changed): `(pool, sandbox, node)`; node 0 is unscheduled.
    Add(usize, u8, u8),
    /// A Sandbox was deleted.
    Remove(usize, u8),
    /// A claim takes the node-spread choice.
    Pop(usize),
    /// A pool was deleted.
    RemovePool(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..POOLS.len(), 0u8..8, 0u8..4).prop_map(|(p, s, n)| Op::Add(p, s, n)),
        1 => (0..POOLS.len(), 0u8..8).prop_map(|(p, s)| Op::Remove(p, s)),
        4 => (0..POOLS.len()).prop_map(Op::Pop),
        1 => (0..POOLS.len()).prop_map(Op::RemovePool),
    ]
}

fn candidate(sandbox: u8, node: u8) -> Candidate {
    Candidate {
        name: format!("sb-{sandbox}"),
        node_name: if node == 0 {
            String::new()
        } else {
            format!("node-{node}")
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sandboxes_are_handed_out_once_and_queued_once(ops in prop::collection::vec(op(), 0..120)) {
        let mut queue = AdoptionQueue::default();
        // The model: per pool, the queued candidates in order, and what was handed out since last queued.
        let mut queued: BTreeMap<&str, Vec<Candidate>> = BTreeMap::new();
        let mut handed_out: BTreeSet<(&str, String)> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Add(p, s, n) => {
                    let (pool, new) = (POOLS[p], candidate(s, n));
                    let list = queued.entry(pool).or_default();
                    match list.iter_mut().find(|c| c.name == new.name) {
                        Some(existing) => existing.node_name = new.node_name.clone(),
                        None => list.push(new.clone()),
                    }
                    handed_out.remove(&(pool, new.name.clone()));
                    queue.add(pool, new);
                }
                Op::Remove(p, s) => {
                    let name = candidate(s, 0).name;
                    queued.entry(POOLS[p]).or_default().retain(|c| c.name != name);
                    queue.remove(POOLS[p], &name);
                }
                Op::Pop(p) => {
                    let pool = POOLS[p];
                    let list = queued.entry(pool).or_default();
                    let popped = queue.pop_node_spread(pool);
                    let Some(popped) = popped else {
                        prop_assert!(list.is_empty(), "nothing popped from {list:?}");
                        continue;
                    };
                    prop_assert!(
                        handed_out.insert((pool, popped.name.clone())),
                        "{} handed out twice", popped.name
                    );
                    let index = list.iter().position(|c| *c == popped);
                    prop_assert!(index.is_some(), "{popped:?} was not queued: {list:?}");
                    let index = index.unwrap_or_default();
                    // Node spread, derived independently: the oldest candidate on a node with the most
                    // candidates; without scheduled candidates, the oldest.
                    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
                    for c in list.iter().filter(|c| !c.node_name.is_empty()) {
                        *per_node.entry(&c.node_name).or_default() += 1;
                    }
                    let expected = match per_node.values().max() {
                        Some(most) => list
                            .iter()
                            .position(|c| per_node.get(c.node_name.as_str()) == Some(most)),
                        None => Some(0),
                    };
                    if list.len() == 1 {
                        prop_assert_eq!(index, 0);
                    } else {
                        prop_assert_eq!(Some(index), expected, "from {:?}", list);
                    }
                    list.remove(index);
                }
                Op::RemovePool(p) => {
                    queued.remove(POOLS[p]);
                    queue.remove_pool(POOLS[p]);
                }
            }
            for pool in POOLS {
                let list = queued.get(pool).map(Vec::as_slice).unwrap_or_default();
                prop_assert_eq!(queue.len(pool), list.len(), "one entry per key in {}", pool);
            }
        }
    }
}
