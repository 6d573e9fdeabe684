//! Cache policy: a two-level cache in front of cloud API calls, as pure decisions.
//!
//! NovaCron caches what it asks clouds for (prices, VM state and health, metrics, configuration)
//! in two levels: **L1**, in the process (the operator's moka cache, the simulator's model), and
//! **L2**, shared between processes (Redis). This module owns the *rules*; the caller owns the
//! storage and the clock. Every decision is a pure function of the key, the metadata of what is
//! stored ([`EntryMeta`]) and `now`, so the simulator can measure exactly the policy the operator
//! runs.
//!
//! ## Rules per key
//! [`CacheConfig`] (the fields of the `CacheIntegration` resource: `strategy`, `ttlPolicies`,
//! `warmingConfig`, `evictionPolicy`, plus `consistency`, `memoryThresholds` and defaults) is
//! validated once into a [`CachePolicy`]. `ttlPolicies` maps key patterns (`vm:*`, `metrics:*`,
//! `config:*`; see [`pattern`]) to a TTL, a refresh mode, the levels the key lives in and its
//! consistency; the most specific matching pattern wins, else the defaults apply
//! ([`CachePolicy::key_policy`]). A TTL of `0` means "never cache".
//!
//! ## Reads
//! [`CachePolicy::on_read`] looks at the L1 and L2 entries and answers a [`ReadDecision`]:
//! * a value is served only while `now < expires_at` — **never past its TTL**;
//! * `eventual` keys are served from L1 while L1's copy lives (at most `l1Ttl`, which bounds how
//!   long a write elsewhere can go unseen), else from L2 (copied into L1);
//! * `strong` keys are served from L1 only if L2 holds the same version (a version check: one
//!   small L2 round trip instead of the value), else from L2, else they miss;
//! * `lazy` refresh reloads on the first read after expiry (a miss); `eager` refresh marks reads
//!   after `refreshAt × TTL` as hits that should start a background refresh, so hot keys never
//!   expire under their readers;
//! * on a miss, `read-through` has the cache load the value, `cache-aside` has the caller load it
//!   and store it ([`CachePolicy::on_fill`] gives the entries to store).
//!
//! ## Writes
//! [`CachePolicy::on_write`] answers a [`WriteDecision`]: `write-through` updates the cache and
//! the backend now; `write-behind` updates the cache now and the backend at the end of the current
//! `flushDelay` window (or now once `maxBatch` writes are pending); `read-through` and
//! `cache-aside` write the backend and invalidate the cached copies. `strong` keys also invalidate
//! every other process's L1 synchronously; `eventual` keys leave them to expire.
//!
//! ## Memory
//! [`eviction`] picks victims (LRU, LFU, FIFO, expired entries first) and turns memory use into
//! warning / critical / evicting states; [`warming`] plans which keys to load ahead, by pattern
//! priority within a budget.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, SimTime};

pub mod eviction;
pub mod pattern;
pub mod warming;

pub use eviction::{EvictionPolicy, MemoryLevel, MemoryState, MemoryThresholds};
pub use pattern::Pattern;
pub use warming::{WarmPatternConfig, WarmingConfig, WarmingPlanner};

/// An invalid cache configuration: the field (as a path like `ttlPolicies[1].ttl`) and what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field has a value the policy cannot use.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the field, in the configuration's own (camelCase) names.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Result with the cache module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid { field: field.into(), message: message.into() }
}

/// A cache level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// In the process.
    L1,
    /// Shared (Redis).
    L2,
}

/// The levels a key lives in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Levels {
    /// Only in the process.
    L1,
    /// Only in the shared cache.
    L2,
    /// In both: L1 in front of L2.
    #[default]
    Both,
}

impl Levels {
    /// Whether `level` is one of them.
    pub fn has(self, level: Level) -> bool {
        matches!((self, level), (Levels::Both, _) | (Levels::L1, Level::L1) | (Levels::L2, Level::L2))
    }
    /// Name as written in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Levels::L1 => "l1",
            Levels::L2 => "l2",
            Levels::Both => "both",
        }
    }
}

/// When an entry is reloaded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refresh {
    /// On the first read after expiry.
    Lazy,
    /// Ahead of expiry: reads from `at × TTL` after storing start a background refresh.
    Eager {
        /// Fraction of the TTL, in (0, 1).
        at: f64,
    },
}

