//! Prometheus metrics: the registry every controller writes to, the Sandbox gauge and latency, and
//! the claim metrics.

pub mod claims;
pub mod registry;
pub mod sandboxes;

pub use registry::{Metrics, encode};
