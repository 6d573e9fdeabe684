//! [`CacheSwitch`]: the cloud as the controllers see it, cached or not as the active
//! CacheIntegration says.
//!
//! The operator's controllers call one provider for the whole run. The switch sends every call
//! to the [`CachingProvider`] the CacheIntegration controller installed, or straight to the
//! cloud when none is installed (no CacheIntegration, or its spec never was usable). The
//! controller installs a new cache when the resource or its Secrets change, and removes it when
//! the resource goes; calls in flight finish on the provider they started with.

use std::sync::{Arc, RwLock};

use engine::Market;
use futures::future::BoxFuture;

use super::CachingProvider;
use crate::provider::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, PriceQuote, ProviderResult,
};

/// The cache in use, and what it was built from.
#[derive(Debug)]
pub struct Installed {
    /// The CacheIntegration's UID.
    pub owner_uid: String,
    /// `namespace/name` of the CacheIntegration.
    pub owner: String,
    /// A hash of the spec and the Secrets' contents it was built from.
    pub fingerprint: u64,
    /// The cached cloud.
    pub provider: Arc<CachingProvider>,
    /// The warming task (on start and on `warmingConfig.schedule`).
    pub warming: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(w) = self.warming.take() {
            w.abort();
        }
    }
}

/// The cloud, through the installed cache if any.
pub struct CacheSwitch {
    direct: Arc<dyn CloudProvider>,
    installed: RwLock<Option<Arc<Installed>>>,
}

impl std::fmt::Debug for CacheSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSwitch").field("installed", &self.installed()).finish_non_exhaustive()
    }
}

impl CacheSwitch {
    /// Direct calls to `direct` until a cache is installed.
    pub fn new(direct: Arc<dyn CloudProvider>) -> Self {
        CacheSwitch { direct, installed: RwLock::new(None) }
    }

    /// The uncached cloud (what a cache is built over).
    pub fn direct(&self) -> Arc<dyn CloudProvider> {
        self.direct.clone()
    }

    /// The cache in use, if any.
    pub fn installed(&self) -> Option<Arc<Installed>> {
        self.installed.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sends the calls that start from now on through `cache` (replacing any other); returns the
    /// one replaced.
    pub fn install(&self, cache: Arc<Installed>) -> Option<Arc<Installed>> {
        self.installed.write().unwrap_or_else(std::sync::PoisonError::into_inner).replace(cache)
    }

    /// Back to direct calls; returns the cache removed.
    pub fn remove(&self) -> Option<Arc<Installed>> {
        self.installed.write().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    fn route(&self) -> Arc<dyn CloudProvider> {
        match self.installed() {
            Some(i) => i.provider.clone(),
            None => self.direct.clone(),
        }
    }
}

impl CloudProvider for CacheSwitch {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        let p = self.route();
        Box::pin(async move { p.catalog().await })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        let p = self.route();
        Box::pin(async move { p.create(request).await })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        let p = self.route();
        Box::pin(async move { p.get(id).await })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        let p = self.route();
        Box::pin(async move { p.delete(id).await })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        let p = self.route();
        Box::pin(async move { p.list(owner_uid).await })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        let p = self.route();
        Box::pin(async move { p.prices().await })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        let p = self.route();
        Box::pin(async move { p.unhealthy_regions().await })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        let p = self.route();
        Box::pin(async move { p.metrics(id).await })
    }

    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        let p = self.route();
        Box::pin(async move { p.estimate_cost(region, instance_type, market).await })
    }
}
