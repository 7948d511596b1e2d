//! The SandboxWarmPool controller: every pool change, and every Sandbox or template change that
//! concerns a pool, runs a [`PoolPass`].

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use crate::controllers::extensions::{ExtensionContext, ExtensionSettings};
use crate::controllers::pool::pass::PoolPass;
use crate::controllers::pool::state::State;
use crate::controllers::pool::triggers::triggers;
use crate::controllers::pool::writes::PoolWrites;
use crate::runtime::control_loop::ControlLoop;
use crate::runtime::events::EventPublisher;
use crate::runtime::writes::Writer;

/// The SandboxWarmPool controller, subscribed to its triggers.
pub struct WarmPoolController {
    context: ExtensionContext,
    control: ControlLoop<PoolPass>,
}

impl WarmPoolController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        let state = Arc::new(State::default());
        let control = ControlLoop {
            reconciler: PoolPass {
                config: settings.pool.clone(),
                sandboxes: context.sandboxes.clone(),
                pods: context.pods.clone(),
                templates: context.templates.store.clone(),
                writes: PoolWrites {
                    writer: Writer::new(context.client.clone()),
                    metrics: context.metrics.clone(),
                    state: state.clone(),
                },
                events: EventPublisher::new(context.client.clone(), context.identity.clone()),
            },
            cache: context.pools.clone(),
            changes: context.pools.feed.subscribe(),
            triggers: triggers(
                state,
                context.sandbox_feed.subscribe(),
                (
                    context.templates.feed.subscribe(),
                    context.pools.store.clone(),
                ),
            ),
            workers: settings.pool_workers,
            metrics: context.metrics.clone(),
        };
        Self {
            context: context.clone(),
            control,
        }
    }

    /// Runs until `shutdown` completes; passes start once every cache has listed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let shutdown = shutdown.shared();
        tokio::select! {
            () = self.context.wait_synced() => {}
            () = shutdown.clone() => return,
        }
        tracing::info!("warm pool controller started");
        self.control.run(shutdown).await;
    }
}
