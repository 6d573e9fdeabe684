//! A provider that retries another's throttled calls: exponential backoff with full jitter, as
//! AWS's architecture blog describes it ("Exponential Backoff And Jitter"). Before retry `n`
//! (counting from 0) it sleeps a uniformly random time in `[0, min(cap, base · 2ⁿ))`, up to
//! `max_attempts` calls in all; then the last error goes to the caller.
//!
//! Only [`ProviderError::Throttled`] is retried. Providers report transient failures (timeouts,
//! connection errors, 5xx answers) as `Throttled` too, so they are retried alike; capacity,
//! credential, token and other API errors go straight back, since the engine acts on them
//! (another offer, a status condition). Creates are safe to retry: they carry a client token, so
//! a create that did succeed before its answer got lost returns the same instance again.
//!
//! Sleeping goes through `tokio::time`, so tests run on paused time; the jitter source is
//! injectable ([`Jitter`]) and seeded, so tests see the same delays every run. The default source
//! is a SplitMix64 generator written out here (eight lines; the operator has no `rand`
//! dependency and jitter needs no cryptographic quality).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::Market;
use futures::future::BoxFuture;

use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, PriceQuote, ProviderError,
    ProviderResult,
};

/// A retry policy that cannot work.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field is out of range.
    #[error("retry policy: {0}")]
    Policy(String),
}

/// When to retry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Upper bound of the first retry's delay.
    pub base: Duration,
    /// Upper bound of any delay.
    pub cap: Duration,
    /// Calls in all, the first included (1 = never retry).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 200 ms, doubling, at most 20 s, 6 calls: a throttled call is given up after at most
    /// 0.2 + 0.4 + 0.8 + 1.6 + 3.2 = 6.2 s of sleeping (3.1 s on average).
    fn default() -> Self {
        RetryPolicy { base: Duration::from_millis(200), cap: Duration::from_secs(20), max_attempts: 6 }
    }
}

impl RetryPolicy {
    /// The policy, or what is wrong with it.
    pub fn check(self) -> Result<Self, Error> {
        if self.max_attempts == 0 {
            return Err(Error::Policy(
                "max_attempts is 0: it counts every call, the first included (1 = no retry)".into(),
            ));
        }
        if self.base.is_zero() {
            return Err(Error::Policy("base is 0: backoff needs a positive first delay".into()));
        }
        if self.cap < self.base {
            return Err(Error::Policy(format!("cap {:?} is below base {:?}", self.cap, self.base)));
        }
        Ok(self)
    }

