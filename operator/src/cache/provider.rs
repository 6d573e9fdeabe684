//! [`CachingProvider`]: a [`CloudProvider`] whose reads go through the [`ProviderCache`], as
//! [`crate::provider::metered::Metered`] wraps a provider to measure it.
//!
//! Reads are cached under these keys (the names `ttlPolicies` and `warmingConfig.patterns`
//! match against; a pattern without `*` also covers its `name:` namespace):
//!
//! | call | key |
//! | --- | --- |
//! | `catalog()` | `catalog` |
//! | `prices()` | `prices` |
//! | `unhealthy_regions()` | `health:regions` |
//! | `get(id)` | `vm:<id>` |
//! | `list(owner)` | `vm:list:<owner>` |
//! | `metrics(id)` | `metrics:<id>` |
//! | `estimate_cost(region, type, market)` | `cost:<region>:<type>:<market>` |
//!
//! Writes reach the cloud at once whatever the strategy (a VM cannot be created later): a
//! `create` is then a cache write of `vm:<id>` (the engine's strategy says whether the new
//! instance is stored or the entry dropped), and the owner's `vm:list:<owner>` is dropped. A
//! `delete` drops `vm:<id>` and the owner's list. Failed calls are never cached.
//!
//! Warming ([`CachingProvider::warm`]) loads the keys the engine's warming plan picks among the
//! keys this wrapper knows (catalog, prices, region health, the lists and instances it has
//! seen), on start and then on `warmingConfig.schedule`: a 5-field cron expression (the engine
//! checks it), whose next UTC occurrence croner computes on the real calendar.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use engine::Market;
use futures::future::BoxFuture;

use super::ProviderCache;
use super::wire;
use crate::provider::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, PriceQuote, ProviderError,
    ProviderResult,
};

/// `inner`, cached.
pub struct CachingProvider {
    inner: Arc<dyn CloudProvider>,
    cache: ProviderCache,
    /// Instance id -> owner UID, from the instances seen (a delete drops the owner's list).
    owners: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for CachingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingProvider").field("cache", &self.cache).finish_non_exhaustive()
    }
}

fn market_name(m: Market) -> &'static str {
    match m {
        Market::OnDemand => "on-demand",
        Market::Spot => "spot",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CachingProvider {
    /// Caches `inner`'s reads in `cache`.
    pub fn new(inner: Arc<dyn CloudProvider>, cache: ProviderCache) -> Self {
        CachingProvider { inner, cache, owners: Mutex::new(BTreeMap::new()) }
    }

    /// The cache.
    pub fn cache(&self) -> &ProviderCache {
        &self.cache
    }

    fn seen(&self, instances: &[CloudInstance]) {
        let mut o = lock(&self.owners);
        for i in instances {
            o.insert(i.id.clone(), i.owner_uid.clone());
        }
    }

    /// The keys this wrapper can load: catalog, prices, region health, and the lists and
    /// instances it has seen.
    pub fn known_keys(&self) -> Vec<String> {
        let mut keys = vec!["catalog".to_owned(), "prices".to_owned(), "health:regions".to_owned()];
        let o = lock(&self.owners);
        let owners: BTreeSet<&String> = o.values().collect();
        keys.extend(owners.into_iter().map(|u| format!("vm:list:{u}")));
        keys.extend(o.keys().map(|id| format!("vm:{id}")));
        keys
    }

    /// Loads one key from the provider as its JSON.
    async fn load_json(&self, key: &str) -> ProviderResult<Vec<u8>> {
        let json = |r: Result<Vec<u8>, serde_json::Error>| r.map_err(|e| ProviderError::Api(format!("encode: {e}")));
        match key {
            "catalog" => json(serde_json::to_vec(&wire::Catalog::from(&self.inner.catalog().await?))),
            "prices" => {
                let p: Vec<wire::Price> = self.inner.prices().await?.iter().map(wire::Price::from).collect();
                json(serde_json::to_vec(&p))
            }
            "health:regions" => json(serde_json::to_vec(&self.inner.unhealthy_regions().await?)),
            _ => {
                if let Some(owner) = key.strip_prefix("vm:list:") {
                    let l = self.inner.list(owner).await?;
                    self.seen(&l);
                    let w: Vec<wire::Instance> = l.iter().map(wire::Instance::from).collect();
                    json(serde_json::to_vec(&w))
                } else if let Some(id) = key.strip_prefix("vm:") {
                    let i = self.inner.get(id).await?;
                    json(serde_json::to_vec(&i.as_ref().map(wire::Instance::from)))
                } else {
                    Err(ProviderError::Api(format!("no loader for cache key {key:?}")))
                }
            }
        }
    }

    /// Warms the cache: loads the keys the engine's warming plan picks (at most `budget`) and
    /// stores them (Redis in one pipeline). Returns the keys warmed; a key whose load fails is
    /// skipped.
    pub async fn warm(&self, budget: usize) -> Vec<String> {
        let universe = self.known_keys();
        let plan: Vec<String> = self
            .cache
            .policy()
            .warming_plan(universe.iter().map(String::as_str), budget)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut values = Vec::new();
        let read_at = self.cache.now();
        for key in plan {
            match self.load_json(&key).await {
                Ok(bytes) => values.push((key, bytes)),
                Err(e) => tracing::debug!(key, error = %e, "warming: load failed"),
            }
        }
        let keys: Vec<String> = values.iter().map(|(k, _)| k.clone()).collect();
        self.cache.fill_many(values, read_at).await;
        keys
    }

    /// When warming runs next after `now` (UTC), from `warmingConfig.schedule`; `None` without a
    /// schedule or with warming off.
    pub fn next_warming(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        let w = self.cache.policy().warming();
        if !w.enabled() {
            return None;
        }
        let cron = croner::Cron::from_str(w.schedule()?.as_str()).ok()?;
        cron.find_next_occurrence(&now, false).ok()
    }

    /// Warms now (if warming is enabled) and then at every `warmingConfig.schedule` occurrence,
    /// until the provider is dropped. Returns the task.
    pub fn spawn_warming(self: &Arc<Self>, budget: usize) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(me) = weak.upgrade() else { return };
            if !me.cache.policy().warming().enabled() {
                return;
            }
            let warmed = me.warm(budget).await;
            tracing::info!(keys = warmed.len(), "cache warmed on start");
            drop(me);
            loop {
                let Some(me) = weak.upgrade() else { return };
                let now = chrono::Utc::now();
                let Some(next) = me.next_warming(now) else { return };
                drop(me);
                let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
                let Some(me) = weak.upgrade() else { return };
                let warmed = me.warm(budget).await;
                tracing::debug!(keys = warmed.len(), "cache warmed on schedule");
            }
        })
    }
}

