//! What every controller's reconcile shares: the leader guard, the reconcile counters and
//! duration, kube's finalizer (for kinds that own cloud or child resources), and the error
//! policy (count the error, requeue with exponential backoff and jitter).
//!
//! A controller module has two public functions, `reconcile(obj, ctx)` and
//! `error_policy(obj, error, ctx)`, each one line over [`reconcile`] and [`error_policy`] here.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::controller::Context;
use crate::metrics::{ControllerLabels, ErrorLabels};
use crate::{Error, Result};

/// Runs `body` for `obj` as controller `controller` would: nothing while this replica is not
/// the leader; otherwise counted and timed, through kube's finalizer `finalizer_name` when given
/// (`body` then sees Apply or Cleanup; without one, always Apply), and the object's failure count
/// is reset when it succeeds.
pub async fn reconcile<K, F, Fut>(
    obj: Arc<K>,
    ctx: &Context,
    controller: &'static str,
    finalizer_name: Option<&str>,
    body: F,
) -> Result<Action>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    F: FnOnce(Finalizer<K>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    if !ctx.acting.load(Ordering::SeqCst) {
        // Not the leader (any more): another replica acts.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let labels = ControllerLabels { controller: controller.into() };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let uid = obj.uid().unwrap_or_default();
    let result = match finalizer_name {
        Some(name) => {
            let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
            let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
            finalizer(&api, name, obj, body).await.map_err(|e| Error::Finalizer(Box::new(e)))
        }
        None => body(Finalizer::Apply(obj)).await,
    };
    ctx.metrics.reconcile_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.reset_failures(&uid);
    }
    result
}

/// Counts the error under `controller` and requeues with the object's next backoff (see
/// [`crate::controller::backoff`]).
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: &K,
    error: &Error,
    ctx: &Context,
    controller: &'static str,
) -> Action {
    warn!("reconcile of {} {} failed: {error}", K::kind(&()), obj.name_any());
    let labels = ErrorLabels { controller: controller.into(), error: error.metric_label().into() };
    ctx.metrics.reconcile_errors.get_or_create(&labels).inc();
    Action::requeue(ctx.next_backoff(&obj.uid().unwrap_or_default()))
}