/// How fresh reads must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Writes invalidate L1 and L2 synchronously; L1 serves only after a version check with L2.
    Strong,
    /// L1 may serve its copy until its own TTL, even after a write elsewhere.
    #[default]
    Eventual,
}

/// The write strategies, as `strategy` in the CacheIntegration resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Write cache and backend together.
    WriteThrough,
    /// Write the cache now, the backend later in batches.
    WriteBehind,
    /// The cache loads misses itself; writes go to the backend and invalidate.
    ReadThrough,
    /// The caller loads misses and stores them; writes go to the backend and invalidate.
    #[default]
    CacheAside,
}

impl StrategyKind {
    /// Name as written in configurations.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::WriteThrough => "write-through",
            StrategyKind::WriteBehind => "write-behind",
            StrategyKind::ReadThrough => "read-through",
            StrategyKind::CacheAside => "cache-aside",
        }
    }
}

/// Refresh mode as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshKind {
    /// Reload on the first read after expiry.
    #[default]
    Lazy,
    /// Reload ahead of expiry.
    Eager,
}

/// `writeBehind`: how backend writes are batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WriteBehindConfig {
    /// Writes are flushed at the end of windows this long (a duration such as `"5s"`).
    pub flush_delay: String,
    /// Flush at once when this many writes are pending.
    pub max_batch: u32,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig { flush_delay: "5s".into(), max_batch: 100 }
    }
}

/// One entry of the list form of `ttlPolicies`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtlRuleConfig {
    /// Keys it applies to (glob).
    pub pattern: String,
    /// Time to live (`"30s"`, `"5m"`; `"0"` = never cache).
    pub ttl: String,
    /// `lazy` or `eager`; default: the top-level `refresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshKind>,
    /// For `eager`: the fraction of the TTL after which reads refresh; default: top-level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_at: Option<f64>,
    /// `l1`, `l2` or `both`; default: top-level `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Levels>,
    /// `strong` or `eventual`; default: top-level `consistency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// `ttlPolicies`: a map `pattern → ttl`, or a list of rules with more settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TtlPolicies {
    /// `{ "vm:*" = "30s", prices = "5m" }` (checked in key order).
    Map(BTreeMap<String, String>),
    /// `[{ pattern = "vm:*", ttl = "30s", refresh = "eager" }, ...]` (checked in list order).
    List(Vec<TtlRuleConfig>),
}

impl Default for TtlPolicies {
    fn default() -> Self {
        TtlPolicies::List(Vec::new())
    }
}

/// The cache configuration as written (the CacheIntegration spec's caching fields). Durations
/// are strings (`"90s"`, `"5m"`); [`CachePolicy::new`] validates everything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `write-through`, `write-behind`, `read-through` or `cache-aside` (default).
    pub strategy: StrategyKind,
    /// Batching of `write-behind`.
    pub write_behind: WriteBehindConfig,
    /// Default consistency: `eventual` (default) or `strong`.
    pub consistency: Consistency,
    /// TTL of keys no pattern matches (default `"5m"`).
    pub default_ttl: String,
    /// Default levels: `both` (default), `l1` or `l2`.
    pub level: Levels,
    /// Default refresh: `lazy` (default) or `eager`.
    pub refresh: RefreshKind,
    /// Default eager-refresh point, a fraction of the TTL in (0, 1) (default 0.8).
    pub refresh_at: f64,
    /// Longest an L1 copy is served (bounds staleness after writes elsewhere); default: the TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1_ttl: Option<String>,
    /// TTL (and refresh, level, consistency) per key pattern.
    pub ttl_policies: TtlPolicies,
    /// What to load ahead.
    pub warming_config: WarmingConfig,
    /// `lru` (default, also `allkeys-lru`), `lfu` or `fifo`.
    pub eviction_policy: EvictionPolicy,
    /// Warning / critical / eviction thresholds in percent.
    pub memory_thresholds: MemoryThresholds,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            strategy: StrategyKind::default(),
            write_behind: WriteBehindConfig::default(),
            consistency: Consistency::default(),
            default_ttl: "5m".into(),
            level: Levels::default(),
            refresh: RefreshKind::default(),
            refresh_at: 0.8,
            l1_ttl: None,
            ttl_policies: TtlPolicies::default(),
            warming_config: WarmingConfig::default(),
            eviction_policy: EvictionPolicy::default(),
            memory_thresholds: MemoryThresholds::default(),
        }
    }
}

