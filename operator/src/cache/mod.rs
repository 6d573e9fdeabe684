//! The provider cache: what the operator asks clouds for (prices, catalog, instances, metrics)
//! kept in two levels, L1 in the process ([`l1`], moka) and L2 in Redis ([`l2`]), under the
//! rules of the engine's cache policy ([`engine::cache::CachePolicy`]).
//!
//! ## Who decides what
//! The engine decides; this module stores and moves bytes. For every read the cache fetches the
//! metadata of what L1 (and, when needed, L2) holds and asks [`CachePolicy::on_read`] whether to
//! serve L1, serve L2 (and copy it into L1), start an eager refresh, or miss and who loads
//! (read-through: the cache, with concurrent misses of one key coalesced into one load;
//! cache-aside: the caller). Values loaded are stored as [`CachePolicy::on_fill`] says (levels,
//! deadlines, eager refresh point). Writes follow [`CachePolicy::on_write`]: write-through writes
//! the backend and then the cache; write-behind updates the cache now and queues the backend
//! write to the engine's flush time (end of the `flushDelay` window, or at once when `maxBatch`
//! are pending); read-through and cache-aside write the backend and invalidate. L1's memory band
//! and its victims come from [`CachePolicy::memory_state`] and [`CachePolicy::evict`]; keys to
//! warm from [`CachePolicy::warming_plan`]. [`config`] is the one place where a CacheIntegration
//! becomes the engine's configuration.
//!
//! ## What is stored
//! A value is its JSON, stored beside the engine's [`EntryMeta`] (when stored, when it expires,
//! when to refresh, a version: the FNV-1a hash of the JSON). In Redis the two are one string,
//! `<meta JSON>\n<value JSON>`, under `novacron:<cluster>:<key>`, set with `PX` = the time left,
//! so Redis drops it at its deadline as well. An L2 value copied into L1 keeps its deadline (at
//! most the key's L1 TTL), so no level ever serves a value past its TTL.
//!
//! ## Never failing a caller
//! Redis down, slow or failing over only costs cache hits: see [`l2`] for the breaker that turns
//! errors and timeouts into immediate L1/provider answers, logs once per outage, and reconnects
//! in the background (re-resolving the Sentinel master). A value that cannot be decoded (written
//! by another version) is a miss.
//!
//! ## Time
//! Deadlines are wall-clock milliseconds (the [`Clock`]'s `now`, as the engine reads it); moka
//! and Redis expire entries on their own clocks at the same instants.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use engine::SimTime;
use engine::cache::{BackendWrite, CachePolicy, CacheWrite, EntryMeta, Level, Loader, MemoryLevel, ReadDecision};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;

pub mod config;
pub mod l1;
pub mod l2;
pub mod provider;
pub mod status;
pub mod switch;
pub mod wire;

pub use config::{CacheSettings, SecretData, Secrets, from_spec};
pub use l2::{L2Error, RedisSettings};
pub use provider::CachingProvider;
pub use status::{CacheStatus, ClusterHealth, MemoryUsage, PerformanceMetrics};
pub use switch::{CacheSwitch, Installed};

use l1::{L1, L1Entry};
use l2::L2;

/// What can go wrong building a cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CacheIntegration (or its Secrets) cannot be used; each problem names its field.
    #[error("invalid cache configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<crate::translate::Problem>),
}

