//! One pass of the SandboxWarmPool controller: classify members, replace stuck or stale ones, size the
//! pool (create or trim) without over-creating, and compute the status. [`plan`] runs the phases in
//! order; each phase is a module that returns its writes and waits.

mod config;
mod decision;
mod members;
mod observed;
mod plan;
mod progress;
mod sizing;

pub use config::{Config, Memory};
pub use decision::{Action, Plan};
pub use observed::{Member, Observed, key};
pub use plan::plan;

#[cfg(test)]
mod tests;
