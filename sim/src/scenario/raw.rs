//! The scenario file as written: serde types that mirror the TOML, with unknown keys rejected.
//! Nothing here is checked beyond syntax and types; [`super::check`] turns it into a
//! [`super::Scenario`].

use engine::{PolicyConfig, Provider};
use serde::Deserialize;

/// A number, or a list of numbers to choose from uniformly.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// A uniform choice among these.
    Many(Vec<T>),
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Scenario name (names the default output folder).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of every random stream.
    pub seed: u64,
    /// Simulated time span, such as "6h".
    pub duration: String,
    /// Time-series resolution, default "1m".
    #[serde(default)]
    pub sample_interval: Option<String>,
    /// The placement policy.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Engine settings.
    #[serde(default)]
    pub engine: RawEngine,
    /// Money.
    #[serde(default)]
    pub cost: RawCost,
    /// Machine shapes.
    #[serde(default)]
    pub instance_types: Vec<RawInstanceType>,
    /// Regions.
    #[serde(default)]
    pub regions: Vec<RawRegion>,
    /// Cloud offers.
    #[serde(default)]
    pub offers: Vec<RawOffer>,
    /// On-prem pools.
    #[serde(default)]
    pub pools: Vec<RawPool>,
    /// Deployment groups with their budgets.
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    /// Demand.
    pub workload: RawWorkload,
    /// Outages, storms, spikes.
    #[serde(default)]
    pub faults: Vec<RawFault>,
    /// Multi-cloud deployments.
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
    /// Price tables that price offers like the real clouds (`data/prices/*.csv`).
    #[serde(default)]
    pub pricing: Option<RawPricing>,
    /// A modeled cache in front of the clouds' read APIs.
    #[serde(default)]
    pub cache: Option<RawCache>,
}

/// `[pricing]`: a price table file per provider, relative to the scenario file. An offer in a
/// region of a provider with a table may leave out `on_demand` (and a spot market its `price`):
/// the table prices it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub aws: Option<String>,
    pub azure: Option<String>,
    pub gcp: Option<String>,
}

/// `[cache]`: the simulator's side (sizes, rate limit, polling) and the engine's policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Read-API calls per provider per second (default 10).
    pub api_rate_limit: Option<u64>,
    /// L1 capacity in entries (default 1000).
    pub l1_entries: Option<u64>,
    /// L2 capacity in entries (default 100000).
    pub l2_entries: Option<u64>,
    /// VM state / metrics / health polling period (default "1m").
    pub poll_interval: Option<String>,
    /// `[cache.policy]`: the engine's cache configuration (CacheIntegration field names).
    #[serde(default)]
    pub policy: engine::cache::CacheConfig,
}

/// `[engine]`: durations as strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub capacity_backoff: Option<String>,
    pub spot_block: Option<String>,
    pub max_attempts: Option<u32>,
    pub retry_backoff: Option<String>,
    pub retry_backoff_max: Option<String>,
    pub queue_timeout: Option<String>,
    pub replace_on_notice: Option<bool>,
    pub interruption_half_life: Option<String>,
}

/// `[cost]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    /// Hard cap on the fleet's spend, $/h.
    pub max_per_h: Option<f64>,
    /// Billing granularity, default "1s".
    pub billing_granularity: Option<String>,
    /// Minimum charge, default "60s".
    pub billing_minimum: Option<String>,
    /// Egress prices $/GiB.
    pub egress_inter_zone_per_gib: Option<f64>,
    pub egress_inter_region_per_gib: Option<f64>,
    pub egress_inter_cloud_per_gib: Option<f64>,
    /// Reservations and savings plans.
    #[serde(default)]
    pub commitments: Vec<RawCommitment>,
}

/// A commitment; reserved instances name their offer as "region/zone/instance-type".
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawCommitment {
    /// Reserved instances.
    Reserved { offer: String, count: u32, fee_per_h: f64 },
    /// A savings plan.
    SavingsPlan { provider: Provider, committed_per_h: f64, discount: f64 },
}

/// `[[instance_types]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstanceType {
    pub name: String,
    pub vcpu: u32,
    pub memory_gib: f64,
    #[serde(default)]
    pub gpu: u32,
}

