//! One SandboxClaim pass ([`reconcile`]): observability stamps, the two-pass expiry, finding or
//! adopting or creating the claim's Sandbox, its status, first-Ready bookkeeping, and how the outcome
//! is retried. Each step is a module; the pass state they share lives in `state`.

mod active;
mod adopt;
mod expire;
mod find;
mod finish;
mod outcome;
mod pick;
mod run;
mod state;
mod sync;

pub use outcome::{Outcome, Served, Settings};
pub use run::reconcile;
