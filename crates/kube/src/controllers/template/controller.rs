//! The SandboxTemplate controller: every template change, and every change of a NetworkPolicy that
//! concerns a template, runs a [`TemplatePass`].

use std::future::Future;

use futures::FutureExt;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;

use crate::controllers::extensions::{ExtensionContext, ExtensionSettings};
use crate::controllers::template::pass::TemplatePass;
use crate::controllers::template::triggers::policy_triggers;
use crate::runtime::control_loop::ControlLoop;
use crate::runtime::events::EventPublisher;
use crate::runtime::watch::Watch;
use crate::runtime::writes::Writer;

/// The SandboxTemplate controller, subscribed to its triggers.
pub struct TemplateController {
    context: ExtensionContext,
    policies: Watch<NetworkPolicy>,
    control: ControlLoop<TemplatePass>,
}

impl TemplateController {
    /// Subscribes to the changes it reacts to; only this controller reads NetworkPolicies, so it
    /// starts their watch itself.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        let policies = Watch::<NetworkPolicy>::default();
        let control = ControlLoop {
            reconciler: TemplatePass {
                writer: Writer::new(context.client.clone()),
                policies: policies.cache().store.clone(),
                events: EventPublisher::new(context.client.clone(), context.identity.clone()),
                metrics: context.metrics.clone(),
            },
            cache: context.templates.clone(),
            changes: context.templates.feed.subscribe(),
            triggers: policy_triggers(policies.cache()),
            workers: settings.template_workers,
            metrics: context.metrics.clone(),
        };
        Self {
            context: context.clone(),
            policies,
            control,
        }
    }

    /// Runs until `shutdown` completes; passes start once the templates and policies have listed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let shutdown = shutdown.shared();
        let synced = self.policies.cache().clone();
        let watch = self
            .policies
            .spawn(Api::<NetworkPolicy>::all(self.context.client.clone()));
        let ready = async {
            self.context.templates.wait_synced().await;
            synced.wait_synced().await;
        };
        tokio::select! {
            () = ready => {
                tracing::info!("template controller started");
                self.control.run(shutdown).await;
            }
            () = shutdown.clone() => {}
        }
        watch.abort();
    }
}
