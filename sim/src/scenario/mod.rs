//! Scenarios: a TOML file describing clouds, prices, demand and faults.
//!
//! Parsing is strict and happens in two steps, as in linfa's checked parameters: the text is read
//! into [`raw`] types (serde, unknown keys rejected), then [`check`] validates ranges and
//! cross-references and builds a [`Scenario`] of engine types. Only a checked scenario reaches
//! the simulator. Every error names the file, the line, the key and what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};

use engine::{Catalog, CostModel, EngineConfig, GroupId, Market, Provider, RegionId, SimDuration, SimTime, ZoneId};

use crate::dist::DurationDist;
use crate::trace::TraceRecord;

mod check;
pub(crate) mod raw;

pub use check::{load_model, parse};

/// A validated scenario, ready to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name, used for the default output folder.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Simulated time span.
    pub duration: SimDuration,
    /// Time-series resolution.
    pub sample_interval: SimDuration,
    /// Static world for the engine.
    pub catalog: Catalog,
    /// Money rules for the engine.
    pub cost: CostModel,
    /// Engine settings, including the policy.
    pub engine: EngineConfig,
    /// Mock-cloud behaviour per region, indexed like `catalog.regions`.
    pub regions: Vec<RegionSim>,
    /// Spot market behaviour per offer, indexed like `catalog.offers`.
    pub spot: Vec<Option<SpotSim>>,
    /// Group names, indexed by [`GroupId`].
    pub groups: Vec<String>,
    /// Demand.
    pub workload: Workload,
    /// Faults, in file order.
    pub faults: Vec<Fault>,
    /// Multi-cloud deployments.
    pub deployments: Vec<DeploymentSim>,
    /// The modeled cache, if the scenario has a `[cache]` section.
    pub cache: Option<crate::cache::CacheSim>,
}

/// A deployment and its scripted demand.
#[derive(Clone, Debug)]
pub struct DeploymentSim {
    /// What the engine is given.
    pub spec: engine::DeploymentSpec,
    /// Replicas needed from given times on (burst).
    pub demand: Vec<(SimTime, u32)>,
}

/// How a region's mock cloud behaves.
#[derive(Clone, Debug)]
pub struct RegionSim {
    /// Time from a create call to a running instance.
    pub provision_delay: DurationDist,
    /// Probability that a create call fails with an API error.
    pub api_error_rate: f64,
    /// Probability that a create call is throttled.
    pub throttle_rate: f64,
    /// Instance crashes per instance-hour.
    pub crash_rate_per_h: f64,
}

/// A spot market's price and interruption process.
#[derive(Clone, Debug)]
pub struct SpotSim {
    /// Long-run mean price $/h.
    pub mean_price: f64,
    /// Std-dev of the log-price change per step.
    pub volatility: f64,
    /// Pull towards the mean per step.
    pub mean_reversion: f64,
    /// Interruptions per instance-hour.
    pub interruption_rate_per_h: f64,
    /// Step of the process.
    pub step: SimDuration,
    /// Recorded series replacing the random process.
    pub series: Option<Vec<SeriesPoint>>,
    /// Highest price (the on-demand price).
    pub cap: f64,
}

/// One point of a recorded spot series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesPoint {
    /// From when.
    pub at: SimTime,
    /// Price $/h.
    pub price_per_h: f64,
    /// Interruptions per instance-hour.
    pub interruption_rate_per_h: f64,
}

/// Demand.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Arrival process.
    pub arrival: Arrival,
    /// Lifetime distribution (trace records bring their own).
    pub lifetime: DurationDist,
    /// Stop after this many requests.
    pub max_requests: Option<u64>,
    /// The request mix.
    pub shapes: Vec<Shape>,
    /// Bursts of extra demand.
    pub bursts: Vec<Burst>,
}

/// How requests arrive.
#[derive(Clone, Debug)]
pub enum Arrival {
    /// Constant-rate Poisson process.
    Poisson {
        /// Requests per second.
        rate_per_s: f64,
    },
    /// Poisson process whose rate follows a day: `mean × (1 + amplitude × cos(2π (t − peak) / 24h))`.
    Diurnal {
        /// Mean requests per second.
        mean_rate_per_s: f64,
        /// 0..1.
        amplitude: f64,
        /// Time of day of the peak.
        peak: SimDuration,
    },
    /// Replay of a trace, sorted by arrival.
    Trace {
        /// The records.
        records: std::sync::Arc<Vec<TraceRecord>>,
        /// Trace seconds per simulated second.
        time_scale: f64,
    },
}

