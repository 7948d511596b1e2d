//! What the pool controller observed, and the pool's key.

use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use k8s_openapi::api::core::v1::Pod;

/// One pool member and its backing Pod, if the cache has it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The member Sandbox.
    pub sandbox: &'a Sandbox,
    /// Its Pod (named like the Sandbox).
    pub pod: Option<&'a Pod>,
}

/// What the pool controller observed.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The pool.
    pub pool: &'a SandboxWarmPool,
    /// Sandboxes in its namespace labelled with its name hash.
    pub members: Vec<Member<'a>>,
    /// The referenced template: `Ok(None)` when it does not exist, `Err` when it could not be read.
    pub template: Result<Option<&'a SandboxTemplate>, String>,
}

/// The pool's key in [`crate::expectations::Expectations`] (`<namespace>/<name>`): the watch
/// handler lowers expectations under the same key.
pub fn key(pool: &SandboxWarmPool) -> String {
    format!(
        "{}/{}",
        pool.metadata.namespace.as_deref().unwrap_or_default(),
        pool.metadata.name.as_deref().unwrap_or_default()
    )
}
