//! What a claim pass may read and write, as a trait: the adapter implements it over watch caches and
//! the API server, the unit tests over an in-memory server with resourceVersion conflicts.
//!
//! Cached reads are synchronous (they are in-memory snapshots); writes and the uncached reads that
//! resolve conflicts return futures. A pass is therefore a plain coroutine over this trait: the
//! compiler turns it into the step-by-step state machine a sans-I/O design would write by hand.

use std::future::Future;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};

/// Why an API call failed, as far as the claim decisions care.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist (or no longer has the UID the call was guarded on).
    #[error("not found")]
    NotFound,
    /// An optimistic-lock (resourceVersion) conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A create found the name taken.
    #[error("already exists")]
    AlreadyExists,
    /// Anything else, with the server's or transport's message.
    #[error("{0}")]
    Other(String),
}

/// A warm Sandbox waiting in a pool's adoption queue. The queue is per pool, and a pool's members
/// share its namespace, so the name alone identifies the Sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The Sandbox's name (in the pool's namespace).
    pub name: String,
    /// The node its Pod runs on, once known.
    pub node_name: String,
}

/// The reads and writes of one claim pass, all in the claim's namespace and about the claim being
/// reconciled. Merge patches carry `metadata.resourceVersion` when they must be optimistically locked.
pub trait ClaimApi {
    /// The cached Sandbox of that name.
    fn cached_sandbox(&self, name: &str) -> Option<Sandbox>;
    /// The cached SandboxWarmPool of that name.
    fn cached_pool(&self, name: &str) -> Option<SandboxWarmPool>;
    /// The cached SandboxTemplate of that name.
    fn cached_template(&self, name: &str) -> Option<SandboxTemplate>;
    /// Takes the node-spread choice out of the pool's adoption queue.
    fn pop_candidate(&self, pool: &str) -> Option<Candidate>;
    /// Puts a candidate back at the tail of the pool's adoption queue.
    fn push_candidate(&self, pool: &str, candidate: Candidate);
    /// True when a warm Sandbox was built from an older blueprint than the template's (hash label
    /// mismatch and a semantically different blueprint).
    fn outdated(&self, template: &SandboxTemplate, sandbox: &Sandbox) -> bool;
    /// True when a Sandbox of that name may exist although the cache does not show it: this process
    /// created it and the cache has not caught up. Every other Sandbox is in the cache once it has
    /// listed (the controller lists after a restart or a leader hand-over, and the old leader's
    /// creates end before it releases the lease), so a cache miss for it needs no API read.
    fn created_unseen(&self, name: &str) -> bool;

    /// Reads the claim from the API server (not the cache).
    fn read_claim(&self) -> impl Future<Output = Result<SandboxClaim, ApiError>> + Send;
    /// Reads a Sandbox from the API server (not the cache).
    fn read_sandbox(&self, name: &str) -> impl Future<Output = Result<Sandbox, ApiError>> + Send;
    /// Merge-patches the claim's metadata; returns the claim as written.
    fn patch_claim(
        &self,
        patch: serde_json::Value,
    ) -> impl Future<Output = Result<SandboxClaim, ApiError>> + Send;
    /// Merge-patches the claim's status subresource.
    fn patch_claim_status(
        &self,
        patch: serde_json::Value,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Deletes the claim (foreground propagation when asked).
    fn delete_claim(&self, foreground: bool) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Merge-patches a Sandbox; returns it as written.
    fn patch_sandbox(
        &self,
        name: &str,
        patch: serde_json::Value,
    ) -> impl Future<Output = Result<Sandbox, ApiError>> + Send;
    /// Creates a Sandbox; returns it as written.
    fn create_sandbox(
        &self,
        sandbox: Sandbox,
    ) -> impl Future<Output = Result<Sandbox, ApiError>> + Send;
    /// Deletes a Sandbox if it still has `uid`.
    fn delete_sandbox(
        &self,
        name: &str,
        uid: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