/// A duration distribution as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "dist", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawDist {
    Fixed { value: String },
    Uniform { min: String, max: String },
    Exponential { mean: String },
    Lognormal { median: String, sigma: f64 },
    Pareto { scale: String, shape: f64 },
    Weibull { scale: String, shape: f64 },
}

/// `[[regions]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub name: String,
    pub provider: Provider,
    #[serde(default)]
    pub zones: Vec<String>,
    /// `[latitude, longitude]` in degrees, for latency.
    pub location: [f64; 2],
    #[serde(default)]
    pub carbon_g_per_kwh: Option<f64>,
    #[serde(default)]
    pub provision_delay: Option<RawDist>,
    #[serde(default)]
    pub api_error_rate: Option<f64>,
    #[serde(default)]
    pub throttle_rate: Option<f64>,
    #[serde(default)]
    pub crash_rate_per_h: Option<f64>,
    /// Other names of this region, as manifests may write them (`aws-us-east`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The cloud's own name of the region in the price tables (default: the name without its
    /// `<provider>-` prefix, `aws-us-east-1` → `us-east-1`).
    #[serde(default)]
    pub cloud_region: Option<String>,
}

/// `[[offers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffer {
    pub region: String,
    /// Zones to offer in (default: every zone of the region).
    #[serde(default)]
    pub zones: Vec<String>,
    pub instance_type: String,
    /// On-demand $/h; from the `[pricing]` table when left out.
    #[serde(default)]
    pub on_demand: Option<f64>,
    /// Instances per zone.
    pub capacity: u32,
    #[serde(default)]
    pub spot: Option<RawSpot>,
}

/// A spot market.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpot {
    /// Starting (and long-run mean) price $/h.
    pub price: Option<f64>,
    /// Std-dev of log-price change per step.
    #[serde(default)]
    pub volatility: Option<f64>,
    /// Pull towards the mean per step, 0..1.
    #[serde(default)]
    pub mean_reversion: Option<f64>,
    /// Interruptions per instance-hour.
    #[serde(default)]
    pub interruption_rate_per_h: Option<f64>,
    /// How often price and interruptions are drawn, default "5m".
    #[serde(default)]
    pub step: Option<String>,
    /// A recorded series instead of the random process: CSV `time_s,price_per_h,interruption_rate_per_h`.
    #[serde(default)]
    pub series: Option<String>,
}

/// `[[pools]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub zone: Option<String>,
    pub hosts: u32,
    pub host_vcpu: u32,
    pub host_memory_gib: f64,
    #[serde(default)]
    pub host_gpu: u32,
    /// $ per vCPU-hour.
    pub per_vcpu_h: f64,
    /// $ per GiB-hour.
    #[serde(default)]
    pub per_gib_h: f64,
    #[serde(default)]
    pub fit: Option<engine::Fit>,
}

/// `[[groups]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    #[serde(default)]
    pub budget_per_h: Option<f64>,
}

/// `[workload]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub arrival: RawArrival,
    #[serde(default)]
    pub lifetime: Option<RawDist>,
    #[serde(default)]
    pub max_requests: Option<u64>,
    #[serde(default)]
    pub shapes: Vec<RawShape>,
    #[serde(default)]
    pub bursts: Vec<RawBurst>,
}

/// How requests arrive.
#[derive(Debug, Deserialize)]
#[serde(tag = "process", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawArrival {
    /// Constant-rate Poisson.
    Poisson { rate_per_s: f64 },
    /// Poisson with a daily sinusoidal rate.
    Diurnal { mean_rate_per_s: f64, amplitude: f64, peak: String },
    /// Replay of a recorded trace.
    Trace {
        path: String,
        format: crate::trace::TraceFormat,
        #[serde(default)]
        time_scale: Option<f64>,
    },
}

/// One request shape of the mix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShape {
    pub vcpu: OneOrMany<u32>,
    #[serde(default)]
    pub memory_gib: Option<OneOrMany<f64>>,
    #[serde(default)]
    pub memory_mib: Option<OneOrMany<u64>>,
    #[serde(default)]
    pub gpu: u32,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub spot_allowed: bool,
    #[serde(default)]
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub max_price_per_h: Option<f64>,
    #[serde(default)]
    pub users_near: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Pass the lifetime to the engine as a hint.
    #[serde(default)]
    pub lifetime_hint: bool,
    /// Data sent to its users, GiB/h (billed as egress).
    #[serde(default)]
    pub egress_gib_per_h: Option<f64>,
}

