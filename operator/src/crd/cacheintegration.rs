//! `CacheIntegration`: the operator's provider cache (L1 in process, L2 Redis) and its rules.
//!
//! The [`crate::cache_controller`] reconciles it: the oldest CacheIntegration in the cluster
//! configures the cache in front of every cloud call of the operator; its status reports Redis'
//! health, hit rates and memory.
//!
//! The spec is typed field by field. Values the engine reads from a closed vocabulary
//! (`strategy`, `consistency`, `level`, `refresh`, `evictionPolicy`) are strings whose schema
//! lists the allowed values, so the API server refuses a typo; they stay strings in Rust so that
//! an object stored before the schema said so still reaches the controller, which then names the
//! field in the `SpecValid` condition instead of failing to read the object. `ttlPolicies` is a
//! map (`pattern: ttl`) in the v1 manifests and a list of rules in richer ones: a structural
//! schema cannot say "object or array", so it is kept as written and the controller checks it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnyValue, Condition};
use crate::cache::status::{ClusterHealth, MemoryUsage, PerformanceMetrics};

/// The finalizer that lets the controller stop using a deleted CacheIntegration's cache.
pub const FINALIZER: &str = "novacron.io/cache";

/// Desired state of a CacheIntegration.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "CacheIntegration",
    plural = "cacheintegrations",
    shortname = "nci",
    category = "novacron",
    namespaced,
    status = "CacheIntegrationStatus",
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
    printcolumn(name = "Redis", type_ = "string", json_path = ".status.clusterHealth.status"),
    printcolumn(name = "Hit rate", type_ = "number", json_path = ".status.performanceMetrics.hitRate"),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.conditions[?(@.type==\"Active\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.consistency) || self.consistency != 'strong' || !has(self.level) || self.level != 'l1'",
     "message": "consistency strong needs L2 to check versions against: use level l2 or both"},
]))]
pub struct CacheIntegrationSpec {
    /// Redis endpoint (or Sentinel), credentials and TLS. Without `endpoint` and `sentinelHosts`
    /// the cache is in-process only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_config: Option<RedisConfig>,
    /// Write strategy: `write-through`, `write-behind`, `read-through` or `cache-aside`
    /// (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["write-through", "write-behind", "read-through", "cache-aside"]))]
    pub strategy: Option<String>,
    /// Batching of `write-behind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_behind: Option<WriteBehind>,
    /// Default consistency: `eventual` (default; an L1 copy may be served until its own TTL) or
    /// `strong` (L1 serves only after a version check with Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["strong", "eventual"]))]
    pub consistency: Option<String>,
    /// TTL of keys no `ttlPolicies` pattern matches (default `0`: only the keys a pattern names
    /// are cached, so instance state and region health stay live unless a pattern says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub default_ttl: Option<String>,
    /// Default levels a key lives in: `both` (default), `l1` or `l2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["l1", "l2", "both"]))]
    pub level: Option<String>,
    /// Default refresh: `lazy` (default: reload on the first read after expiry) or `eager`
    /// (reload in the background from `refreshAt` × TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["lazy", "eager"]))]
    pub refresh: Option<String>,
    /// Default eager-refresh point, a fraction of the TTL in (0, 1) (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub refresh_at: Option<f64>,
    /// Longest an L1 copy is served (bounds how long a write elsewhere goes unseen); default: the
    /// key's TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub l1_ttl: Option<String>,
    /// TTL per key pattern: a map `pattern: ttl` (`prices: 5m`, `"vm:*": 30s`), or a list of
    /// rules `{pattern, ttl, refresh, refreshAt, level, consistency}`. The most specific matching
    /// pattern wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_policies: Option<AnyValue>,
    /// Cache warming: on start and on `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warming_config: Option<WarmingConfig>,
    /// Which L1 entries go first under memory pressure: `lru` (default; also Redis' `allkeys-lru`
    /// and `volatile-lru`), `lfu` (also `allkeys-lfu`, `volatile-lfu`) or `fifo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["lru", "lfu", "fifo", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu"]))]
    pub eviction_policy: Option<String>,
    /// Memory bands of a level, in percent of its capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_thresholds: Option<MemoryThresholds>,
}

