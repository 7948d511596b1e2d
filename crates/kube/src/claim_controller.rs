//! The SandboxClaim controller: binds each claim to a warm or cold Sandbox and mirrors its status.

use crate::extensions::{ExtensionContext, ExtensionSettings};

/// The SandboxClaim controller, subscribed to its triggers.
pub struct ClaimController {
    context: ExtensionContext,
}

impl ClaimController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, _settings: &ExtensionSettings) -> Self {
        Self {
            context: context.clone(),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        self.context.wait_synced().await;
        shutdown.await;
    }
}
