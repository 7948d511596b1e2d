//! The scenarios (docs/benchmarks.md), the objects they create and the phase runner they share.

pub mod claims;
pub mod cold;
mod objects;
mod phase;
pub mod refill;
pub mod scale;
