//! The in-memory adoption queue: per pool, the warm Sandboxes that became adoptable, oldest first, with
//! the node-spread pick that spreads claims across nodes.

use std::collections::{BTreeMap, VecDeque};

use agent_sandbox_core::claim::api::Candidate;

/// Queues keyed by `<namespace>/<pool>`.
#[derive(Clone, Debug, Default)]
pub struct AdoptionQueue {
    pools: BTreeMap<String, VecDeque<Candidate>>,
}

impl AdoptionQueue {
    /// Appends a candidate, or updates its node in place if it is already queued.
    pub fn add(&mut self, pool: &str, candidate: Candidate) {
        let queue = self.pools.entry(pool.to_owned()).or_default();
        match queue.iter_mut().find(|c| c.name == candidate.name) {
            Some(existing) => existing.node_name = candidate.node_name,
            None => queue.push_back(candidate),
        }
    }

    /// Removes a candidate (it was deleted or adopted elsewhere).
    pub fn remove(&mut self, pool: &str, name: &str) {
        if let Some(queue) = self.pools.get_mut(pool) {
            queue.retain(|c| c.name != name);
        }
    }

    /// Drops a deleted pool's queue.
    pub fn remove_pool(&mut self, pool: &str) {
        self.pools.remove(pool);
    }

    /// Number of queued candidates of a pool.
    pub fn len(&self, pool: &str) -> usize {
        self.pools.get(pool).map_or(0, VecDeque::len)
    }

    /// True when the pool has no queued candidate.
    pub fn is_empty(&self, pool: &str) -> bool {
        self.len(pool) == 0
    }

    /// Pops the node-spread choice for a pool.
    pub fn pop_node_spread(&mut self, pool: &str) -> Option<Candidate> {
        let queue = self.pools.get_mut(pool)?;
        let index = node_spread(queue.make_contiguous())?;
        queue.remove(index)
    }
}

/// The node-spread pick: among scheduled candidates, the oldest on the node with the most candidates
/// left (so claims drain crowded nodes first); without scheduled ones, the oldest.
pub fn node_spread(candidates: &[Candidate]) -> Option<usize> {
    if candidates.len() <= 1 {
        return (!candidates.is_empty()).then_some(0);
    }
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates.iter().filter(|c| !c.node_name.is_empty()) {
        *per_node.entry(c.node_name.as_str()).or_default() += 1;
    }
    let Some(most) = per_node.values().copied().max() else {
        return Some(0);
    };
    candidates
        .iter()
        .position(|c| per_node.get(c.node_name.as_str()) == Some(&most))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, node: &str) -> Candidate {
        Candidate {
            name: name.into(),
            node_name: node.into(),
        }
    }

    /// A queue for pool `ns/p` holding `(name, node)` candidates in order.
    fn queue(candidates: &[(&str, &str)]) -> AdoptionQueue {
        let mut q = AdoptionQueue::default();
        for (name, node) in candidates {
            q.add("ns/p", c(name, node));
        }
        q
    }

    /// The names in the order the queue hands them out.
    fn drain(mut q: AdoptionQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop_node_spread("ns/p").map(|c| c.name)).collect()
    }

    #[test]
    fn add_dedups_and_updates_the_node_in_place() {
        let mut q = AdoptionQueue::default();
        q.add("ns/p", c("a", ""));
        q.add("ns/p", c("b", ""));
        q.add("ns/p", c("a", "n1"));
        assert_eq!(q.len("ns/p"), 2);
        assert_eq!(
            q.pop_node_spread("ns/p"),
            Some(c("a", "n1")),
            "position kept, node updated"
        );
    }

    #[test]
    fn node_spread_prefers_the_most_crowded_node_then_age() {
        let list = [c("a", "n1"), c("b", "n2"), c("c", "n2"), c("d", "")];
        assert_eq!(node_spread(&list), Some(1));
        let tie = [c("a", "n1"), c("b", "n2")];
        assert_eq!(node_spread(&tie), Some(0), "ties go to the oldest");
        let unscheduled = [c("a", ""), c("b", "")];
        assert_eq!(node_spread(&unscheduled), Some(0));
        assert_eq!(node_spread(&[]), None);
    }

    #[test]
    fn removal_and_pool_isolation() {
        let mut q = AdoptionQueue::default();
        q.add("ns/p", c("a", ""));
        q.add("ns/q", c("b", ""));
        q.remove("ns/p", "a");
        assert!(q.is_empty("ns/p"));
        assert_eq!(q.len("ns/q"), 1);
        q.remove_pool("ns/q");
        assert!(q.is_empty("ns/q"));
        assert_eq!(
            q.pop_node_spread("p"),
            None,
            "an un-namespaced pool name never matches"
        );
    }

    #[test]
    fn draining_spreads_across_nodes() {
        let order = drain(queue(&[("a", "n1"), ("b", "n1"), ("c", "n1"), ("d", "n2")]));
        assert_eq!(
            order,
            ["a", "b", "c", "d"].map(String::from),
            "n1 has the most until it ties with n2"
        );
    }

    #[test]
    fn candidates_on_distinct_nodes_come_out_oldest_first_and_the_rest_keep_their_order() {
        let mut q = queue(&[("a", "n1"), ("b", "n2"), ("c", "n3")]);
        assert_eq!(q.pop_node_spread("ns/p").map(|c| c.name), Some("a".into()));
        let order = drain(queue(&[("a", "n1"), ("b", "n2"), ("c", "n1"), ("d", "")]));
        assert_eq!(
            order,
            ["a", "b", "c", "d"].map(String::from),
            "n1 first, then the tie goes to the oldest, unscheduled last"
        );
    }
}
