//! Picking a warm candidate from the pool's adoption queue: verified members of the claim's pool,
//! not outdated under the Recreate strategy, Ready first, then networked.

use agent_sandbox_api::extensions::SandboxWarmPoolUpdateStrategyType;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate};

use super::state::Pass;
use crate::claim::adoption::verify_candidate;
use crate::claim::api::{Candidate, ClaimApi};
use crate::conditions::sandbox_is_ready;

/// What the strategy check of a pool resolved to (looked up once per pass).
enum Strategy {
    /// OnReplenish (or unset): stale candidates are adopted.
    Lenient,
    /// Recreate: candidates with an outdated blueprint are skipped.
    Recreate(Box<SandboxTemplate>),
    /// Could not tell: never adopt unverified.
    Unknown,
}

fn has_ips(sandbox: &Sandbox) -> bool {
    sandbox
        .status
        .as_ref()
        .is_some_and(|s| !s.pod_ips.is_empty())
}

fn strategy<A: ClaimApi>(pass: &Pass<'_, A>) -> Strategy {
    let Some(pool) = pass.api.cached_pool(&pass.claim.spec.warm_pool_ref.name) else {
        return Strategy::Unknown;
    };
    let recreate = pool.spec.update_strategy.as_ref().and_then(|s| s.type_)
        == Some(SandboxWarmPoolUpdateStrategyType::Recreate);
    if !recreate {
        return Strategy::Lenient;
    }
    match pass
        .api
        .cached_template(&pool.spec.sandbox_template_ref.name)
    {
        Some(template) => Strategy::Recreate(Box::new(template)),
        None => Strategy::Unknown,
    }
}

/// One pass over the pool's queue: the first Ready candidate, else the first networked one; how
/// many were skipped for lack of a Pod IP. Skipped live candidates go back to the queue's tail.
pub(super) fn candidate<A: ClaimApi>(pass: &Pass<'_, A>) -> (Option<Sandbox>, usize) {
    let pool = pass.claim.spec.warm_pool_ref.name.clone();
    let mut put_back: Vec<Candidate> = Vec::new();
    let mut fallback: Option<(Candidate, Sandbox)> = None;
    let mut pending = 0;
    let mut strategy_found = None;
    let chosen = loop {
        let Some(mut queued) = pass.api.pop_candidate(&pool) else {
            break None;
        };
        // Deleted, or no longer adoptable (adopted elsewhere): forget it.
        let Some(sandbox) = pass.api.cached_sandbox(&queued.name) else {
            continue;
        };
        if verify_candidate(&sandbox, &pass.claim).is_err() {
            continue;
        }
        match strategy_found.get_or_insert_with(|| strategy(pass)) {
            Strategy::Unknown => {
                pending += usize::from(!has_ips(&sandbox));
                put_back.push(queued);
                continue;
            }
            // The pool controller deletes it.
            Strategy::Recreate(template) if pass.api.outdated(template, &sandbox) => continue,
            _ => {}
        }
        if !has_ips(&sandbox) {
            if let Some(node) = node_name(&sandbox).filter(|n| !n.is_empty()) {
                queued.node_name = node;
            }
            pending += 1;
            put_back.push(queued);
            continue;
        }
        if sandbox_is_ready(&sandbox) {
            break Some(sandbox);
        }
        if fallback.is_none() {
            fallback = Some((queued, sandbox));
        } else {
            put_back.push(queued);
        }
    };
    let chosen = match chosen {
        Some(sandbox) => {
            put_back.extend(fallback.map(|(queued, _)| queued));
            Some(sandbox)
        }
        None => fallback.map(|(_, sandbox)| sandbox),
    };
    for queued in put_back {
        pass.api.push_candidate(&pool, queued);
    }
    (chosen, pending)
}

/// The node the Sandbox's Pod runs on, as its status says.
pub(super) fn node_name(sandbox: &Sandbox) -> Option<String> {
    sandbox.status.as_ref().map(|s| s.node_name.clone())
}
