//! `migrate-storage`: moves a cluster that still stores (or served) v1alpha1 objects to the upstream 1.0
//! shape — every object stored at v1beta1, `status.storedVersions` pruned to `["v1beta1"]`, the CRDs
//! serving v1beta1 alone with no conversion webhook — without losing anything on the way.
//!
//! Dry-run by default ([`Options::apply`] off): it reports what it would do, per CRD and per kind and
//! namespace, and checks every object with a server-side dry-run write. It refuses, naming the object
//! and field, when an object cannot be stored at v1beta1, and then changes nothing. Each step is derived
//! from the cluster's state ([`plan`]), so a second run after a crash continues where the first stopped
//! and a run after a complete migration has nothing to do.
//!
//! ```no_run
//! # async fn migrate() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! // Dry run: report what would happen, one line per step; `apply: true` does it.
//! let options = agent_sandbox_migrate::Options { apply: false };
//! agent_sandbox_migrate::run(&client, options, &mut |line| println!("{line}")).await?;
//! # Ok(()) }
//! ```

mod check;
mod kinds;
pub mod plan;
mod run;
mod summary;

pub use check::Problem;
pub use kinds::{KINDS, Kind};
pub use run::{MigrateError, Options, Outcome, run};
pub use summary::Summary;