/// Result with the cache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The FNV-1a hash of a value's JSON: its version (equal JSON, equal version).
fn version(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// `<meta JSON>\n<value JSON>`.
fn encode(meta: &EntryMeta, value: &[u8]) -> Vec<u8> {
    // EntryMeta is plain numbers: serializing it cannot fail.
    let mut out = serde_json::to_vec(meta).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(value);
    out
}

fn decode(bytes: &[u8]) -> Option<(EntryMeta, Arc<[u8]>)> {
    let split = bytes.iter().position(|b| *b == b'\n')?;
    let meta: EntryMeta = serde_json::from_slice(&bytes[..split]).ok()?;
    Some((meta, Arc::from(&bytes[split + 1..])))
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    latency_ns: AtomicU64,
    refreshes: AtomicU64,
    behind_applied: AtomicU64,
    behind_failed: AtomicU64,
    l1_evicted: AtomicU64,
}

/// Write-behind: backend writes waiting for their flush time, in order.
#[derive(Default)]
struct Behind {
    queue: Vec<(String, BoxFuture<'static, std::result::Result<(), String>>)>,
    flush_at: Option<SimTime>,
}

struct Inner {
    policy: CachePolicy,
    cluster: String,
    l1: L1,
    l2: Option<L2>,
    clock: Arc<dyn Clock>,
    metrics: OnceLock<Arc<Metrics>>,
    stats: Stats,
    started: Instant,
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    refreshing: Mutex<HashSet<String>>,
    behind: Mutex<Behind>,
    flusher: AtomicBool,
    inserts: AtomicU64,
}

/// The two-level cache. Cheap to clone (shared).
#[derive(Clone)]
pub struct ProviderCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderCache")
            .field("cluster", &self.inner.cluster)
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2)
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
enum Found {
    Hit { bytes: Arc<[u8]>, level: Level, refresh: bool },
    Miss(Loader),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a few plain assignments: a poisoned lock holds consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProviderCache {
    /// A cache for a translated CacheIntegration and the Secrets it names, on the system clock.
    /// Nothing is connected yet: [`ProviderCache::connect`] tries Redis at once, otherwise the
    /// first read starts a background connection (and is answered without Redis).
    pub fn new(settings: CacheSettings, secrets: &Secrets) -> Result<Self> {
        Self::with_clock(settings, secrets, Arc::new(SystemClock))
    }

    /// The same with another clock (its `now` must follow real time: moka and Redis expire
    /// entries on their own clocks).
    pub fn with_clock(settings: CacheSettings, secrets: &Secrets, clock: Arc<dyn Clock>) -> Result<Self> {
        let l2 = match &settings.redis {
            Some(spec) => Some(L2::new(spec.settings(secrets).map_err(Error::Invalid)?, &settings.cluster)),
            None => None,
        };
        Ok(Self::from_parts(settings, l2, clock))
    }

    /// A cache over Redis settings given directly (tests, benches).
    pub fn with_redis(settings: CacheSettings, redis: Option<RedisSettings>) -> Self {
        let l2 = redis.map(|r| L2::new(r, &settings.cluster));
        Self::from_parts(settings, l2, Arc::new(SystemClock))
    }

    fn from_parts(settings: CacheSettings, l2: Option<L2>, clock: Arc<dyn Clock>) -> Self {
        let eviction = match settings.policy.eviction() {
            engine::cache::EvictionPolicy::Lfu => l1::L1Eviction::Lfu,
            _ => l1::L1Eviction::Lru,
        };
        let inner = Inner {
            l1: L1::new(settings.l1_max_bytes, eviction),
            policy: settings.policy,
            cluster: settings.cluster,
            l2,
            clock,
            metrics: OnceLock::new(),
            stats: Stats::default(),
            started: Instant::now(),
            loading: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            behind: Mutex::new(Behind::default()),
            flusher: AtomicBool::new(false),
            inserts: AtomicU64::new(0),
        };
        ProviderCache { inner: Arc::new(inner) }
    }

    /// Exports the cache's figures through the operator's metrics (once; later calls are ignored).
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.get().map(|m| &**m)
    }

    /// The engine's rules this cache follows.
    pub fn policy(&self) -> &CachePolicy {
        &self.inner.policy
    }

    /// The key namespace (`novacron:<cluster>:`).
    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    /// Tries Redis now (one attempt); `true` if it is usable. Without Redis configured, `false`.
    pub async fn connect(&self) -> bool {
        match &self.inner.l2 {
            Some(l2) => {
                let up = l2.connect().await;
                if let Some(m) = self.metrics() {
                    m.cache_l2_up.set(i64::from(up));
                }
                up
            }
            None => false,
        }
    }

    /// Whether Redis is configured (an L2 exists).
    pub fn redis_configured(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// Whether Redis answered the last command.
    pub fn l2_up(&self) -> bool {
        self.inner.l2.as_ref().is_some_and(L2::is_up)
    }

    /// The Redis key a cache key is stored under.
    pub fn redis_key(&self, key: &str) -> String {
        format!("novacron:{}:{key}", self.inner.cluster)
    }

    fn l2_error(&self, op: &str) {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.metrics() {
            m.cache_error(op);
            m.cache_l2_up.set(0);
        }
    }

    /// Reads L2's entry for `key`: `None` for absent, unavailable or undecodable.
    async fn l2_entry(&self, key: &str) -> Option<(EntryMeta, Arc<[u8]>)> {
        let l2 = self.inner.l2.as_ref()?;
        match l2.get(key).await {
            Ok(Some(bytes)) => {
                let d = decode(&bytes);
                if d.is_none() {
                    self.l2_error("decode");
                }
                d
            }
            Ok(None) => None,
            Err(L2Error::Unavailable) => None,
            Err(_) => {
                self.l2_error("get");
                None
            }
        }
    }

    /// Looks `key` up and lets the engine decide. Counts the read when `count`.
    async fn find(&self, key: &str, count: bool) -> Found {
        let now = self.inner.clock.now();
        let kp = self.inner.policy.key_policy(key);
        let l1e = if kp.levels.has(Level::L1) { self.inner.l1.get(key, Instant::now()).await } else { None };
        let l1_meta = l1e.as_ref().map(|e| e.current_meta());
        // L2 is consulted unless an eventual L1 copy answers by itself.
        let l1_answers =
            l1_meta.is_some_and(|m| m.fresh(now)) && kp.consistency == engine::cache::Consistency::Eventual;
        let l2e = if kp.levels.has(Level::L2) && !l1_answers && kp.cached() { self.l2_entry(key).await } else { None };
        let decision = self.inner.policy.on_read(key, l1_meta.as_ref(), l2e.as_ref().map(|(m, _)| m), now);
        let s = &self.inner.stats;
        let m = self.metrics();
        if count {
            s.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = m {
                m.cache_requests.inc();
                if let Some(l2) = &self.inner.l2 {
                    m.cache_l2_up.set(i64::from(l2.is_up()));
                }
            }
        }
        match decision {
            ReadDecision::Hit { level: Level::L1, refresh, .. } => {
                let Some(e) = l1e else { return Found::Miss(Loader::Cache) };
                e.touch(now);
                if count {
                    s.l1_hits.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = m {
                        m.cache_hit("l1");
                    }
                }
                Found::Hit { bytes: e.bytes.clone(), level: Level::L1, refresh }
            }
            ReadDecision::Hit { level: Level::L2, promote, refresh, .. } => {
                let Some((meta, bytes)) = l2e else { return Found::Miss(Loader::Cache) };
                if promote {
                    // L1's copy keeps L2's deadline, cut to the key's L1 TTL.
                    let l1_deadline = SimTime(now.as_millis().saturating_add(kp.l1_ttl.as_millis()));
                    let l1_meta = EntryMeta { expires_at: meta.expires_at.min(l1_deadline), ..meta };
                    self.l1_insert(key, bytes.clone(), l1_meta, now).await;
                }
                if count {
                    s.l2_hits.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = m {
                        if kp.levels.has(Level::L1) {
                            m.cache_miss("l1");
                        }
                        m.cache_hit("l2");
                    }
                }
                Found::Hit { bytes, level: Level::L2, refresh }
            }
            ReadDecision::Miss { loader, .. } => {
                if count {
                    s.misses.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = m {
                        if kp.levels.has(Level::L1) {
                            m.cache_miss("l1");
                        }
                        if kp.levels.has(Level::L2) && self.inner.l2.is_some() {
                            m.cache_miss("l2");
                        }
                    }
                }
                Found::Miss(loader)
            }
        }
    }

    async fn l1_insert(&self, key: &str, bytes: Arc<[u8]>, meta: EntryMeta, now: SimTime) {
        let entry = L1Entry::new(bytes, meta, now, Instant::now());
        self.inner.l1.insert(key.to_owned(), entry).await;
        // Every 64 inserts, the engine looks at L1's memory band and picks victims.
        if self.inner.inserts.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            self.enforce_memory().await;
        }
    }

    /// Applies the engine's memory thresholds and eviction policy to L1 now.
    pub async fn enforce_memory(&self) {
        let l1 = &self.inner.l1;
        l1.sync().await;
        let state = self.inner.policy.memory_state(l1.bytes(), l1.max_bytes());
        if state.level == MemoryLevel::Evicting {
            let now = self.inner.clock.now();
            let entries = l1.entries_snapshot();
            let metas: Vec<EntryMeta> = entries
                .iter()
                .map(|(k, e)| EntryMeta { size_bytes: (k.len() + e.bytes.len()) as u64, ..e.current_meta() })
                .collect();
            let victims = self.inner.policy.evict(&metas, l1.bytes(), l1.max_bytes(), now);
            for i in &victims {
                l1.invalidate(&entries[*i].0).await;
            }
            self.inner.stats.l1_evicted.fetch_add(victims.len() as u64, Ordering::Relaxed);
            l1.sync().await;
        }
        if let Some(m) = self.metrics() {
            m.cache_memory_used("l1", l1.bytes());
        }
    }

    fn observe(&self, source: &str, started: Instant) {
        let took = started.elapsed();
        self.inner.stats.latency_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(m) = self.metrics() {
            m.cache_latency(source, took.as_secs_f64());
        }
    }

    /// The cached value of `key`, if the engine lets a level serve it (cache-aside reads: on
    /// `None` the caller loads the value and calls [`ProviderCache::fill`]).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        if !self.inner.policy.key_policy(key).cached() {
            // TTL 0: never cached, and not a cache read.
            return None;
        }
        let started = Instant::now();
        match self.find(key, true).await {
            Found::Hit { bytes, level, .. } => {
                let v = serde_json::from_slice(&bytes).ok();
                self.observe(if level == Level::L1 { "l1" } else { "l2" }, started);
                v
            }
            Found::Miss(_) => None,
        }
    }

    /// Stores a value loaded from the backend, in the levels and with the deadlines the engine
    /// gives.
    pub async fn fill<T: Serialize + Sync>(&self, key: &str, value: &T) {
        let Ok(bytes) = serde_json::to_vec(value) else { return };
        self.fill_bytes(key, Arc::from(bytes), self.inner.clock.now()).await;
    }

    /// Stores a value read from the backend at `read_at`: its age counts from then, so a load
    /// that raced a change of the backend still expires a TTL after it began.
    async fn fill_bytes(&self, key: &str, bytes: Arc<[u8]>, read_at: SimTime) {
        let now = self.inner.clock.now();
        let fill = self.inner.policy.on_fill(key, version(&bytes), bytes.len() as u64, read_at);
        if let Some(meta) = fill.l1 {
            self.l1_insert(key, bytes.clone(), meta, now).await;
        }
        if let (Some(meta), Some(l2)) = (fill.l2.filter(|m| m.expires_at > now), &self.inner.l2) {
            let ttl = Duration::from_millis(meta.expires_at.as_millis().saturating_sub(now.as_millis()));
            match l2.set(key, &encode(&meta, &bytes), ttl).await {
                Ok(()) | Err(L2Error::Unavailable) => {}
                Err(_) => self.l2_error("set"),
            }
        }
    }

    /// The value of `key`: from the cache when the engine lets a level serve it, else from
    /// `load` (then stored). Read-through coalesces concurrent misses of a key into one load;
    /// cache-aside loads for each caller. An eager key read past its refresh point is served and
    /// reloaded in the background. A key whose TTL is 0 is loaded every time and not counted as a
    /// cache read. `load`'s error is returned as is and nothing is cached.
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, load: F) -> std::result::Result<T, E>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: Fn() -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        if !self.inner.policy.key_policy(key).cached() {
            // TTL 0: the key is never cached; the call goes straight through and is not a
            // cache read (it counts neither as a request nor as a miss).
            return load().await;
        }
        let started = Instant::now();
        match self.find(key, true).await {
            Found::Hit { bytes, level, refresh } => {
                if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
                    if refresh {
                        self.refresh_in_background(key, load);
                    }
                    self.observe(if level == Level::L1 { "l1" } else { "l2" }, started);
                    return Ok(v);
                }
                self.l2_error("decode");
                self.invalidate(&[key]).await;
                let r = self.load_and_fill(key, &load).await;
                self.observe("source", started);
                r
            }
            Found::Miss(Loader::Caller) => {
                let r = self.load_and_fill(key, &load).await;
                self.observe("source", started);
                r
            }
            Found::Miss(Loader::Cache) => {
                // One load per key at a time; the others wait and take what it stored.
                let gate = lock(&self.inner.loading).entry(key.to_owned()).or_default().clone();
                let _turn = gate.lock().await;
                if let Found::Hit { bytes, .. } = self.find(key, false).await
                    && let Ok(v) = serde_json::from_slice::<T>(&bytes)
                {
                    self.observe("source", started);
                    return Ok(v);
                }
                let r = self.load_and_fill(key, &load).await;
                lock(&self.inner.loading).remove(key);
                self.observe("source", started);
                r
            }
        }
    }

    async fn load_and_fill<T, E, F, Fut>(&self, key: &str, load: &F) -> std::result::Result<T, E>
    where
        T: Serialize,
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let read_at = self.inner.clock.now();
        let v = load().await?;
        if let Ok(b) = serde_json::to_vec(&v) {
            self.fill_bytes(key, Arc::from(b), read_at).await;
        }
        Ok(v)
    }

    fn refresh_in_background<T, E, F, Fut>(&self, key: &str, load: F)
    where
        T: Serialize + Send + 'static,
        E: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        if !lock(&self.inner.refreshing).insert(key.to_owned()) {
            return;
        }
        self.inner.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let read_at = this.inner.clock.now();
            let bytes = match load().await {
                Ok(v) => serde_json::to_vec(&v).ok(),
                Err(_) => None,
            };
            if let Some(b) = bytes {
                this.fill_bytes(&key, Arc::from(b), read_at).await;
            }
            lock(&this.inner.refreshing).remove(&key);
        });
    }

    /// Drops `keys` from both levels (and any write-behind update of them still queued for L2).
    pub async fn invalidate(&self, keys: &[&str]) {
        for k in keys {
            self.inner.l1.invalidate(k).await;
        }
        if let Some(l2) = &self.inner.l2 {
            let owned: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            match l2.delete(&owned).await {
                Ok(()) | Err(L2Error::Unavailable) => {}
                Err(_) => self.l2_error("delete"),
            }
        }
    }

    /// A write of `value` under `key` whose backend write is `backend`, as the engine's write
    /// strategy says: write-through runs `backend` and then stores the value in the cache;
    /// write-behind stores it now and queues `backend` for the flush time (its failure is then
    /// logged and counted, not returned); read-through and cache-aside run `backend` and then
    /// drop the cached copies. An error of `backend` run now is returned and leaves the cache
    /// untouched.
    pub async fn write<T, E, Fut>(&self, key: &str, value: &T, backend: Fut) -> std::result::Result<(), E>
    where
        T: Serialize + Sync,
        E: std::fmt::Display + Send + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    {
        let now = self.inner.clock.now();
        let pending = lock(&self.inner.behind).queue.len();
        let d = self.inner.policy.on_write(key, pending, now);
        match d.backend {
            BackendWrite::Now => {
                if !lock(&self.inner.behind).queue.is_empty() {
                    // Earlier queued writes reach the backend first.
                    self.flush().await;
                }
                backend.await?;
            }
            BackendWrite::At(t) => {
                let mut b = lock(&self.inner.behind);
                let key = key.to_owned();
                b.queue.push((key, Box::pin(async move { backend.await.map_err(|e| e.to_string()) })));
                b.flush_at = Some(b.flush_at.map_or(t, |f| f.min(t)));
                drop(b);
                self.start_flusher();
            }
        }
        match d.cache {
            CacheWrite::Update(_) => self.fill(key, value).await,
            CacheWrite::Invalidate(_) => self.invalidate(&[key]).await,
            CacheWrite::Nothing => {}
        }
        Ok(())
    }

    /// Runs every queued write-behind backend write now, in order.
    pub async fn flush(&self) {
        Self::flush_inner(&self.inner).await;
    }

    async fn flush_inner(inner: &Inner) {
        let queue = {
            let mut b = lock(&inner.behind);
            b.flush_at = None;
            std::mem::take(&mut b.queue)
        };
        for (key, write) in queue {
            match write.await {
                Ok(()) => {
                    inner.stats.behind_applied.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    inner.stats.behind_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key, error = %e, "write-behind backend write failed");
                }
            }
        }
    }

    /// Writes queued for the backend (write-behind).
    pub fn pending_writes(&self) -> usize {
        lock(&self.inner.behind).queue.len()
    }

    fn start_flusher(&self) {
        if self.inner.flusher.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let wait = {
                    let Some(inner) = weak.upgrade() else { return };
                    let flush_at = lock(&inner.behind).flush_at;
                    match flush_at.map(|t| t.as_millis().saturating_sub(inner.clock.now().as_millis())) {
                        Some(0) => {
                            Self::flush_inner(&inner).await;
                            continue;
                        }
                        Some(ms) => ms.min(100),
                        None => 100,
                    }
                };
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        });
    }

    /// Where the cache stands: Redis reachability, hit rates and latency, memory of both levels.
    /// Asks Redis for `INFO memory` (bounded by the command deadline; absent when unreachable).
    pub async fn status(&self) -> CacheStatus {
        let s = &self.inner.stats;
        let requests = s.requests.load(Ordering::Relaxed);
        let (l1_hits, l2_hits, misses) =
            (s.l1_hits.load(Ordering::Relaxed), s.l2_hits.load(Ordering::Relaxed), s.misses.load(Ordering::Relaxed));
        let rate = |n: u64| if requests == 0 { 0.0 } else { n as f64 / requests as f64 };
        let elapsed = self.inner.started.elapsed().as_secs_f64().max(1e-9);
        let performance_metrics = PerformanceMetrics {
            requests,
            l1_hits,
            l2_hits,
            misses,
            hit_rate: rate(l1_hits + l2_hits),
            miss_rate: rate(misses),
            l1_hit_rate: rate(l1_hits),
            average_response_time_ms: if requests == 0 {
                0.0
            } else {
                s.latency_ns.load(Ordering::Relaxed) as f64 / requests as f64 / 1e6
            },
            throughput_per_second: requests as f64 / elapsed,
            errors: s.errors.load(Ordering::Relaxed),
            refreshes: s.refreshes.load(Ordering::Relaxed),
            write_behind_applied: s.behind_applied.load(Ordering::Relaxed),
            write_behind_failed: s.behind_failed.load(Ordering::Relaxed),
        };

        let l1 = &self.inner.l1;
        l1.sync().await;
        let l1_state = self.inner.policy.memory_state(l1.bytes(), l1.max_bytes());
        let mut memory_usage = MemoryUsage {
            l1_bytes: l1.bytes(),
            l1_entries: l1.entries(),
            l1_capacity_bytes: l1.max_bytes(),
            l1_state: band(l1_state.level).into(),
            l1_evicted: s.l1_evicted.load(Ordering::Relaxed),
            ..MemoryUsage::default()
        };
        let cluster_health = match &self.inner.l2 {
            None => ClusterHealth {
                status: "LocalOnly".into(),
                endpoint: None,
                connected: false,
                outages: 0,
                message: "no redisConfig endpoint or sentinelHosts: caching in process only".into(),
            },
            Some(l2) => {
                let info = if l2.is_up() { l2.memory().await } else { Err(L2Error::Unavailable) };
                match &info {
                    Ok(mem) => {
                        memory_usage.redis_used_bytes = Some(mem.used_bytes);
                        memory_usage.redis_peak_bytes = Some(mem.peak_bytes);
                        memory_usage.redis_max_bytes = Some(mem.max_bytes);
                        memory_usage.redis_policy = Some(mem.policy.clone());
                        memory_usage.redis_evicted_keys = Some(mem.evicted_keys);
                        if mem.max_bytes > 0 {
                            let st = self.inner.policy.memory_state(mem.used_bytes, mem.max_bytes);
                            memory_usage.redis_state = Some(band(st.level).into());
                        }
                        if let Some(m) = self.metrics() {
                            m.cache_memory_used("l2", mem.used_bytes);
                        }
                    }
                    Err(L2Error::Unavailable) => {}
                    Err(_) => self.l2_error("info"),
                }
                let up = l2.is_up();
                ClusterHealth {
                    status: if up { "Healthy" } else { "Degraded" }.into(),
                    endpoint: Some(l2.settings().describe()),
                    connected: up,
                    outages: l2.outages(),
                    message: if up {
                        "redis answers".into()
                    } else {
                        "redis unreachable: serving from L1 and the provider, reconnecting in the background".into()
                    },
                }
            }
        };
        if let Some(m) = self.metrics() {
            m.cache_memory_used("l1", memory_usage.l1_bytes);
            m.cache_l2_up.set(i64::from(cluster_health.connected));
        }
        CacheStatus { cluster_health, performance_metrics, memory_usage }
    }
}