/// A burst: the arrival rate times `multiplier` during `[start, start + duration)`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurst {
    pub start: String,
    pub duration: String,
    pub multiplier: f64,
    /// Shapes used during the burst (indices into `shapes`); default all.
    #[serde(default)]
    pub shapes: Vec<usize>,
}

/// `[[faults]]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawFault {
    /// A whole region goes down.
    RegionOutage {
        region: String,
        at: String,
        duration: String,
        #[serde(default)]
        detect_after: Option<String>,
    },
    /// One zone goes down.
    ZoneOutage {
        region: String,
        zone: String,
        at: String,
        duration: String,
        #[serde(default)]
        detect_after: Option<String>,
    },
    /// Spot interruptions multiply in a region (all regions of a provider with `provider`).
    SpotStorm {
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        provider: Option<Provider>,
        at: String,
        duration: String,
        interruption_multiplier: f64,
        #[serde(default)]
        price_multiplier: Option<f64>,
    },
    /// Prices of a region's offers multiply.
    PriceSpike {
        region: String,
        at: String,
        duration: String,
        multiplier: f64,
        #[serde(default)]
        market: Option<engine::Market>,
    },
    /// The cloud's real capacity in a region shrinks to a fraction (the engine does not know).
    CapacityCrunch { region: String, at: String, duration: String, fraction: f64 },
    /// Monitoring reports these figures for a deployment during the window.
    Metrics {
        deployment: String,
        at: String,
        duration: String,
        #[serde(default)]
        cpu: Option<NumOrStr>,
        #[serde(default)]
        latency_p99: Option<String>,
        #[serde(default)]
        api_error_rate: Option<NumOrStr>,
    },
    /// An operator fails a deployment over by hand.
    ManualFailover {
        deployment: String,
        at: String,
        #[serde(default)]
        to: Option<String>,
    },
}

/// A number, or a string such as `"95%"`, `"cpu:80%"`, `"200ms"` or `"1.00"` (manifest style).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum NumOrStr {
    /// A plain number.
    Num(f64),
    /// Text to parse.
    Str(String),
}

/// `[[deployments]]`: a multi-cloud deployment in the NovaCron v1 `MultiCloudVM` vocabulary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeployment {
    pub name: String,
    pub replicas: u32,
    pub vcpu: u32,
    #[serde(default)]
    pub memory_gib: Option<f64>,
    #[serde(default)]
    pub gpu: u32,
    #[serde(default)]
    pub users_near: Option<String>,
    #[serde(default)]
    pub egress_gib_per_h: Option<f64>,
    #[serde(default)]
    pub evaluate_every: Option<String>,
    #[serde(default)]
    pub cooldown: Option<String>,
    /// A `novacron.io/v1` `MultiCloudVM` manifest (YAML) whose `spec.deploymentStrategy` and
    /// `spec.costOptimization` this deployment uses.
    #[serde(default)]
    pub manifest: Option<String>,
    #[serde(default)]
    pub deployment_strategy: Option<RawStrategy>,
    #[serde(default)]
    pub cost_optimization: Option<RawCostOptimization>,
    #[serde(default)]
    pub spot_recovery: Option<RawSpotRecovery>,
    #[serde(default)]
    pub migration_policy: Option<RawMigrationPolicy>,
    #[serde(default)]
    pub disaster_recovery: Option<RawDisasterRecovery>,
    /// Replicas a burst deployment needs from given times on.
    #[serde(default)]
    pub demand: Vec<RawDemand>,
}

/// A `MultiCloudVM` manifest as far as the simulator reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawManifest {
    pub api_version: String,
    pub kind: String,
    pub spec: RawManifestSpec,
}

