//! Unit tests of the Sandbox decision, one per line of the upstream checklist (controllers.md §11.1),
//! driven through `plan`/`finish` against an in-memory world.

mod conditions;
mod expiry;
mod pods;
mod pvcs;
mod reconcile;
mod services;
mod world;