/// One request shape.
#[derive(Clone, Debug)]
pub struct Shape {
    /// vCPU choices (uniform).
    pub vcpu: Vec<u32>,
    /// Memory choices in MiB (uniform).
    pub memory_mib: Vec<u64>,
    /// GPUs.
    pub gpu: u32,
    /// Relative weight in the mix.
    pub weight: f64,
    /// Whether spot may serve it.
    pub spot_allowed: bool,
    /// Allowed providers bit set (0 = any).
    pub providers: u8,
    /// Allowed regions (empty = any).
    pub regions: Vec<RegionId>,
    /// Price ceiling.
    pub max_price_per_h: Option<f64>,
    /// Users' location.
    pub users_near: Option<RegionId>,
    /// Group.
    pub group: Option<GroupId>,
    /// Whether to pass the lifetime to the engine.
    pub lifetime_hint: bool,
    /// Data sent to its users, GiB/h.
    pub egress_gib_per_h: f64,
}

/// A burst window.
#[derive(Clone, Debug)]
pub struct Burst {
    /// Start.
    pub start: SimTime,
    /// End.
    pub end: SimTime,
    /// Rate multiplier.
    pub multiplier: f64,
    /// Shapes used during the burst (empty = the normal mix).
    pub shapes: Vec<usize>,
}

/// A fault injected into the mock clouds.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Start.
    pub at: SimTime,
    /// End.
    pub end: SimTime,
    /// What.
    pub kind: FaultKind,
}

/// The kinds of fault.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// A region (or one zone of it) is down; the engine learns after `detect_after`.
    Outage {
        /// Region.
        region: RegionId,
        /// Only this zone, if set.
        zone: Option<ZoneId>,
        /// Detection delay.
        detect_after: SimDuration,
    },
    /// More spot interruptions (and optionally higher prices) in some regions.
    SpotStorm {
        /// Affected regions.
        regions: Vec<RegionId>,
        /// Interruption-rate multiplier.
        interruption_multiplier: f64,
        /// Price multiplier.
        price_multiplier: f64,
    },
    /// Prices multiply in a region.
    PriceSpike {
        /// Region.
        region: RegionId,
        /// Multiplier.
        multiplier: f64,
        /// Only this market, if set.
        market: Option<Market>,
    },
    /// Real capacity shrinks to a fraction in a region.
    CapacityCrunch {
        /// Region.
        region: RegionId,
        /// Fraction of nominal capacity left.
        fraction: f64,
    },
    /// Monitoring figures of a deployment during the window.
    Metrics {
        /// Deployment.
        deployment: GroupId,
        /// CPU utilisation, 0..1.
        cpu: Option<f64>,
        /// p99 latency, ms.
        latency_p99_ms: Option<f64>,
        /// API error rate, 0..1.
        api_error_rate: Option<f64>,
    },
    /// A manual failover.
    ManualFailover {
        /// Deployment.
        deployment: GroupId,
        /// Target.
        to: Option<RegionId>,
    },
}

/// Reading a scenario went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read the scenario: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{path}:{line}:{column}: {message}\n{snippet}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what is allowed.
        message: String,
        /// The offending line.
        snippet: String,
    },
    /// Values out of range or dangling references (all problems found).
    #[error("{}", Problems(.problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// File.
    pub path: PathBuf,
    /// 1-based line, when the key could be located.
    pub line: Option<usize>,
    /// Dotted key path such as `workload.shapes[1].vcpu`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.line {
                Some(l) => write!(f, "{}:{}: {}: {}", p.path.display(), l, p.key, p.message)?,
                None => write!(f, "{}: {}: {}", p.path.display(), p.key, p.message)?,
            }
        }
        Ok(())
    }
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// The provider of each region, for convenience.
pub fn provider_of(s: &Scenario, r: RegionId) -> Provider {
    s.catalog.regions[r.idx()].provider
}
