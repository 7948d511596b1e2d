//! The scenarios (docs/benchmarks.md), the objects they create and the phase runner they share.

pub mod claims;
pub mod cold;
pub mod exec;
mod objects;
mod phase;
pub mod refill;
pub mod scale;
