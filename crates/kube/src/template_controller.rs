//! The SandboxTemplate controller: the template hash label and the managed NetworkPolicy.
//!
//! Triggers: every template change (shared template feed) and every change of a NetworkPolicy that
//! a template controls or whose name is a template's reserved policy name (`<template>-network-policy`),
//! so a foreign policy that goes away lets the template create its own at once.

use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_api::keys::EXTENSIONS_GROUP;
use agent_sandbox_api::v1beta1::SandboxTemplate;
use agent_sandbox_core::events::{Event, EventType};
use agent_sandbox_core::ownership::{FIELD_MANAGER, controller_of};
use agent_sandbox_core::template::{Action, Observed, network_policy_name, plan};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action as Requeue};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use crate::Error;
use crate::cache::strip_managed_fields;
use crate::events::EventPublisher;
use crate::executor::{failure_message, is_not_found, with_uid};
use crate::extensions::{ExtensionContext, ExtensionSettings};
use crate::feed::Change;
use crate::metrics::Metrics;
use crate::retry::Failures;

/// Event reason: the template's policy name is taken by a NetworkPolicy it does not control.
pub const NETWORK_POLICY_CONFLICT: &str = "NetworkPolicyConflict";
/// Suffix of a template's NetworkPolicy name.
const POLICY_SUFFIX: &str = "-network-policy";
/// How soon to look again after a write lost a race (a stale cache or a concurrent writer).
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// The SandboxTemplate controller, subscribed to its triggers.
pub struct TemplateController {
    context: ExtensionContext,
    workers: u16,
    templates: mpsc::UnboundedReceiver<Change<SandboxTemplate>>,
}

struct Context {
    client: Client,
    policies: Store<NetworkPolicy>,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    failures: Failures<SandboxTemplate>,
}

impl TemplateController {
    /// Subscribes to the changes it reacts to.
    pub fn new(context: &ExtensionContext, settings: &ExtensionSettings) -> Self {
        Self {
            context: context.clone(),
            workers: settings.template_workers,
            templates: context.templates.feed.subscribe(),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let shutdown = shutdown.shared();
        let client = self.context.client.clone();
        let writer = reflector::store::Writer::<NetworkPolicy>::default();
        let policies = writer.as_reader();
        let (triggers, policy_events) = mpsc::unbounded();
        let watch = spawn_policy_watch(&client, writer, triggers);

        let synced = async {
            self.context.templates.wait_synced().await;
            policies.wait_until_ready().await.is_ok()
        };
        let ready = tokio::select! {
            ready = synced => ready,
            () = shutdown.clone() => false,
        };
        if ready {
            tracing::info!("template controller started");
            let context = Arc::new(Context {
                events: EventPublisher::new(client.clone(), self.context.identity.clone()),
                client,
                policies,
                metrics: self.context.metrics.clone(),
                failures: Failures::default(),
            });
            let templates = self.templates.filter_map(|change| async move {
                match change {
                    Change::Applied(template) => Some(Ok(template.as_ref().clone())),
                    Change::Deleted(_) => None,
                }
            });
            crate::retry::drain(
                Controller::for_stream(templates, self.context.templates.store.clone())
                    .reconcile_on(policy_events)
                    .with_config(controller::Config::default().concurrency(self.workers))
                    .graceful_shutdown_on(shutdown)
                    .run(reconcile, error_policy, context),
                "template",
            )
            .await;
        }
        watch.abort();
        tracing::info!("template controller stopped");
    }
}

/// The templates a NetworkPolicy change concerns: its controlling template, and the template whose
/// reserved policy name it carries.
pub fn templates_of(policy: &NetworkPolicy) -> Vec<ObjectRef<SandboxTemplate>> {
    let namespace = policy.namespace().unwrap_or_default();
    let mut names = Vec::new();
    if let Some(owner) = controller_of(&policy.metadata, EXTENSIONS_GROUP, "SandboxTemplate") {
        names.push(owner.name.clone());
    }
    if let Some(template) = policy.name_any().strip_suffix(POLICY_SUFFIX)
        && !template.is_empty()
        && !names.iter().any(|name| name == template)
    {
        names.push(template.to_owned());
    }
    names
        .into_iter()
        .map(|name| ObjectRef::new(&name).within(&namespace))
        .collect()
}

fn spawn_policy_watch(
    client: &Client,
    writer: reflector::store::Writer<NetworkPolicy>,
    triggers: mpsc::UnboundedSender<ObjectRef<SandboxTemplate>>,
) -> tokio::task::JoinHandle<()> {
    let stream = watcher(
        Api::<NetworkPolicy>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(strip_managed_fields::<NetworkPolicy>)
    .reflect(writer)
    .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(policy) => {
                    for template in templates_of(&policy) {
                        if triggers.unbounded_send(template).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "NetworkPolicy watch failed; retrying with backoff");
                }
            }
        }
    })
}

