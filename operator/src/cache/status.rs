//! What a CacheIntegration's status reports: `clusterHealth`, `performanceMetrics` and
//! `memoryUsage`, as [`super::ProviderCache::status`] computes them. The controller puts these
//! pieces into the resource's status as they are (they serialize in the v1 camelCase names).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reachability of Redis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// `Healthy` (Redis answers), `Degraded` (Redis unreachable: serving from L1 and the provider,
    /// reconnecting), or `LocalOnly` (no Redis configured).
    pub status: String,
    /// Where the cache connects (`redis://host:port/db`, or the Sentinel master name and
    /// sentinels); no credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Whether the last Redis command or reconnection succeeded.
    pub connected: bool,
    /// Outages seen since the cache started (times Redis stopped answering).
    pub outages: u64,
    /// A sentence for people.
    pub message: String,
}

/// Hit rates, latency and throughput since the cache started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceMetrics {
    /// Reads.
    pub requests: u64,
    /// Reads answered from L1.
    pub l1_hits: u64,
    /// Reads answered from L2.
    pub l2_hits: u64,
    /// Reads answered by the provider.
    pub misses: u64,
    /// Share of reads answered by the cache (either level), 0–1.
    pub hit_rate: f64,
    /// Share of reads answered by the provider, 0–1.
    pub miss_rate: f64,
    /// Share of reads answered from L1, 0–1.
    pub l1_hit_rate: f64,
    /// Mean read latency, milliseconds (hits and misses, the provider call included).
    pub average_response_time_ms: f64,
    /// Reads per second since the cache started.
    pub throughput_per_second: f64,
    /// Failed Redis operations.
    pub errors: u64,
    /// Background refreshes started (eager refresh).
    pub refreshes: u64,
    /// Write-behind writes applied, and dropped (queue full or failed).
    pub write_behind_applied: u64,
    /// Write-behind writes that failed.
    pub write_behind_failed: u64,
}

/// Memory of both levels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUsage {
    /// L1 bytes (keys and values).
    pub l1_bytes: u64,
    /// L1 entries.
    pub l1_entries: u64,
    /// L1 capacity, bytes.
    pub l1_capacity_bytes: u64,
    /// The engine's memory band for L1: `normal`, `warning`, `critical`, `evicting`.
    pub l1_state: String,
    /// L1 entries evicted by the engine's eviction policy.
    pub l1_evicted: u64,
    /// Redis `used_memory`, bytes (absent while Redis is unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_used_bytes: Option<u64>,
    /// Redis `used_memory_peak`, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_peak_bytes: Option<u64>,
    /// Redis `maxmemory`, bytes (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_max_bytes: Option<u64>,
    /// Redis `maxmemory-policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_policy: Option<String>,
    /// Redis `evicted_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_evicted_keys: Option<u64>,
    /// The engine's memory band for Redis (of `maxmemory`; absent without a limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_state: Option<String>,
}

/// The three status pieces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    /// `clusterHealth`.
    pub cluster_health: ClusterHealth,
    /// `performanceMetrics`.
    pub performance_metrics: PerformanceMetrics,
    /// `memoryUsage`.
    pub memory_usage: MemoryUsage,
}