impl CloudProvider for CachingProvider {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let c = self
                .cache
                .get_or_load("catalog", move || {
                    let inner = inner.clone();
                    async move { inner.catalog().await.map(|c| wire::Catalog::from(&c)) }
                })
                .await?;
            Ok(c.into())
        })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(async move {
            let owner = request.owner_uid.clone();
            let created = self.inner.create(request).await?;
            self.seen(std::slice::from_ref(&created));
            let key = format!("vm:{}", created.id);
            let stored = Some(wire::Instance::from(&created));
            // The cloud call is done: the cache write has no backend part left.
            let _ = self.cache.write(&key, &stored, async { Ok::<(), ProviderError>(()) }).await;
            self.cache.invalidate(&[&format!("vm:list:{owner}")]).await;
            Ok(created)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let owned = id.to_owned();
            let i = self
                .cache
                .get_or_load(&format!("vm:{id}"), move || {
                    let (inner, id) = (inner.clone(), owned.clone());
                    async move { inner.get(&id).await.map(|i| i.as_ref().map(wire::Instance::from)) }
                })
                .await?;
            let i: Option<CloudInstance> = i.map(Into::into);
            if let Some(i) = &i {
                self.seen(std::slice::from_ref(i));
            }
            Ok(i)
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async move {
            let r = self.inner.delete(id).await;
            // Whatever the answer, what was cached about the instance may be wrong now.
            let owner = lock(&self.owners).get(id).cloned();
            let mut keys = vec![format!("vm:{id}"), format!("metrics:{id}")];
            if let Some(o) = owner {
                keys.push(format!("vm:list:{o}"));
            }
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.cache.invalidate(&refs).await;
            r
        })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let owner = owner_uid.to_owned();
            let l =
                self.cache
                    .get_or_load(&format!("vm:list:{owner_uid}"), move || {
                        let (inner, owner) = (inner.clone(), owner.clone());
                        async move {
                            inner.list(&owner).await.map(|l| l.iter().map(wire::Instance::from).collect::<Vec<_>>())
                        }
                    })
                    .await?;
            let l: Vec<CloudInstance> = l.into_iter().map(Into::into).collect();
            self.seen(&l);
            Ok(l)
        })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let p = self
                .cache
                .get_or_load("prices", move || {
                    let inner = inner.clone();
                    async move { inner.prices().await.map(|p| p.iter().map(wire::Price::from).collect::<Vec<_>>()) }
                })
                .await?;
            Ok(p.into_iter().map(Into::into).collect())
        })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            self.cache
                .get_or_load("health:regions", move || {
                    let inner = inner.clone();
                    async move { inner.unhealthy_regions().await }
                })
                .await
        })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let owned = id.to_owned();
            let m = self
                .cache
                .get_or_load(&format!("metrics:{id}"), move || {
                    let (inner, id) = (inner.clone(), owned.clone());
                    async move { inner.metrics(&id).await.map(|m| wire::Metrics::from(&m)) }
                })
                .await?;
            Ok(m.into())
        })
    }

    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let (r, t) = (region.to_owned(), instance_type.to_owned());
            self.cache
                .get_or_load(&format!("cost:{region}:{instance_type}:{}", market_name(market)), move || {
                    let (inner, r, t) = (inner.clone(), r.clone(), t.clone());
                    async move { inner.estimate_cost(&r, &t, market).await }
                })
                .await
        })
    }
}
