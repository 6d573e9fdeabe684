//! L1: the in-process level, a [moka](https://docs.rs/moka) `future::Cache` of serialized
//! entries, each with its own deadline.
//!
//! moka's [`Expiry`] gives every entry the time left until its deadline when it is inserted, so an
//! entry copied up from Redis keeps the deadline it was written with rather than getting a fresh
//! TTL. A read also compares the deadline with the clock itself: moka's timer wheel may keep an
//! expired entry a little longer than its deadline, and no value is ever served past its TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::SimTime;
use engine::cache::EntryMeta;

use moka::Expiry;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

/// An L1 entry: the JSON of the value, the engine's metadata and moka's deadline.
#[derive(Debug)]
pub struct L1Entry {
    /// The value's JSON.
    pub bytes: Arc<[u8]>,
    /// What the engine decided when it was stored (`expires_at`, `refresh_at`, version).
    pub meta: EntryMeta,
    /// `meta.expires_at` on the monotonic clock: when moka drops it.
    pub expires_at: Instant,
    hits: AtomicU64,
    last_access: AtomicU64,
}

impl L1Entry {
    /// An entry stored at `now` (wall clock) and `at` (monotonic clock).
    pub fn new(bytes: Arc<[u8]>, meta: EntryMeta, now: SimTime, at: Instant) -> Self {
        let left = meta.expires_at.as_millis().saturating_sub(now.as_millis());
        L1Entry {
            bytes,
            meta,
            expires_at: at + Duration::from_millis(left),
            hits: AtomicU64::new(0),
            last_access: AtomicU64::new(now.as_millis()),
        }
    }

    /// The metadata with the reads counted so far (for eviction).
    pub fn current_meta(&self) -> EntryMeta {
        EntryMeta {
            hits: self.hits.load(Ordering::Relaxed),
            last_access: SimTime(self.last_access.load(Ordering::Relaxed)),
            ..self.meta
        }
    }

    /// Counts a read at `now`.
    pub fn touch(&self, now: SimTime) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.last_access.fetch_max(now.as_millis(), Ordering::Relaxed);
    }
}

struct Deadline;

impl Expiry<String, Arc<L1Entry>> for Deadline {
    fn expire_after_create(&self, _: &String, value: &Arc<L1Entry>, created_at: Instant) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Arc<L1Entry>,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(updated_at))
    }
}

/// How L1 chooses what to evict when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L1Eviction {
    /// Least recently used.
    Lru,
    /// moka's TinyLFU: admission by estimated frequency, then LRU.
    Lfu,
}

/// The in-process level.
#[derive(Clone)]
pub struct L1 {
    cache: Cache<String, Arc<L1Entry>>,
    max_bytes: u64,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

impl L1 {
    /// An empty L1 holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64, eviction: L1Eviction) -> Self {
        let policy = match eviction {
            L1Eviction::Lru => EvictionPolicy::lru(),
            L1Eviction::Lfu => EvictionPolicy::tiny_lfu(),
        };
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(policy)
            .weigher(|k: &String, v: &Arc<L1Entry>| u32::try_from(k.len() + v.bytes.len()).unwrap_or(u32::MAX))
            .expire_after(Deadline)
            .build();
        L1 { cache, max_bytes }
    }

    /// The entry under `key` if it has not expired at `now`.
    pub async fn get(&self, key: &str, now: Instant) -> Option<Arc<L1Entry>> {
        let e = self.cache.get(key).await?;
        if e.expires_at <= now {
            self.cache.invalidate(key).await;
            return None;
        }
        Some(e)
    }

    /// Stores an entry (nothing if its deadline has passed).
    pub async fn insert(&self, key: String, entry: L1Entry) {
        if entry.expires_at > Instant::now() {
            self.cache.insert(key, Arc::new(entry)).await;
        } else {
            self.cache.invalidate(&key).await;
        }
    }

    /// Drops a key.
    pub async fn invalidate(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    /// Every entry with its key (for eviction decisions).
    pub fn entries_snapshot(&self) -> Vec<(String, Arc<L1Entry>)> {
        self.cache.iter().map(|(k, v)| ((*k).clone(), v)).collect()
    }

    /// Drops every key.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Runs moka's pending maintenance (expiry, eviction) so the sizes below are current.
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Bytes held (keys and values), as of the last maintenance.
    pub fn bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Entries held, as of the last maintenance.
    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// The configured capacity, bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}
