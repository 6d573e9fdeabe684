//! `CacheIntegration`: the provider cache and its Redis backing (no controller yet).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnyValue, BasicStatus, FreeForm};

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
    status = "BasicStatus",
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CacheIntegrationSpec {
    /// Redis endpoint, credentials and topology (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_config: Option<FreeForm>,
    /// Caching strategy (`write-through`, `write-behind`, `cache-aside`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// TTLs per kind of entry: a list or a map (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_policies: Option<AnyValue>,
    /// Cache warming (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warming_config: Option<FreeForm>,
    /// Eviction policy (`lru`, `lfu`, `allkeys-lru`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_policy: Option<String>,
}