/// `redisConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.endpoint) || !has(self.sentinelHosts)", "message": "give either endpoint or sentinelHosts, not both"},
    {"rule": "!has(self.credentialsSecret) || !has(self.passwordSecret)", "message": "give either credentialsSecret or passwordSecret, not both"},
]))]
pub struct RedisConfig {
    /// `host:port`, or a URL `redis://host:port/db` / `rediss://host:port/db` (TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Find the master through Redis Sentinel: `["host:port", ...]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"type": "string", "pattern": "^.+:[0-9]+$"}))]
    pub sentinel_hosts: Option<Vec<String>>,
    /// The master's name in Sentinel (default `mymaster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_name: Option<String>,
    /// Database number (default 0, or the endpoint URL's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15))]
    pub database: Option<i64>,
    /// TLS (implied by `rediss://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Accept any server certificate (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Secret (in the resource's namespace) with `password`, optionally `username` (ACL user)
    /// and `sentinelPassword`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// The same, as the v1 examples name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// Secret with `ca.crt`, optionally `tls.crt` and `tls.key` (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret: Option<String>,
    /// Key namespace: keys are `novacron:<clusterName>:<key>` (default: the resource's
    /// namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\S+$"))]
    pub cluster_name: Option<String>,
    /// Deadline of one Redis command (default `250ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub timeout: Option<String>,
    /// Deadline of one connection attempt (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub connect_timeout: Option<String>,
    /// First reconnection delay (default `500ms`, doubling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub backoff_min: Option<String>,
    /// Longest reconnection delay (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub backoff_max: Option<String>,
    /// Capacity of the in-process level, bytes (default 64 MiB, at least 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65536))]
    pub l1_max_bytes: Option<i64>,
}

/// `writeBehind`: how `write-behind` batches backend writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteBehind {
    /// Writes are flushed at the end of windows this long (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub flush_delay: Option<String>,
    /// Flush at once when this many writes are pending (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_batch: Option<u32>,
}

/// `warmingConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmingConfig {
    /// Warm at all (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Keys to warm (glob), higher priority first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patterns: Option<Vec<WarmPattern>>,
    /// At most this many keys per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_keys: Option<u64>,
    /// When to warm again: a 5-field cron expression, UTC (`*/15 * * * *`); warming also runs
    /// when the cache starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\S+( +\S+){4}$"))]
    pub schedule: Option<String>,
}

/// One `warmingConfig.patterns` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmPattern {
    /// Keys (glob, such as `prices` or `vm:*`).
    pub pattern: String,
    /// Higher warms first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// `memoryThresholds`, percent of a level's capacity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.warning) ? self.warning : 70.0) <= (has(self.critical) ? self.critical : 85.0) && (has(self.critical) ? self.critical : 85.0) <= (has(self.eviction) ? self.eviction : 90.0)",
     "message": "thresholds must rise: warning <= critical <= eviction (defaults 70, 85, 90)"},
    {"rule": "!has(self.target) || self.target < (has(self.eviction) ? self.eviction : 90.0)",
     "message": "target must be under the eviction threshold"},
]))]
pub struct MemoryThresholds {
    /// From here the level reports `warning` (default 70).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub warning: Option<f64>,
    /// From here the level reports `critical` (default 85).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub critical: Option<f64>,
    /// From here L1 evicts (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub eviction: Option<f64>,
    /// Where eviction frees down to (default: `warning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub target: Option<f64>,
}

/// Observed state of a CacheIntegration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheIntegrationStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `SpecValid`, `Active` (this resource configures the operator's cache), `Degraded`
    /// (Redis unreachable: serving from L1 and the cloud) and `Ready`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Redis reachability (absent while the resource is not the active one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_health: Option<ClusterHealth>,
    /// Hit and miss rates, response time, throughput since the cache was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_metrics: Option<PerformanceMetrics>,
    /// Memory of both levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<MemoryUsage>,
}
