//! `FederatedCluster`: member clusters whose API health feeds failover (no controller yet).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, FreeForm};

/// Desired state of a FederatedCluster.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "FederatedCluster",
    plural = "federatedclusters",
    shortname = "fc",
    category = "novacron",
    namespaced,
    status = "FederatedClusterStatus",
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeMembers"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FederatedClusterSpec {
    /// Member clusters.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Federation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
    /// How load is spread over members (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancing: Option<FreeForm>,
}

/// One member cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Its name.
    pub name: String,
    /// API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret with its kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Region it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Provider it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Share of load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// `federation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Federation {
    /// How often members are checked (`"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub heartbeat_interval: Option<String>,
    /// Missed heartbeats before a member is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// Anything else (kept as written).
    #[serde(flatten, default)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Observed state of a FederatedCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedClusterStatus {
    /// Health of each member.
    #[serde(default)]
    pub member_status: Vec<MemberStatus>,
    /// Members healthy now.
    #[serde(default)]
    pub active_members: u32,
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One member's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Member name.
    pub name: String,
    /// Whether its API answered.
    pub healthy: bool,
    /// Last successful heartbeat (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    /// Why not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