fn band(level: MemoryLevel) -> &'static str {
    match level {
        MemoryLevel::Normal => "normal",
        MemoryLevel::Warning => "warning",
        MemoryLevel::Critical => "critical",
        MemoryLevel::Evicting => "evicting",
    }
}

impl ProviderCache {
    /// `now` on the cache's clock.
    pub fn now(&self) -> SimTime {
        self.inner.clock.now()
    }

    /// Stores several loaded values at once: L1 as [`ProviderCache::fill`] does, L2 in one
    /// pipeline (warming).
    pub async fn fill_many(&self, values: Vec<(String, Vec<u8>)>, read_at: SimTime) {
        let now = self.inner.clock.now();
        let mut l2_batch = Vec::new();
        for (key, bytes) in values {
            let bytes: Arc<[u8]> = Arc::from(bytes);
            let fill = self.inner.policy.on_fill(&key, version(&bytes), bytes.len() as u64, read_at);
            if let Some(meta) = fill.l1 {
                self.l1_insert(&key, bytes.clone(), meta, now).await;
            }
            if let Some(meta) = fill.l2.filter(|m| m.expires_at > now) {
                let ttl = Duration::from_millis(meta.expires_at.as_millis().saturating_sub(now.as_millis()));
                l2_batch.push((key, encode(&meta, &bytes), ttl));
            }
        }
        if let Some(l2) = &self.inner.l2 {
            match l2.set_many(&l2_batch).await {
                Ok(()) | Err(L2Error::Unavailable) => {}
                Err(_) => self.l2_error("set"),
            }
        }
    }
}
