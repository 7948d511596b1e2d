//! What configures the pool decision, and what a pool remembers between passes.

use std::time::Duration;

use crate::member::MemberConfig;
use crate::refill::Bucket;
use crate::replenish::Replenish;

/// Settings of the warm-pool controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// A member not Ready after this long is replaced (unless it is unschedulable).
    pub readiness_grace: Duration,
    /// How often to look again while holding unschedulable members.
    pub unschedulable_recheck: Duration,
    /// Most creates or deletes in one pass.
    pub max_batch: u32,
    /// Wait this long after members drop before refilling (zero: refill at once).
    pub replenish_delay: Duration,
    /// Creates per second per pool (zero or less: unlimited).
    pub max_refill_rate: f64,
    /// How members are built.
    pub member: MemberConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            readiness_grace: Duration::from_secs(300),
            unschedulable_recheck: Duration::from_secs(60),
            max_batch: 300,
            replenish_delay: Duration::ZERO,
            max_refill_rate: 0.0,
            member: MemberConfig::default(),
        }
    }
}

/// What a pool remembers between passes (in memory; a restart starts afresh by design).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Replenish-delay state.
    pub replenish: Replenish,
    /// Refill token bucket, when a rate is set.
    pub bucket: Option<Bucket>,
    /// Whether the last pass reported the pool as not progressing.
    pub not_progressing: bool,
}