/// The validated rules for one key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyPolicy {
    /// Where the key lives.
    pub levels: Levels,
    /// Time to live in L2 (and in L1 unless capped by `l1_ttl`); zero = never cached.
    pub ttl: SimDuration,
    /// Time to live in L1.
    pub l1_ttl: SimDuration,
    /// When it is reloaded.
    pub refresh: Refresh,
    /// How fresh reads must be.
    pub consistency: Consistency,
    /// Index of the `ttlPolicies` rule that matched, `None` for the defaults.
    pub rule: Option<usize>,
}

impl KeyPolicy {
    /// Whether the key is cached at all.
    pub fn cached(&self) -> bool {
        self.ttl > SimDuration::ZERO
    }
}

/// The write strategy with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStrategy {
    /// Cache and backend together.
    WriteThrough,
    /// Cache now, backend at the end of the `flush_delay` window or when `max_batch` are pending.
    WriteBehind {
        /// Flush window.
        flush_delay: SimDuration,
        /// Pending writes that force a flush.
        max_batch: u32,
    },
    /// Backend, then invalidate; the cache loads misses.
    ReadThrough,
    /// Backend, then invalidate; the caller loads misses.
    CacheAside,
}

/// What the cache stores beside a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryMeta {
    /// When the value was stored.
    pub stored_at: SimTime,
    /// First instant the value may no longer be served.
    pub expires_at: SimTime,
    /// From when reads should refresh it ahead (eager refresh); `NEVER` for lazy.
    pub refresh_at: SimTime,
    /// Version of the value (the backend's, or a write counter).
    pub version: u64,
    /// Size in bytes, for memory accounting.
    pub size_bytes: u64,
    /// Last read or write.
    pub last_access: SimTime,
    /// Reads served from it.
    pub hits: u64,
}

impl EntryMeta {
    /// Whether the entry may be served at `now`.
    pub fn fresh(&self, now: SimTime) -> bool {
        now < self.expires_at
    }
}

/// Why a read missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MissReason {
    /// Nothing stored.
    Absent,
    /// Something stored, but past its TTL.
    Expired,
    /// A strong key's L1 copy differs from L2 and L2 has nothing fresh.
    VersionMismatch,
    /// The key's TTL is zero: never cached.
    Uncached,
}

/// Who loads a missed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loader {
    /// The cache (read-through, and the write strategies, whose caches load on miss too).
    Cache,
    /// The caller (cache-aside).
    Caller,
}

/// The answer to a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadDecision {
    /// Serve the cached value.
    Hit {
        /// Where it comes from.
        level: Level,
        /// An L2 hit should be copied into L1.
        promote: bool,
        /// Start a background refresh (eager refresh point passed).
        refresh: bool,
        /// The L1 copy was checked against L2's version (strong keys).
        validated: bool,
    },
    /// Load from the backend (then store with [`CachePolicy::on_fill`]).
    Miss {
        /// Why.
        reason: MissReason,
        /// Who loads.
        loader: Loader,
    },
}

impl ReadDecision {
    /// Whether the value comes from the cache.
    pub fn is_hit(&self) -> bool {
        matches!(self, ReadDecision::Hit { .. })
    }
}

/// What to store after loading a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FillDecision {
    /// The L1 entry, if the key lives in L1.
    pub l1: Option<EntryMeta>,
    /// The L2 entry, if the key lives in L2.
    pub l2: Option<EntryMeta>,
}

/// What a write does to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheWrite {
    /// Store the new value in these levels (entries from [`CachePolicy::on_fill`]).
    Update(Levels),
    /// Drop the cached copies in these levels.
    Invalidate(Levels),
    /// Nothing (uncached key).
    Nothing,
}

/// When a write reaches the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendWrite {
    /// Synchronously.
    Now,
    /// Batched, at this time.
    At(SimTime),
}

/// The answer to a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteDecision {
    /// This process's cache.
    pub cache: CacheWrite,
    /// The backend.
    pub backend: BackendWrite,
    /// Invalidate other processes' L1 copies synchronously (strong keys).
    pub invalidate_peers_l1: bool,
}

/// A validated `ttlPolicies` rule.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    pattern: Pattern,
    policy: KeyPolicy,
}

/// A validated cache configuration: answers every caching question as a pure function.
#[derive(Clone, Debug, PartialEq)]
pub struct CachePolicy {
    rules: Vec<Rule>,
    default: KeyPolicy,
    strategy: WriteStrategy,
    warming: WarmingPlanner,
    eviction: EvictionPolicy,
    memory: MemoryThresholds,
}

