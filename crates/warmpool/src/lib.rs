//! Pure warm-pool logic: how many Sandboxes to create or delete, without over-creating while earlier
//! writes are not yet visible, at what rate, and which members are stale. Time is always passed in.

pub mod expectations;
pub mod member;
pub mod pool;
pub mod queue;
pub mod refill;
pub mod replenish;
pub mod staleness;

pub use k8s_openapi::jiff::Timestamp;