/// The outcome of one write.
enum Written {
    /// Done (or nothing left to do).
    Done,
    /// Lost a race with another writer or a stale cache: look again soon.
    Raced,
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::PatchTemplate { .. } => "patch_template",
        Action::CreateNetworkPolicy(_) => "create_network_policy",
        Action::ReplaceNetworkPolicy(_) => "replace_network_policy",
        Action::DeleteNetworkPolicy { .. } => "delete_network_policy",
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

async fn execute(
    client: &Client,
    template: &SandboxTemplate,
    action: &Action,
) -> Result<Written, kube::Error> {
    let namespace = template.namespace().unwrap_or_default();
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let post = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let result = match action {
        Action::PatchTemplate { patch } => {
            let templates: Api<SandboxTemplate> = Api::namespaced(client.clone(), &namespace);
            let uid = template.uid().unwrap_or_default();
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            templates
                .patch(
                    &template.name_any(),
                    &params,
                    &Patch::Merge(with_uid(patch, &uid)),
                )
                .await
                .map(drop)
        }
        Action::CreateNetworkPolicy(policy) => policies.create(&post, policy).await.map(drop),
        Action::ReplaceNetworkPolicy(policy) => policies
            .replace(&policy.name_any(), &post, policy)
            .await
            .map(drop),
        Action::DeleteNetworkPolicy { name, uid } => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            policies.delete(name, &params).await.map(drop)
        }
    };
    match result {
        Ok(()) => Ok(Written::Done),
        // A deleted policy or template needs nothing more; a replaced one is looked at again.
        Err(error) if is_not_found(&error) => Ok(match action {
            Action::ReplaceNetworkPolicy(_) => Written::Raced,
            _ => Written::Done,
        }),
        Err(error) if is_conflict(&error) => Ok(Written::Raced),
        Err(error) => Err(error),
    }
}

async fn reconcile(
    template: Arc<SandboxTemplate>,
    context: Arc<Context>,
) -> Result<Requeue, Error> {
    let span = tracing::info_span!(
        "reconcile_template",
        template.namespace = %template.namespace().unwrap_or_default(),
        template.name = %template.name_any(),
    );
    let result = reconcile_pass(&template, &context).instrument(span).await;
    if result.is_ok() {
        context.failures.reset(&template);
    }
    result
}

async fn reconcile_pass(template: &SandboxTemplate, context: &Context) -> Result<Requeue, Error> {
    let name = network_policy_name(&template.name_any());
    let policy = context
        .policies
        .get(&ObjectRef::new(&name).within(&template.namespace().unwrap_or_default()));
    let plan = plan(&Observed {
        template,
        network_policy: policy.as_deref(),
    });
    let mut errors = Vec::new();
    let mut raced = false;
    for action in &plan.actions {
        let result = execute(&context.client, template, action).await;
        context.metrics.action(action_name(action), result.is_ok());
        match result {
            Ok(Written::Done) => {}
            Ok(Written::Raced) => raced = true,
            Err(error) => errors.push(format!(
                "{}: {}",
                action_name(action),
                failure_message(&error)
            )),
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
        context.events.publish(template, &[event]).await;
        errors.push(error);
    }
    if !errors.is_empty() {
        let message = errors.join("; ");
        tracing::info!(error = %message, "template reconcile failed");
        return Err(Error::Reconcile(message));
    }
    Ok(if raced {
        Requeue::requeue(CONFLICT_RETRY)
    } else {
        Requeue::await_change()
    })
}

fn error_policy(template: Arc<SandboxTemplate>, _error: &Error, context: Arc<Context>) -> Requeue {
    Requeue::requeue(context.failures.failed(&template))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn policy(name: &str, owner: Option<(&str, &str, &str)>) -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                owner_references: owner.map(|(api_version, kind, owner)| {
                    vec![OwnerReference {
                        api_version: api_version.into(),
                        kind: kind.into(),
                        name: owner.into(),
                        uid: "u".into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..NetworkPolicy::default()
        }
    }

    fn names(refs: Vec<ObjectRef<SandboxTemplate>>) -> Vec<(String, Option<String>)> {
        refs.into_iter().map(|r| (r.name, r.namespace)).collect()
    }

    #[test]
    fn a_policy_triggers_its_controller_and_the_template_owning_its_name() {
        let ns = Some("ns".to_owned());
        let owned = policy(
            "py-network-policy",
            Some((
                "extensions.agents.x-k8s.io/v1beta1",
                "SandboxTemplate",
                "py",
            )),
        );
        assert_eq!(names(templates_of(&owned)), vec![("py".into(), ns.clone())]);
        let renamed = policy(
            "custom",
            Some((
                "extensions.agents.x-k8s.io/v1alpha1",
                "SandboxTemplate",
                "py",
            )),
        );
        assert_eq!(
            names(templates_of(&renamed)),
            vec![("py".into(), ns.clone())]
        );
        let foreign = policy("py-network-policy", Some(("apps/v1", "Deployment", "d")));
        assert_eq!(names(templates_of(&foreign)), vec![("py".into(), ns)]);
        assert!(templates_of(&policy("unrelated", None)).is_empty());
        assert!(templates_of(&policy("-network-policy", None)).is_empty());
    }
}