fn duration(field: &str, text: &str) -> Result<SimDuration> {
    SimDuration::parse(text).map_err(|e| invalid(field, e.to_string()))
}

fn fraction(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} is not a fraction of the TTL in (0, 1), such as 0.8")))
    }
}

impl CachePolicy {
    /// Validates a configuration. Errors name the field (`ttlPolicies[1].ttl`) and what is allowed.
    pub fn new(config: &CacheConfig) -> Result<Self> {
        let default_ttl = duration("defaultTtl", &config.default_ttl)?;
        let l1_cap = match &config.l1_ttl {
            Some(t) => {
                let d = duration("l1Ttl", t)?;
                if d == SimDuration::ZERO {
                    return Err(invalid("l1Ttl", "must be above zero (use level = \"l2\" to keep keys out of L1)"));
                }
                Some(d)
            }
            None => None,
        };
        let default_at = fraction("refreshAt", config.refresh_at)?;
        let make = |field: &str,
                    ttl: SimDuration,
                    refresh: RefreshKind,
                    at: f64,
                    levels: Levels,
                    consistency: Consistency,
                    rule: Option<usize>|
         -> Result<KeyPolicy> {
            if consistency == Consistency::Strong && levels == Levels::L1 {
                return Err(invalid(
                    field,
                    "consistency \"strong\" needs L2 to check versions against: use level \"l2\" or \"both\"",
                ));
            }
            let refresh = match refresh {
                RefreshKind::Lazy => Refresh::Lazy,
                RefreshKind::Eager => Refresh::Eager { at },
            };
            let l1_ttl = match l1_cap {
                Some(c) => c.min(ttl),
                None => ttl,
            };
            Ok(KeyPolicy { levels, ttl, l1_ttl, refresh, consistency, rule })
        };
        let default =
            make("consistency", default_ttl, config.refresh, default_at, config.level, config.consistency, None)?;

        let mut rules = Vec::new();
        match &config.ttl_policies {
            TtlPolicies::Map(map) => {
                for (i, (pattern, ttl)) in map.iter().enumerate() {
                    let field = format!("ttlPolicies.{pattern:?}");
                    let p = Pattern::parse(pattern).map_err(|m| invalid(&field, m))?;
                    let ttl = duration(&field, ttl)?;
                    let policy =
                        make(&field, ttl, config.refresh, default_at, config.level, config.consistency, Some(i))?;
                    rules.push(Rule { pattern: p, policy });
                }
            }
            TtlPolicies::List(list) => {
                for (i, r) in list.iter().enumerate() {
                    let field = format!("ttlPolicies[{i}]");
                    let p = Pattern::parse(&r.pattern).map_err(|m| invalid(format!("{field}.pattern"), m))?;
                    let ttl = duration(&format!("{field}.ttl"), &r.ttl)?;
                    let at = match r.refresh_at {
                        Some(a) => fraction(&format!("{field}.refreshAt"), a)?,
                        None => default_at,
                    };
                    let policy = make(
                        &format!("{field}.consistency"),
                        ttl,
                        r.refresh.unwrap_or(config.refresh),
                        at,
                        r.level.unwrap_or(config.level),
                        r.consistency.unwrap_or(config.consistency),
                        Some(i),
                    )?;
                    if let Some(j) = rules.iter().position(|q: &Rule| q.pattern == p) {
                        return Err(invalid(
                            format!("{field}.pattern"),
                            format!("pattern {:?} is already given by ttlPolicies[{j}]", r.pattern),
                        ));
                    }
                    rules.push(Rule { pattern: p, policy });
                }
            }
        }

        let strategy = match config.strategy {
            StrategyKind::WriteThrough => WriteStrategy::WriteThrough,
            StrategyKind::ReadThrough => WriteStrategy::ReadThrough,
            StrategyKind::CacheAside => WriteStrategy::CacheAside,
            StrategyKind::WriteBehind => {
                let flush_delay = duration("writeBehind.flushDelay", &config.write_behind.flush_delay)?;
                if flush_delay == SimDuration::ZERO {
                    return Err(invalid("writeBehind.flushDelay", "must be above zero (or use write-through)"));
                }
                if config.write_behind.max_batch == 0 {
                    return Err(invalid("writeBehind.maxBatch", "must be at least 1"));
                }
                WriteStrategy::WriteBehind { flush_delay, max_batch: config.write_behind.max_batch }
            }
        };

        let w = &config.warming_config;
        let mut patterns = Vec::new();
        for (i, wp) in w.patterns.iter().enumerate() {
            let p =
                Pattern::parse(&wp.pattern).map_err(|m| invalid(format!("warmingConfig.patterns[{i}].pattern"), m))?;
            patterns.push((p, wp.priority));
        }
        if w.enabled && patterns.is_empty() {
            return Err(invalid("warmingConfig.patterns", "warming is enabled but no pattern says what to warm"));
        }
        if w.max_keys == Some(0) {
            return Err(invalid("warmingConfig.maxKeys", "must be at least 1 (or set enabled = false)"));
        }
        let schedule = match &w.schedule {
            Some(s) => Some(crate::dr::Schedule::parse(s).map_err(|m| invalid("warmingConfig.schedule", m))?),
            None => None,
        };
        let warming = WarmingPlanner { enabled: w.enabled, patterns, max_keys: w.max_keys, schedule };

        config.memory_thresholds.validate().map_err(|(f, m)| invalid(f, m))?;

        Ok(CachePolicy {
            rules,
            default,
            strategy,
            warming,
            eviction: config.eviction_policy,
            memory: config.memory_thresholds,
        })
    }

