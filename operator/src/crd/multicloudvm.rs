//! `MultiCloudVM`: a group of identical VMs kept across clouds by a deployment strategy, with
//! failover triggers, cost limits, a migration policy and disaster recovery.
//!
//! The spec is NovaCron's v1 vocabulary (`deploymentStrategy`, `providers`, `vmTemplate`,
//! `costOptimization`, `disasterRecovery`, `migrationPolicy`) plus the keys the simulator's
//! `[[deployments]]` tables add (`replicas`, `vcpu`, `memoryGib`, `cooldown`, strategy
//! parameters such as `failback` or `holdDown`, ...): one description serves both, and
//! [`crate::translate`] turns it into the engine's `DeploymentSpec` exactly as the simulator does.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, FreeForm, NumOrStr, ObjectRef};

/// The finalizer that keeps a MultiCloudVM until its cloud instances are deleted.
pub const FINALIZER: &str = "novacron.io/instances";

/// Desired state of a MultiCloudVM.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "MultiCloudVM",
    plural = "multicloudvms",
    shortname = "mcvm",
    category = "novacron",
    namespaced,
    status = "MultiCloudVMStatus",
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.deploymentStrategy.type"),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.primaryProvider"),
    printcolumn(name = "Serving", type_ = "integer", json_path = ".status.health.serving"),
    printcolumn(name = "Cost/h", type_ = "number", json_path = ".status.totalCost.hourlyCost"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct MultiCloudVMSpec {
    /// Where replicas run and when they move.
    pub deployment_strategy: DeploymentStrategy,
    /// The clouds and regions this deployment may use, with their credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderSpec>,
    /// The VMTemplate each replica is made from (its CPU and memory requests size the replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_template: Option<ObjectRef>,
    /// Spot use and spend limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_optimization: Option<CostOptimization>,
    /// Backups and restore after the loss of a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster_recovery: Option<DisasterRecovery>,
    /// How replicas move between healthy locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_policy: Option<MigrationPolicy>,
    /// Replicas wanted (the burst strategy's baseline). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16777215))]
    pub replicas: Option<u32>,
    /// vCPUs of each replica when no `vmTemplate` is given. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vcpu: Option<u32>,
    /// Memory of each replica, GiB, when no `vmTemplate` is given. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// GPUs of each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// Region whose users the replicas serve (latency-aware placement, egress pricing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_near: Option<String>,
    /// Data each replica sends to its users, GiB per hour (billed as egress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_gib_per_h: Option<f64>,
    /// How often the engine evaluates the deployment. Default `"30s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub evaluate_every: Option<String>,
    /// At most one trigger-driven failover per cooldown. Default `"10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub cooldown: Option<String>,
    /// What happens after repeated spot interruptions of one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_recovery: Option<SpotRecovery>,
}

/// `deploymentStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.type != 'active-passive' || has(self.primary)", "message": "active-passive needs a primary location" },
    { "rule": "self.type != 'active-passive' || (has(self.secondary) && size(self.secondary) > 0)", "message": "active-passive needs at least one secondary location" },
    { "rule": "self.type != 'burst' || has(self.primary)", "message": "burst needs a primary location" }
]))]
pub struct DeploymentStrategy {
    /// `active-passive`, `active-active`, `burst` or `cost-optimized`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["active-passive", "active-active", "burst", "cost-optimized"]))]
    pub kind: String,
    /// The primary location (a region name such as `aws-us-east`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Secondary locations, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary: Vec<String>,
    /// When to fail over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_triggers: Vec<Trigger>,
    /// active-passive: return to the primary once it is healthy again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<bool>,
    /// active-passive: how long the primary must stay healthy before failing back. Default `"15m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_down: Option<String>,
    /// active-active: weighted locations (default: primary and secondaries, weight 1 each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<WeightedLocation>,
    /// active-active: how long a lost location must stay healthy before replicas return. Default `"10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_after: Option<String>,
    /// burst: overflow targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// burst: most replicas in the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_max: Option<u32>,
    /// burst: how long demand must stay low before scaling in. Default `"10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_in_after: Option<String>,
    /// burst: replicas added or removed at a time. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// burst: most replicas in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// cost-optimized: the period over which a move must pay for itself. Default `"24h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<String>,
    /// cost-optimized: saving over the horizon / cost of the move needed to move. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_saving_ratio: Option<f64>,
    /// cost-optimized: share of replicas that may move per window (`"10%"` or 0.1). Default 10 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<NumOrStr>,
    /// cost-optimized: the disruption budget's window. Default `"1h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// cost-optimized: data moved with a replica, GiB. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_gib: Option<f64>,
    /// cost-optimized: service lost per move. Default `"2m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<String>,
    /// cost-optimized: what an hour of downtime costs, $. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_cost_per_hour: Option<f64>,
    /// cost-optimized: how long old and new instance are both billed per move. Default `"10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
}

/// A weighted active-active location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WeightedLocation {
    /// Region name.
    pub region: String,
    /// Relative share of replicas. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A failover (or migration) trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Trigger {
    /// `availability`, `performance` (`cpu:80%`, `latency:200ms`), `cpu`, `latency`,
    /// `spot-interruption`, `cost` or `api-error-rate`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["availability", "performance", "cpu", "latency", "spot-interruption", "cost", "api-error-rate"]))]
    pub kind: String,
    /// `"95%"`, `"cpu:80%"`, `"latency:200ms"`, a count of notices, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<NumOrStr>,
    /// How long the condition must hold. Default `"5m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// One cloud account and region the deployment may use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// `aws`, `azure`, `gcp` or `onprem`.
    pub name: String,
    /// The provider's region (`us-east-1`, `eastus`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Not supported: a spec naming a Secret here is refused (`SpecValid` False). The operator
    /// creates VMs with the credentials of its own providers file only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Provider-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<FreeForm>,
    /// Cost tier label (`standard`, `spot`, `reserved`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_tier: Option<String>,
    /// Zones allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub availability_zones: Vec<String>,
}

