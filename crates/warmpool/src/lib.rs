//! Pure warm-pool logic: how many Sandboxes to create or delete, without over-creating while earlier
//! writes are not yet visible, at what rate, and which members are stale. Time is always passed in.
//!
//! ```
//! // Members are created in doubling batches, so a failing API costs one call, not a hundred.
//! assert_eq!(agent_sandbox_warmpool::member::slow_start_batches(10), [1, 2, 4, 3]);
//! ```

pub mod expectations;
pub mod member;
pub mod pool;
pub mod queue;
pub mod refill;
pub mod replenish;
pub mod staleness;

pub use k8s_openapi::jiff::Timestamp;
