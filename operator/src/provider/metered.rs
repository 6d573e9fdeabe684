//! A provider that counts and times every call of another: `novacron_provider_calls_total`,
//! `novacron_provider_errors_total` and `novacron_provider_call_duration_seconds` by operation, so
//! that every provider (the in-memory one, later the real clouds) is measured the same way. The
//! controller wraps its provider in one ([`crate::controller::Context::new`]).

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

use engine::Market;

use super::{CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, PriceQuote, ProviderResult};
use crate::metrics::Metrics;

/// `inner`, measured.
pub struct Metered {
    inner: Arc<dyn CloudProvider>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered").finish_non_exhaustive()
    }
}

impl Metered {
    /// Measures `inner` into `metrics`.
    pub fn new(inner: Arc<dyn CloudProvider>, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }

    fn observe<T>(&self, op: &'static str, started: Instant, r: &ProviderResult<T>) {
        let result = match r {
            Ok(_) => "ok",
            Err(e) => {
                self.metrics.provider_error(op, e.label());
                e.label()
            }
        };
        self.metrics.provider_call(op, result, 1);
        self.metrics.provider_latency(op, started.elapsed().as_secs_f64());
    }
}

impl CloudProvider for Metered {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.catalog().await;
            self.observe("catalog", t, &r);
            r
        })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.create(request).await;
            self.observe("create", t, &r);
            r
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.get(id).await;
            self.observe("get", t, &r);
            r
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.delete(id).await;
            self.observe("delete", t, &r);
            r
        })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.list(owner_uid).await;
            self.observe("list", t, &r);
            r
        })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.prices().await;
            self.observe("prices", t, &r);
            r
        })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.unhealthy_regions().await;
            self.observe("unhealthy-regions", t, &r);
            r
        })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.metrics(id).await;
            self.observe("metrics", t, &r);
            r
        })
    }

    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.estimate_cost(region, instance_type, market).await;
            self.observe("estimate-cost", t, &r);
            r
        })
    }
}
