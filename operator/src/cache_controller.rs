//! The CacheIntegration controller: builds the provider cache from the resource and puts it in
//! front of the operator's cloud ([`crate::cache::CacheSwitch`]), then reports how it fares.
//!
//! ## Which CacheIntegration applies
//! One per operator: the oldest CacheIntegration in the cluster (creation time, then namespace
//! and name) that is not being deleted. The others get `Active=False` (`Superseded`) naming the
//! one in use, and configure nothing. When the active one is deleted its finalizer removes its
//! cache (calls go straight to the cloud again) and the next oldest takes over at its next
//! reconcile (at most the poll interval later). Without any CacheIntegration the controllers
//! call the cloud directly.
//!
//! ## Apply (the active resource)
//! The spec is translated ([`crate::cache::from_spec`]: every problem names its field); the
//! Secrets it names are read through the API (`redisConfig.credentialsSecret` or
//! `passwordSecret`: `password`, optionally `username` and `sentinelPassword`;
//! `redisConfig.certSecret`: `ca.crt`, optionally `tls.crt` and `tls.key`). A cache is built
//! when the spec or the Secrets' contents changed since the installed one (a fingerprint of
//! both), tried against Redis once, installed in the switch (replacing the previous cache: calls
//! in flight finish on the old one), and warmed at once and on `warmingConfig.schedule`. A spec
//! that cannot be used leaves the cache of the last good spec in place (or none) and says so in
//! `SpecValid`.
//!
//! ## Status
//! `clusterHealth`, `performanceMetrics` (hit and miss rates, mean response time, throughput)
//! and `memoryUsage` as [`crate::cache::ProviderCache::status`] measures them, refreshed every
//! poll interval, and the conditions `SpecValid`, `Active`, `Degraded` and `Ready`. Redis down
//! is `Degraded=True` (the cache serves from L1 and the cloud and reconnects by itself), never a
//! failed reconcile: only Kubernetes API errors fail one.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use tracing::{info, warn};

use crate::cache::{self, CachingProvider, Installed, ProviderCache, SecretData, Secrets};
use crate::clock::rfc3339;
use crate::controller::Context;
use crate::crd::cacheintegration::{CacheIntegration, CacheIntegrationStatus, FINALIZER};
use crate::crd::{Condition, merge_conditions};
use crate::metrics::ControllerLabels;
use crate::translate::{self, Problem};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "cacheintegration";

/// Most keys one warming run loads (`warmingConfig.maxKeys` may lower it).
pub const WARMING_BUDGET: usize = 1000;

/// Reconciles one CacheIntegration.
pub async fn reconcile(obj: Arc<CacheIntegration>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and backs off as the other controllers do.
pub fn error_policy(obj: Arc<CacheIntegration>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

fn created(c: &CacheIntegration) -> Option<String> {
    c.metadata.creation_timestamp.as_ref().and_then(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned))
}

/// The CacheIntegration that configures the operator's cache: the oldest not being deleted
/// (creation time, then namespace, then name; one without a creation time comes last).
pub fn active_of(all: &[CacheIntegration]) -> Option<&CacheIntegration> {
    all.iter().filter(|c| c.metadata.deletion_timestamp.is_none()).min_by_key(|c| {
        let t = created(c);
        (t.is_none(), t, c.namespace().unwrap_or_default(), c.name_any())
    })
}

fn key_of(c: &CacheIntegration) -> String {
    format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
}

/// A Secret's data, `None` if it does not exist. Other API errors fail the reconcile (retried).
async fn secret(ctx: &Context, ns: &str, name: &str) -> Result<Option<SecretData>> {
    let s = Api::<Secret>::namespaced(ctx.client.clone(), ns).get_opt(name).await?;
    Ok(s.map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect::<BTreeMap<_, _>>()))
}

fn fingerprint(ns: &str, obj: &CacheIntegration, secrets: &Secrets) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    ns.hash(&mut h);
    serde_json::to_string(&obj.spec).unwrap_or_default().hash(&mut h);
    secrets.credentials.hash(&mut h);
    secrets.certs.hash(&mut h);
    h.finish()
}

/// What the spec (and its Secrets) gave: the cache to use, or the problems.
enum Built {
    Installed(Arc<Installed>),
    Invalid(Vec<Problem>),
}

async fn build(obj: &CacheIntegration, ns: &str, uid: &str, ctx: &Context) -> Result<Built> {
    let settings = match cache::from_spec(ns, &obj.spec) {
        Ok(s) => s,
        Err(p) => return Ok(Built::Invalid(p)),
    };
    let (credentials, certs) = settings.secret_names();
    let secrets = Secrets {
        credentials: match credentials {
            Some(n) => secret(ctx, ns, n).await?,
            None => None,
        },
        certs: match certs {
            Some(n) => secret(ctx, ns, n).await?,
            None => None,
        },
    };
    let fp = fingerprint(ns, obj, &secrets);
    if let Some(i) = ctx.cache.installed().filter(|i| i.owner_uid == uid && i.fingerprint == fp) {
        return Ok(Built::Installed(i));
    }
    let cache = match ProviderCache::new(settings, &secrets) {
        Ok(c) => c,
        Err(cache::Error::Invalid(p)) => return Ok(Built::Invalid(p)),
    };
    cache.set_metrics(ctx.metrics.clone());
    let up = cache.connect().await;
    let provider = Arc::new(CachingProvider::new(ctx.cache.direct(), cache));
    let warming = provider.spawn_warming(WARMING_BUDGET);
    let owner = key_of(obj);
    let installed = Arc::new(Installed {
        owner_uid: uid.to_owned(),
        owner: owner.clone(),
        fingerprint: fp,
        provider,
        warming: Some(warming),
    });
    let replaced = ctx.cache.install(installed.clone());
    match replaced {
        Some(old) => info!("{owner}: provider cache rebuilt (replacing {}'s); redis reachable: {up}", old.owner),
        None => info!("{owner}: provider cache installed in front of the cloud; redis reachable: {up}"),
    }
    Ok(Built::Installed(installed))
}

