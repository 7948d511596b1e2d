//! The loop every controller runs: its kind's changes and extra triggers feed kube-runtime's
//! scheduler; each pass runs in a span, its failures are counted by kind and retried by the one
//! [`Failures`] policy. A controller only says what one pass does ([`Reconcile`]).

use std::future::Future;
use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, future};
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::runtime::error::{Error, ErrorKind};
use crate::runtime::feed::Change;
use crate::runtime::retry::Failures;
use crate::runtime::watch::Watched;

/// What a pass that succeeded asks for: a look after `requeue` if it names one, else the next change.
pub fn requeue_after(requeue: Option<std::time::Duration>) -> Action {
    requeue.map_or_else(Action::await_change, Action::requeue)
}

/// One controller's pass, and what it does when its objects come and go.
pub trait Reconcile: Send + Sync + 'static {
    /// The kind it reconciles.
    type Object: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;

    /// The controller's name in logs and in the `controller` metric label.
    const NAME: &'static str;

    /// One pass over `object` (the newest the cache has).
    fn reconcile(
        &self,
        object: Arc<Self::Object>,
    ) -> impl Future<Output = Result<Action, Error>> + Send;

    /// Called for every created or updated object before its pass is queued.
    fn applied(&self, _object: &Self::Object) {}

    /// Called when an object is deleted (forget what was remembered about it).
    fn deleted(&self, _object: &Self::Object) {}
}

/// A controller ready to run: subscribe to the feeds before any watch starts, so no change is missed.
pub struct ControlLoop<R: Reconcile> {
    /// What one pass does.
    pub reconciler: R,
    /// The cache of the reconciled kind.
    pub cache: Watched<R::Object>,
    /// The kind's changes (subscribed from `cache.feed`).
    pub changes: UnboundedReceiver<Change<R::Object>>,
    /// Objects to look at because something else changed.
    pub triggers: BoxStream<'static, ObjectRef<R::Object>>,
    /// Maximum concurrent passes.
    pub workers: u16,
    /// Where failures are counted.
    pub metrics: Arc<Metrics>,
}

struct Context<R: Reconcile> {
    reconciler: R,
    failures: Failures<R::Object>,
    metrics: Arc<Metrics>,
}

impl<R: Reconcile> ControlLoop<R> {
    /// Runs passes until `shutdown` completes and the passes in flight have finished.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let context = Arc::new(Context {
            reconciler: self.reconciler,
            failures: Failures::default(),
            metrics: self.metrics,
        });
        let hooks = context.clone();
        let objects = self.changes.filter_map(move |change| {
            future::ready(match change {
                Change::Applied(object) => {
                    hooks.reconciler.applied(&object);
                    Some(object)
                }
                Change::Deleted(object) => {
                    hooks.failures.reset(&object);
                    hooks.reconciler.deleted(&object);
                    None
                }
            })
        });
        drain(
            Controller::for_shared_stream(objects, self.cache.store.clone())
                .reconcile_on(self.triggers)
                .with_config(controller::Config::default().concurrency(self.workers))
                .graceful_shutdown_on(shutdown)
                .run(reconcile::<R>, error_policy::<R>, context),
            R::NAME,
        )
        .await;
        tracing::info!(controller = R::NAME, "controller stopped");
    }
}

async fn reconcile<R: Reconcile>(
    object: Arc<R::Object>,
    context: Arc<Context<R>>,
) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        controller = R::NAME,
        namespace = %object.namespace().unwrap_or_default(),
        name = %object.name_any(),
    );
    let result = context
        .reconciler
        .reconcile(object.clone())
        .instrument(span.clone())
        .await;
    match &result {
        Ok(_) => context.failures.reset(&object),
        Err(error) => {
            context
                .metrics
                .reconcile_failed(R::NAME, error.kinds().into_iter().map(ErrorKind::label));
            span.in_scope(|| tracing::info!(%error, "pass failed"));
        }
    }
    result
}

fn error_policy<R: Reconcile>(
    object: Arc<R::Object>,
    error: &Error,
    context: Arc<Context<R>>,
) -> Action {
    context.failures.next(&object, error)
}

/// Runs a controller's results to the end, logging what no pass logged itself: a watch that cannot
/// list or watch (RBAC, a missing CRD, a conversion failure) keeps the caches from syncing, so it is
/// said loudly (it is retried with backoff). A pass logs its own failures, and an object gone before
/// its pass ran is not an error.
async fn drain<T, E1, E2>(
    results: impl Stream<Item = Result<T, controller::Error<E1, E2>>>,
    controller_name: &'static str,
) where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    results
        .for_each(|result| async move {
            match result {
                Ok(_)
                | Err(
                    controller::Error::ReconcilerFailed(..) | controller::Error::ObjectNotFound(_),
                ) => {}
                Err(error) => {
                    tracing::warn!(controller = controller_name, %error, "watch or queue error");
                }
            }
        })
        .await;
}