/// The parts of a `MultiCloudVM` spec the simulator uses; the rest (providers, vmTemplate) is
/// the operator's business and ignored here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawManifestSpec {
    pub deployment_strategy: RawStrategy,
    #[serde(default)]
    pub cost_optimization: Option<RawCostOptimization>,
    #[serde(default)]
    pub migration_policy: Option<RawMigrationPolicy>,
    #[serde(default)]
    pub disaster_recovery: Option<RawDisasterRecovery>,
}

/// `migrationPolicy`: how replicas move between healthy locations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMigrationPolicy {
    /// `live`, `warm` or `cold`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `cost` (threshold: the saving, as a share of the current price) and performance triggers.
    #[serde(default)]
    pub triggers: Vec<RawTrigger>,
    #[serde(default)]
    pub memory_gib: Option<f64>,
    #[serde(default)]
    pub disk_gib: Option<f64>,
    #[serde(default)]
    pub dirty_rate_gib_per_s: Option<f64>,
    #[serde(default)]
    pub bandwidth_gib_per_s: Option<f64>,
    #[serde(default)]
    pub cross_cloud_bandwidth_gib_per_s: Option<f64>,
    #[serde(default)]
    pub max_precopy_rounds: Option<u32>,
    #[serde(default)]
    pub downtime_limit: Option<String>,
    #[serde(default)]
    pub pause_overhead: Option<String>,
    #[serde(default)]
    pub switch_over: Option<String>,
    #[serde(default)]
    pub snapshot_rate_gib_per_s: Option<f64>,
    #[serde(default)]
    pub boot_time: Option<String>,
    #[serde(default)]
    pub shared_storage: Option<bool>,
}

/// `disasterRecovery`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDisasterRecovery {
    #[serde(default)]
    pub enabled: Option<bool>,
    pub rto: String,
    pub rpo: String,
    pub backup_strategy: RawBackupStrategy,
}

/// `disasterRecovery.backupStrategy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackupStrategy {
    /// `full` (every backup full) or `incremental` (a full one every `fullEvery`).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Cron expression (five fields, UTC from the start of the run).
    pub schedule: String,
    /// Region the backups are stored in.
    pub target: String,
    #[serde(default)]
    pub full_every: Option<u32>,
    #[serde(default)]
    pub retention: Option<u32>,
    #[serde(default)]
    pub data_gib: Option<f64>,
    #[serde(default)]
    pub change_rate_gib_per_hour: Option<f64>,
    #[serde(default)]
    pub bandwidth_gib_per_s: Option<f64>,
}

/// `deploymentStrategy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub secondary: Vec<String>,
    #[serde(default)]
    pub failover_triggers: Vec<RawTrigger>,
    #[serde(default)]
    pub failback: Option<bool>,
    #[serde(default)]
    pub hold_down: Option<String>,
    /// active-active: `[{ region = "...", weight = 2 }]`.
    #[serde(default)]
    pub locations: Vec<RawWeighted>,
    #[serde(default)]
    pub restore_after: Option<String>,
    /// burst: overflow targets.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub primary_max: Option<u32>,
    #[serde(default)]
    pub scale_in_after: Option<String>,
    #[serde(default)]
    pub step: Option<u32>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// cost-optimized.
    #[serde(default)]
    pub horizon: Option<String>,
    #[serde(default)]
    pub min_saving_ratio: Option<f64>,
    #[serde(default)]
    pub disruption_budget: Option<NumOrStr>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub data_gib: Option<f64>,
    #[serde(default)]
    pub downtime: Option<String>,
    #[serde(default)]
    pub downtime_cost_per_hour: Option<f64>,
    #[serde(default)]
    pub overlap: Option<String>,
}

/// A weighted location.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub region: String,
    #[serde(default)]
    pub weight: Option<f64>,
}

/// `failoverTriggers[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub threshold: Option<NumOrStr>,
    #[serde(default)]
    pub duration: Option<String>,
}

/// `costOptimization`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCostOptimization {
    #[serde(default)]
    pub use_spot_instances: Option<bool>,
    #[serde(default)]
    pub max_cost_per_hour: Option<NumOrStr>,
}

/// `spotRecovery`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSpotRecovery {
    #[serde(default)]
    pub on_demand_after: Option<u32>,
    #[serde(default)]
    pub back_to_spot_after: Option<String>,
}

/// A demand step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemand {
    pub at: String,
    pub replicas: u32,
}