/// `costOptimization`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostOptimization {
    /// Whether replicas may run on spot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_spot_instances: Option<bool>,
    /// Spend cap, $/h (`"1.00"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_per_hour: Option<NumOrStr>,
    /// Alerts on spend (kept as written; not acted on yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_alerts: Option<Vec<FreeForm>>,
    /// Scaling on cost (kept as written; not acted on yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_based_scaling: Option<FreeForm>,
}

/// `disasterRecovery`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisasterRecovery {
    /// Off when `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Recovery time objective (`"30m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<String>,
    /// Recovery point objective (`"15m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<String>,
    /// How backups are taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_strategy: Option<BackupStrategy>,
}

/// `disasterRecovery.backupStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStrategy {
    /// `full` or `incremental` (a full one every `fullEvery`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["full", "incremental"]))]
    pub kind: Option<String>,
    /// Five-field cron expression, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Region the backups are stored in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Every Nth backup is full. Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<u32>,
    /// Backups kept. Default 14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<u32>,
    /// Size of the data, GiB. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_gib: Option<f64>,
    /// How fast the data changes, GiB/h. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_rate_gib_per_hour: Option<f64>,
    /// Throughput to the backup region, GiB/s. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_gib_per_s: Option<f64>,
}

/// `migrationPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPolicy {
    /// `live`, `warm` or `cold`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["live", "warm", "cold"]))]
    pub kind: String,
    /// `cost` (threshold: the saving, as a share of the current price) and performance triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Cost thresholds (kept as written; the engine reads the `cost` trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_thresholds: Option<FreeForm>,
    /// Performance thresholds (kept as written; the engine reads performance triggers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_thresholds: Option<FreeForm>,
    /// Guest memory, GiB (default: the replica's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// Disk to move, GiB. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<f64>,
    /// Memory dirty rate, GiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_rate_gib_per_s: Option<f64>,
    /// Bandwidth within one cloud, GiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_gib_per_s: Option<f64>,
    /// Bandwidth between clouds, GiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_cloud_bandwidth_gib_per_s: Option<f64>,
    /// Most pre-copy rounds (live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_precopy_rounds: Option<u32>,
    /// Longest acceptable pause (live). Default `"300ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_limit: Option<String>,
    /// Pause and resume overhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_overhead: Option<String>,
    /// Warm switch-over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_over: Option<String>,
    /// Snapshot rate (cold), GiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_rate_gib_per_s: Option<f64>,
    /// Boot time of the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<String>,
    /// Source and target share storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_storage: Option<bool>,
}

/// `spotRecovery`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpotRecovery {
    /// After this many interruptions a replica runs on demand. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_after: Option<u32>,
    /// How long it stays on demand. Default `"1h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_to_spot_after: Option<String>,
}

/// Observed state of a MultiCloudVM.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiCloudVMStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `SpecValid` and `Ready`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Every cloud instance serving or being set up for this deployment.
    #[serde(default)]
    pub cloud_deployments: Vec<CloudDeployment>,
    /// The provider where the active location is (active-passive), or that serves most replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_provider: Option<String>,
    /// The region of `primaryProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_region: Option<String>,
    /// What it costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost: Option<TotalCost>,
    /// Failovers and migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
    /// Replicas serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// One cloud instance of the deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudDeployment {
    /// Replica slot it serves.
    pub slot: u32,
    /// `aws`, `azure`, `gcp` or `onprem`.
    pub provider: String,
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// The provider's instance id (empty until the cloud has answered).
    pub instance_id: String,
    /// The `VirtualMachine` object that owns the cloud instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<String>,
    /// Instance type.
    pub instance_type: String,
    /// `on-demand` or `spot`.
    pub market: String,
    /// `Provisioning` or `Running`.
    pub state: String,
    /// Price at placement, $/h.
    pub hourly_cost: f64,
    /// The idempotency token the instance was created with.
    pub client_token: String,
}

/// `totalCost`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotalCost {
    /// Always `USD`.
    pub currency: String,
    /// Current spend rate, $/h.
    pub hourly_cost: f64,
    /// Spent since the operator started tracking the deployment, $ (instances billed per second
    /// with the engine's billing rules).
    pub total_cost: f64,
    /// Per provider.
    #[serde(default)]
    pub breakdown: BTreeMap<String, ProviderCost>,
}

/// One provider's share of `totalCost`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCost {
    /// $/h now.
    pub hourly_cost: f64,
    /// $ so far.
    pub total_cost: f64,
}

/// `migration`: the deployment's moves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Failovers decided so far.
    pub failovers: u32,
    /// The latest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Failover>,
    /// Replica migrations completed.
    pub migrations: u32,
}

/// One failover.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// Region left.
    pub from: String,
    /// Region moved to.
    pub to: String,
    /// Why (`trigger:availability`, `unhealthy`, `manual`, `failback`, ...).
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// `health`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Replicas wanted.
    pub replicas: u32,
    /// Replicas running at a healthy location.
    pub serving: u32,
    /// Regions the provider reports unhealthy.
    #[serde(default)]
    pub unhealthy_regions: Vec<String>,
}
