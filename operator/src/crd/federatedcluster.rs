//! `FederatedCluster`: member clusters whose API health feeds failover. The controller is
//! [`crate::federation_controller`].

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, FreeForm};

/// The finalizer that removes a deleted FederatedCluster's down regions from the market data
/// the deployments' engines read.
pub const FINALIZER: &str = "novacron.io/federation-health";

/// Heartbeat interval without `federation.heartbeatInterval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: &str = "30s";

/// Missed heartbeats before a member is unhealthy, without `federation.failureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Keys of the credentials Secret that may hold the kubeconfig, in the order they are tried
/// (`value` is where Cluster API writes a workload cluster's kubeconfig).
pub const KUBECONFIG_KEYS: [&str; 2] = ["kubeconfig", "value"];

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
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Degraded", type_ = "string", json_path = ".status.conditions[?(@.type==\"Degraded\")].status"),
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
    /// API server URL (`https://host:6443`). Without `credentialsSecret` it is probed
    /// anonymously (`/readyz` is public on a default kube-apiserver); with one it replaces the
    /// kubeconfig's `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret in the FederatedCluster's namespace whose key `kubeconfig` (or `value`, as
    /// Cluster API writes it) holds the member's kubeconfig, with inline credentials only
    /// (token or client certificate data: no `exec`, `auth-provider` or file paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Region it runs in, as the catalog names it (`aws-us-east-1`) or an alias (`aws-us-east`).
    /// While the member is unhealthy the region is down for every deployment's engine.
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
    /// How often members are checked (`"30s"`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub heartbeat_interval: Option<String>,
    /// Missed heartbeats in a row before a member is unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
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
    /// When the members were last checked (RFC 3339): the next heartbeat is due one
    /// `heartbeatInterval` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<String>,
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
    /// False once it missed `failureThreshold` heartbeats in a row, or when it cannot be
    /// checked (its credentials cannot be used).
    pub healthy: bool,
    /// Last successful heartbeat (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    /// Heartbeats missed in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Why not healthy, or the last missed heartbeat (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