    /// Upper bound of the delay before retry `retry` (0 = the first retry): `min(cap, base · 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay before retry `retry` for a jitter `fraction` in `[0, 1)` (full jitter).
    pub fn delay(&self, retry: u32, fraction: f64) -> Duration {
        self.ceiling(retry).mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// A source of uniform fractions in `[0, 1)`.
pub trait Jitter: Send {
    /// The next fraction.
    fn fraction(&mut self) -> f64;
}

impl<F: FnMut() -> f64 + Send> Jitter for F {
    fn fraction(&mut self) -> f64 {
        self()
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a seeded 64-bit generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Jitter for SplitMix64 {
    fn fraction(&mut self) -> f64 {
        // The top 53 bits as a double in [0, 1).
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `inner`, with throttled calls retried.
pub struct Retrying {
    inner: Arc<dyn CloudProvider>,
    policy: RetryPolicy,
    jitter: Mutex<Box<dyn Jitter>>,
}

impl std::fmt::Debug for Retrying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrying").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Retrying {
    /// Retries `inner` by `policy`, jitter seeded from the clock and the process id (replicas
    /// throttled together do not retry in step).
    pub fn new(inner: Arc<dyn CloudProvider>, policy: RetryPolicy) -> Result<Self, Error> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self::with_jitter(inner, policy, SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32)))
    }

    /// Retries `inner` by `policy`, jitter from a generator seeded with `seed`.
    pub fn with_seed(inner: Arc<dyn CloudProvider>, policy: RetryPolicy, seed: u64) -> Result<Self, Error> {
        Self::with_jitter(inner, policy, SplitMix64::new(seed))
    }

    /// Retries `inner` by `policy`, jitter from `jitter`.
    pub fn with_jitter(
        inner: Arc<dyn CloudProvider>,
        policy: RetryPolicy,
        jitter: impl Jitter + 'static,
    ) -> Result<Self, Error> {
        Ok(Retrying { inner, policy: policy.check()?, jitter: Mutex::new(Box::new(jitter)) })
    }

    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    fn next_delay(&self, retry: u32) -> Duration {
        let fraction = self.jitter.lock().unwrap_or_else(|e| e.into_inner()).fraction();
        self.policy.delay(retry, fraction)
    }

    async fn run<'a, T>(
        &'a self,
        op: &'static str,
        mut call: impl FnMut() -> BoxFuture<'a, ProviderResult<T>>,
    ) -> ProviderResult<T> {
        let mut retry = 0;
        loop {
            match call().await {
                Err(ProviderError::Throttled(m)) if retry + 1 < self.policy.max_attempts => {
                    let delay = self.next_delay(retry);
                    tracing::debug!(op, attempt = retry + 1, delay_ms = delay.as_millis() as u64, error = %m, "provider call throttled; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                r => return r,
            }
        }
    }
}

impl CloudProvider for Retrying {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(self.run("catalog", || self.inner.catalog()))
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(self.run("create", move || self.inner.create(request.clone())))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(self.run("get", || self.inner.get(id)))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(self.run("delete", || self.inner.delete(id)))
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(self.run("list", || self.inner.list(owner_uid)))
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(self.run("prices", || self.inner.prices()))
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(self.run("unhealthy-regions", || self.inner.unhealthy_regions()))
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(self.run("metrics", || self.inner.metrics(id)))
    }

    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        Box::pin(self.run("estimate-cost", move || self.inner.estimate_cost(region, instance_type, market)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::time::Instant;

    use super::*;
    use crate::provider::memory::MemoryCloud;

    fn request(token: &str) -> CreateRequest {
        CreateRequest {
            client_token: token.into(),
            owner_uid: "uid".into(),
            slot: 0,
            region: "aws-us-east-1".into(),
            zone: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            market: Market::OnDemand,
            tags: BTreeMap::new(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_millis(300), max_attempts: 4 }
    }

    fn throttled(n: usize) -> Vec<ProviderError> {
        (0..n).map(|i| ProviderError::Throttled(format!("RequestLimitExceeded #{i}"))).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_creates_are_retried_with_capped_exponential_delays() {
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        cloud.fail_next_creates(throttled(3));
        // Jitter at its top: the delays are the ceilings 100, 200, then 300 (capped, not 400) ms.
        let r = Retrying::with_jitter(cloud.clone(), policy(), || 1.0).expect("valid policy");
        let t = Instant::now();
        let inst = r.create(request("uid-0-0")).await.expect("the fourth call succeeds");
        assert_eq!(t.elapsed(), Duration::from_millis(100 + 200 + 300));
        assert_eq!(cloud.create_calls(), 4);
        assert_eq!(cloud.live_instances(), vec![inst]);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        cloud.fail_next_creates(throttled(5));
        let r = Retrying::with_jitter(cloud.clone(), policy(), || 0.5).expect("valid policy");
        let t = Instant::now();
        let e = r.create(request("uid-0-0")).await.expect_err("still throttled");
        assert_eq!(e, ProviderError::Throttled("RequestLimitExceeded #3".into()));
        assert_eq!(cloud.create_calls(), 4);
        // Half of each ceiling: 50 + 100 + 150 ms.
        assert_eq!(t.elapsed(), Duration::from_millis(300));
        assert!(cloud.live_instances().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried() {
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        for e in [
            ProviderError::InsufficientCapacity("m5.large in us-east-1a".into()),
            ProviderError::Auth("AuthFailure".into()),
            ProviderError::Api("InvalidAMIID.NotFound".into()),
        ] {
            cloud.fail_next_creates([e.clone()]);
            let before = cloud.create_calls();
            let r = Retrying::with_seed(cloud.clone(), policy(), 7).expect("valid policy");
            assert_eq!(r.create(request("uid-0-0")).await, Err(e));
            assert_eq!(cloud.create_calls(), before + 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_create_that_had_succeeded_returns_the_same_instance() {
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        let r = Retrying::with_seed(cloud.clone(), policy(), 1).expect("valid policy");
        let first = r.create(request("uid-0-0")).await.expect("created");
        // The answer was lost: the caller creates again with the same token.
        cloud.fail_next_creates(throttled(1));
        let again = r.create(request("uid-0-0")).await.expect("same instance");
        assert_eq!(again, first);
        assert_eq!(cloud.live_instances().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn seeded_jitter_gives_the_same_delays_every_run() {
        let run = |seed| async move {
            let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
            cloud.fail_next_creates(throttled(3));
            let r = Retrying::with_seed(cloud, policy(), seed).expect("valid policy");
            let t = Instant::now();
            r.create(request("uid-0-0")).await.expect("created");
            t.elapsed()
        };
        let a = run(42).await;
        assert_eq!(a, run(42).await);
        assert!(a < Duration::from_millis(600), "{a:?} within the ceilings' sum");
        // The same fractions, by hand: each delay is its ceiling times the next fraction, which
        // tokio's timer rounds up to its 1 ms tick.
        let mut g = SplitMix64::new(42);
        let ms_up = |d: Duration| Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64);
        let expected: Duration = (0..3).map(|i| ms_up(policy().delay(i, g.fraction()))).sum();
        assert_eq!(a, expected);
    }

    #[test]
    fn splitmix_fractions_are_in_range_and_spread() {
        let mut g = SplitMix64::new(0);
        let v: Vec<f64> = (0..10_000).map(|_| g.fraction()).collect();
        assert!(v.iter().all(|f| (0.0..1.0).contains(f)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        // The reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn bad_policies_are_refused() {
        let p = |base, cap, max_attempts| RetryPolicy {
            base: Duration::from_millis(base),
            cap: Duration::from_millis(cap),
            max_attempts,
        };
        assert!(p(100, 1000, 0).check().expect_err("0 attempts").to_string().contains("max_attempts"));
        assert!(p(0, 1000, 3).check().expect_err("0 base").to_string().contains("base"));
        assert!(p(100, 50, 3).check().expect_err("cap < base").to_string().contains("cap"));
        assert_eq!(p(100, 1000, 1).check().map(|p| p.max_attempts), Ok(1));
        assert_eq!(RetryPolicy::default().check(), Ok(RetryPolicy::default()));
        assert_eq!(p(100, 1000, 3).ceiling(40), Duration::from_millis(1000));
    }
}
