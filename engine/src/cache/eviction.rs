//! Eviction: which entries go when a level is over its memory threshold.
//!
//! [`MemoryThresholds`] turns a level's use into a [`MemoryState`]: `normal`, `warning`,
//! `critical`, or `evicting` with how many bytes to free. At or above the eviction threshold the
//! level frees down to the target (by default the warning threshold), so one eviction round leaves
//! it strictly under the eviction threshold whenever enough entries exist.
//!
//! [`EvictionPolicy`] orders victims. Expired entries always go first (oldest expiry first: they
//! can never be served again), then live ones by the policy: LRU by last access, LFU by hit count
//! (then last access), FIFO by insertion. Ties go to the lower index, so the choice is a pure
//! function of the entries' metadata.

use serde::{Deserialize, Serialize};

use super::EntryMeta;
use crate::time::SimTime;

/// Which live entries are evicted first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EvictionPolicy {
    /// Least recently used (Redis' `allkeys-lru` / `volatile-lru` read as LRU).
    #[default]
    #[serde(rename = "lru", alias = "allkeys-lru", alias = "volatile-lru")]
    Lru,
    /// Least frequently used, ties by least recent use.
    #[serde(rename = "lfu", alias = "allkeys-lfu", alias = "volatile-lfu")]
    Lfu,
    /// First in, first out: the oldest insertion.
    #[serde(rename = "fifo")]
    Fifo,
}

impl EvictionPolicy {
    /// Name as written in configurations.
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::Lru => "lru",
            EvictionPolicy::Lfu => "lfu",
            EvictionPolicy::Fifo => "fifo",
        }
    }

    /// Victims among `entries`, in eviction order, until at least `bytes_to_free` bytes are freed
    /// (or every entry is chosen). Returns indices into `entries`.
    pub fn choose_victims(self, entries: &[EntryMeta], bytes_to_free: u64, now: SimTime) -> Vec<usize> {
        if bytes_to_free == 0 {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| {
            let e = &entries[i];
            let expired = e.expires_at <= now;
            // Expired first (by expiry), then by the policy's key; the index breaks ties.
            let (a, b) = if expired {
                (e.expires_at.0, 0)
            } else {
                match self {
                    EvictionPolicy::Lru => (e.last_access.0, 0),
                    EvictionPolicy::Lfu => (e.hits, e.last_access.0),
                    EvictionPolicy::Fifo => (e.stored_at.0, 0),
                }
            };
            (!expired, a, b, i)
        });
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for i in order {
            if freed >= bytes_to_free {
                break;
            }
            freed = freed.saturating_add(entries[i].size_bytes);
            victims.push(i);
        }
        victims
    }
}

/// Memory thresholds of a cache level, in percent of its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MemoryThresholds {
    /// From here the level reports `warning`.
    pub warning: f64,
    /// From here the level reports `critical`.
    pub critical: f64,
    /// From here the level evicts.
    pub eviction: f64,
    /// Where eviction frees down to; defaults to `warning`. Must be under `eviction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

impl Default for MemoryThresholds {
    fn default() -> Self {
        MemoryThresholds { warning: 70.0, critical: 85.0, eviction: 90.0, target: None }
    }
}

impl MemoryThresholds {
    /// Checks `0 < target < eviction`, `0 < warning <= critical <= eviction <= 100`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let pct = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 100.0 {
                Ok(())
            } else {
                Err((format!("memoryThresholds.{name}"), format!("{v} is not a percentage in (0, 100]")))
            }
        };
        pct("warning", self.warning)?;
        pct("critical", self.critical)?;
        pct("eviction", self.eviction)?;
        if self.warning > self.critical || self.critical > self.eviction {
            return Err((
                "memoryThresholds".into(),
                format!(
                    "thresholds must rise: warning ({}) <= critical ({}) <= eviction ({})",
                    self.warning, self.critical, self.eviction
                ),
            ));
        }
        if let Some(t) = self.target {
            pct("target", t)?;
            if t >= self.eviction {
                return Err((
                    "memoryThresholds.target".into(),
                    format!("{t} must be under the eviction threshold ({})", self.eviction),
                ));
            }
        } else if self.warning >= self.eviction {
            return Err((
                "memoryThresholds.target".into(),
                format!("warning equals eviction ({}), so give a target under it to evict down to", self.eviction),
            ));
        }
        Ok(())
    }

    /// The state of a level using `used` of `capacity` bytes.
    pub fn state(&self, used: u64, capacity: u64) -> MemoryState {
        if capacity == 0 {
            return MemoryState { level: MemoryLevel::Evicting, bytes_to_free: used };
        }
        let pct = used as f64 * 100.0 / capacity as f64;
        if pct >= self.eviction {
            let target = self.target.unwrap_or(self.warning);
            let keep = (capacity as f64 * target / 100.0).floor() as u64;
            MemoryState { level: MemoryLevel::Evicting, bytes_to_free: used.saturating_sub(keep) }
        } else if pct >= self.critical {
            MemoryState { level: MemoryLevel::Critical, bytes_to_free: 0 }
        } else if pct >= self.warning {
            MemoryState { level: MemoryLevel::Warning, bytes_to_free: 0 }
        } else {
            MemoryState { level: MemoryLevel::Normal, bytes_to_free: 0 }
        }
    }
}

/// How full a level is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryLevel {
    /// Under the warning threshold.
    Normal,
    /// At or over warning.
    Warning,
    /// At or over critical.
    Critical,
    /// At or over the eviction threshold: evict now.
    Evicting,
}

/// A level's memory state and what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryState {
    /// The band the use falls in.
    pub level: MemoryLevel,
    /// Bytes to evict now (zero unless `level` is `Evicting`).
    pub bytes_to_free: u64,
}
