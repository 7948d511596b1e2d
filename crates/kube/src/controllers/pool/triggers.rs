//! What wakes a pool besides its own changes: a Sandbox change, mapped by the [`State`] to the
//! controlling pool (and to the pool that controlled it before, when a claim took it over) after the
//! expectations were updated; and a template change, mapped to every pool of the namespace that
//! references the template.

use std::sync::Arc;

use agent_sandbox_api::v1beta1::{Sandbox, SandboxTemplate, SandboxWarmPool};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use futures::stream::{self, BoxStream};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controllers::pool::state::State;
use crate::runtime::feed::Change;

/// The pools of `template`'s namespace that reference it.
fn pools_of(
    pools: &Store<SandboxWarmPool>,
    template: &SandboxTemplate,
) -> Vec<ObjectRef<SandboxWarmPool>> {
    let namespace = template.namespace();
    let name = template.name_any();
    pools
        .state()
        .iter()
        .filter(|pool| pool.namespace() == namespace && pool.spec.sandbox_template_ref.name == name)
        .map(|pool| ObjectRef::from(pool.as_ref()))
        .collect()
}

/// The pools concerned by every Sandbox and template change.
pub fn triggers(
    state: Arc<State>,
    sandboxes: UnboundedReceiver<Change<Sandbox>>,
    (templates, pools): (
        UnboundedReceiver<Change<SandboxTemplate>>,
        Store<SandboxWarmPool>,
    ),
) -> BoxStream<'static, ObjectRef<SandboxWarmPool>> {
    let sandbox_triggers =
        sandboxes.flat_map(move |change| stream::iter(state.observe_sandbox(&change)));
    let template_triggers =
        templates.flat_map(move |change| stream::iter(pools_of(&pools, change.object())));
    stream::select(sandbox_triggers, template_triggers).boxed()
}