    /// The rules for `key`: the most specific matching pattern (the first written among equally
    /// specific ones), else the defaults.
    pub fn key_policy(&self, key: &str) -> KeyPolicy {
        let mut best: Option<&Rule> = None;
        for r in &self.rules {
            if r.pattern.matches(key) && best.is_none_or(|b| r.pattern.specificity() > b.pattern.specificity()) {
                best = Some(r);
            }
        }
        best.map_or(self.default, |r| r.policy)
    }

    /// The write strategy.
    pub fn strategy(&self) -> WriteStrategy {
        self.strategy
    }

    /// The eviction policy.
    pub fn eviction(&self) -> EvictionPolicy {
        self.eviction
    }

    /// The memory thresholds.
    pub fn memory(&self) -> &MemoryThresholds {
        &self.memory
    }

    /// The warming planner.
    pub fn warming(&self) -> &WarmingPlanner {
        &self.warming
    }

    /// The patterns of `ttlPolicies`, in rule order.
    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.rules.iter().map(|r| &r.pattern)
    }

    /// Decides a read of `key` given what L1 and L2 hold. Never serves an entry at or past its
    /// `expires_at`.
    pub fn on_read(&self, key: &str, l1: Option<&EntryMeta>, l2: Option<&EntryMeta>, now: SimTime) -> ReadDecision {
        let kp = self.key_policy(key);
        let loader = match self.strategy {
            WriteStrategy::CacheAside => Loader::Caller,
            _ => Loader::Cache,
        };
        if kp.ttl == SimDuration::ZERO {
            return ReadDecision::Miss { reason: MissReason::Uncached, loader };
        }
        let l1 = l1.filter(|_| kp.levels.has(Level::L1));
        let l2 = l2.filter(|_| kp.levels.has(Level::L2));
        let l2_fresh = l2.filter(|e| e.fresh(now));
        let mut mismatch = false;
        if let Some(e) = l1.filter(|e| e.fresh(now)) {
            match kp.consistency {
                Consistency::Eventual => {
                    return ReadDecision::Hit {
                        level: Level::L1,
                        promote: false,
                        refresh: self.refresh_due(&kp, e, now),
                        validated: false,
                    };
                }
                Consistency::Strong => match l2_fresh {
                    Some(v) if v.version == e.version => {
                        return ReadDecision::Hit {
                            level: Level::L1,
                            promote: false,
                            refresh: self.refresh_due(&kp, e, now),
                            validated: true,
                        };
                    }
                    _ => mismatch = true,
                },
            }
        }
        if let Some(e) = l2_fresh {
            return ReadDecision::Hit {
                level: Level::L2,
                promote: kp.levels.has(Level::L1),
                refresh: self.refresh_due(&kp, e, now),
                validated: false,
            };
        }
        let reason = if mismatch {
            MissReason::VersionMismatch
        } else if l1.is_some() || l2.is_some() {
            MissReason::Expired
        } else {
            MissReason::Absent
        };
        ReadDecision::Miss { reason, loader }
    }

    fn refresh_due(&self, kp: &KeyPolicy, e: &EntryMeta, now: SimTime) -> bool {
        matches!(kp.refresh, Refresh::Eager { .. }) && now >= e.refresh_at
    }

    /// The entries to store for a value of `key` loaded (or written) at `now`.
    pub fn on_fill(&self, key: &str, version: u64, size_bytes: u64, now: SimTime) -> FillDecision {
        let kp = self.key_policy(key);
        if kp.ttl == SimDuration::ZERO {
            return FillDecision { l1: None, l2: None };
        }
        let entry = |ttl: SimDuration| {
            let refresh_at = match kp.refresh {
                Refresh::Lazy => SimTime::NEVER,
                Refresh::Eager { at } => SimTime(now.0.saturating_add((ttl.as_millis() as f64 * at).floor() as u64)),
            };
            EntryMeta {
                stored_at: now,
                expires_at: SimTime(now.0.saturating_add(ttl.as_millis())),
                refresh_at,
                version,
                size_bytes,
                last_access: now,
                hits: 0,
            }
        };
        FillDecision {
            l1: kp.levels.has(Level::L1).then(|| entry(kp.l1_ttl)),
            l2: kp.levels.has(Level::L2).then(|| entry(kp.ttl)),
        }
    }

    /// The L1 copy of an L2 entry served at `now` (a promoted hit): it keeps the L2 entry's
    /// store time and version, and expires at the L1 TTL from now or with the L2 entry, whichever
    /// is first, so promotion never extends a value's life.
    pub fn promote(&self, key: &str, l2: &EntryMeta, now: SimTime) -> EntryMeta {
        let kp = self.key_policy(key);
        EntryMeta {
            expires_at: l2.expires_at.min(SimTime(now.0.saturating_add(kp.l1_ttl.as_millis()))),
            last_access: now,
            hits: 0,
            ..*l2
        }
    }

    /// Decides a write of `key` at `now`, with `pending` writes already waiting for a write-behind
    /// flush.
    pub fn on_write(&self, key: &str, pending: usize, now: SimTime) -> WriteDecision {
        let kp = self.key_policy(key);
        let strong = kp.consistency == Consistency::Strong;
        if kp.ttl == SimDuration::ZERO {
            return WriteDecision {
                cache: CacheWrite::Nothing,
                backend: BackendWrite::Now,
                invalidate_peers_l1: false,
            };
        }
        let (cache, backend) = match self.strategy {
            WriteStrategy::WriteThrough => (CacheWrite::Update(kp.levels), BackendWrite::Now),
            WriteStrategy::WriteBehind { flush_delay, max_batch } => {
                let backend = if pending.saturating_add(1) >= max_batch as usize {
                    BackendWrite::Now
                } else {
                    BackendWrite::At(Self::flush_time(flush_delay, now))
                };
                (CacheWrite::Update(kp.levels), backend)
            }
            WriteStrategy::ReadThrough | WriteStrategy::CacheAside => {
                (CacheWrite::Invalidate(kp.levels), BackendWrite::Now)
            }
        };
        WriteDecision { cache, backend, invalidate_peers_l1: strong && kp.levels.has(Level::L1) }
    }

    /// End of the write-behind window holding `now`: the next multiple of `flush_delay` after it.
    fn flush_time(flush_delay: SimDuration, now: SimTime) -> SimTime {
        let d = flush_delay.as_millis().max(1);
        SimTime((now.0 / d).saturating_add(1).saturating_mul(d))
    }

    /// The eager refresh instant of an entry, if the key refreshes ahead (for callers that
    /// schedule refreshes instead of waiting for a read).
    pub fn refresh_time(&self, key: &str, entry: &EntryMeta) -> Option<SimTime> {
        match self.key_policy(key).refresh {
            Refresh::Eager { .. } => Some(entry.refresh_at),
            Refresh::Lazy => None,
        }
    }

    /// The memory state of a level using `used` of `capacity` bytes.
    pub fn memory_state(&self, used: u64, capacity: u64) -> MemoryState {
        self.memory.state(used, capacity)
    }

    /// Victims to evict from `entries` so that a level using `used` of `capacity` bytes gets
    /// back under its thresholds (empty unless it is at or over the eviction threshold).
    pub fn evict(&self, entries: &[EntryMeta], used: u64, capacity: u64, now: SimTime) -> Vec<usize> {
        let state = self.memory.state(used, capacity);
        self.eviction.choose_victims(entries, state.bytes_to_free, now)
    }

    /// The keys of `universe` to warm, in order, at most `budget` (see [`warming`]).
    pub fn warming_plan<'a, I>(&self, universe: I, budget: usize) -> Vec<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        self.warming.plan(universe, budget)
    }
}