async fn apply(obj: Arc<CacheIntegration>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let name = obj.name_any();
    let generation = obj.metadata.generation;
    let all = Api::<CacheIntegration>::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let active = active_of(&all).map(|a| (a.uid(), key_of(a)));
    let mut status = CacheIntegrationStatus { observed_generation: generation, ..Default::default() };
    let mut conditions = Vec::new();
    let valid = |problems: &[Problem]| {
        Condition::new("SpecValid", false, "InvalidSpec", translate::describe(problems), generation)
    };
    let ok_spec = || Condition::new("SpecValid", true, "Valid", "the cache accepted the spec", generation);
    let installed = match active {
        Some((a_uid, a_key)) if a_uid.as_deref() != Some(uid.as_str()) => {
            // Another CacheIntegration is the oldest: this one configures nothing.
            if ctx.cache.installed().is_some_and(|i| i.owner_uid == uid) {
                ctx.cache.remove();
            }
            conditions.push(match cache::from_spec(&ns, &obj.spec) {
                Ok(_) => ok_spec(),
                Err(p) => valid(&p),
            });
            let m = format!(
                "{a_key}, the oldest CacheIntegration, configures the operator's provider cache; only one applies"
            );
            conditions.push(Condition::new("Active", false, "Superseded", m.clone(), generation));
            conditions.push(Condition::new("Ready", false, "Superseded", m, generation));
            None
        }
        _ => match build(&obj, &ns, &uid, ctx).await? {
            Built::Installed(i) => {
                conditions.push(ok_spec());
                let m = "every cloud call of the operator goes through this cache";
                conditions.push(Condition::new("Active", true, "Configured", m, generation));
                Some(i)
            }
            Built::Invalid(problems) => {
                ctx.metrics.invalid_specs.get_or_create(&ControllerLabels { controller: CONTROLLER.into() }).inc();
                warn!("{ns}/{name}: {}", translate::describe(&problems));
                conditions.push(valid(&problems));
                let kept = ctx.cache.installed().filter(|i| i.owner_uid == uid);
                let (reason, m) = if kept.is_some() {
                    ("LastValidSpec", "the cache of the last valid spec stays in use until the spec is fixed")
                } else {
                    ("InvalidSpec", "cloud calls go uncached until the spec is fixed")
                };
                conditions.push(Condition::new("Active", kept.is_some(), reason, m, generation));
                conditions.push(Condition::new("Ready", false, "InvalidSpec", m, generation));
                kept
            }
        },
    };
    if let Some(i) = &installed {
        let cache = i.provider.cache();
        if cache.redis_configured() && !cache.l2_up() {
            // One attempt, bounded by connectTimeout; the breaker also retries in the background.
            cache.connect().await;
        }
        let s = cache.status().await;
        let (degraded, reason) = match s.cluster_health.status.as_str() {
            "Degraded" => (true, "RedisUnreachable"),
            "LocalOnly" => (false, "LocalOnly"),
            _ => (false, "RedisHealthy"),
        };
        conditions.push(Condition::new("Degraded", degraded, reason, s.cluster_health.message.clone(), generation));
        if conditions.iter().all(|c| c.type_ != "Ready") {
            conditions.push(if degraded {
                Condition::new("Ready", false, "RedisUnreachable", "serving from L1 and the cloud", generation)
            } else {
                Condition::new("Ready", true, "Serving", "the cache serves the operator's cloud reads", generation)
            });
        }
        status.cluster_health = Some(s.cluster_health);
        status.performance_metrics = Some(s.performance_metrics);
        status.memory_usage = Some(s.memory_usage);
    }
    let previous = obj.status.clone().unwrap_or_default();
    status.conditions = merge_conditions(&previous.conditions, conditions, &rfc3339(ctx.clock.now()));
    let api: Api<CacheIntegration> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "CacheIntegration", "status": status });
    api.patch_status(&name, &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch)).await?;
    Ok(Action::requeue(ctx.config.poll_interval))
}

async fn cleanup(obj: Arc<CacheIntegration>, ctx: &Context) -> Result<Action> {
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    if ctx.cache.installed().is_some_and(|i| i.owner_uid == uid) {
        if let Some(old) = ctx.cache.remove() {
            old.provider.cache().flush().await;
        }
        info!("{}: deleted; its provider cache is removed, cloud calls go direct", key_of(&obj));
    }
    Ok(Action::await_change())
}
