//! One template pass: plan the hash label and the managed NetworkPolicy from the caches, write, and
//! report a policy name taken by a NetworkPolicy the template does not control.

use std::sync::Arc;

use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_core::events::{Event, EventType};
use agent_sandbox_core::template::{Observed, network_policy_name, plan};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controllers::template::writes::{action_name, execute};
use crate::metrics::Metrics;
use crate::runtime::control_loop::Reconcile;
use crate::runtime::error::Error;
use crate::runtime::events::EventPublisher;
use crate::runtime::writes::Writer;

/// Event reason: the template's policy name is taken by a NetworkPolicy it does not control.
pub const NETWORK_POLICY_CONFLICT: &str = "NetworkPolicyConflict";

/// What every template pass shares.
pub struct TemplatePass {
    /// Writes as the controllers' field manager.
    pub writer: Writer,
    /// NetworkPolicies.
    pub policies: Store<NetworkPolicy>,
    /// Events about templates.
    pub events: EventPublisher,
    /// Action counters.
    pub metrics: Arc<Metrics>,
}

impl Reconcile for TemplatePass {
    type Object = SandboxTemplate;
    const NAME: &'static str = "template";

    async fn reconcile(&self, template: Arc<SandboxTemplate>) -> Result<Action, Error> {
        let name = network_policy_name(&template.name_any());
        let policy = self
            .policies
            .get(&ObjectRef::new(&name).within(&template.namespace().unwrap_or_default()));
        let plan = plan(&Observed {
            template: &template,
            network_policy: policy.as_deref(),
        });
        let mut errors = Vec::new();
        for action in &plan.actions {
            let result = execute(&self.writer, &template, action).await;
            self.metrics.action(action_name(action), result.is_ok());
            if let Err(error) = result {
                errors.push(Error::api(action_name(action), error));
            }
        }
        if let Some(error) = plan.error {
            tracing::warn!(%error, "not overwriting a NetworkPolicy the template does not control");
            let event = Event {
                type_: EventType::Warning,
                reason: NETWORK_POLICY_CONFLICT,
                action: "Reconciling",
                note: error.clone(),
            };
            self.events.publish(template.as_ref(), &[event]).await;
            errors.push(Error::blocked(error));
        }
        match Error::join(errors) {
            Some(error) => Err(error),
            None => Ok(Action::await_change()),
        }
    }
}
