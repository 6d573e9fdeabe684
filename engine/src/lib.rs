//! # NovaCron engine
//!
//! The deterministic core of NovaCron: it decides where virtual machines run across AWS, Azure,
//! GCP and on-prem pools, what they cost, and what to do when a location fails. The simulator
//! (`sim`) and the Kubernetes operator (`operator`) both drive this same crate, so a policy measured
//! in simulation is, decision for decision, the policy that runs in production.
//!
//! ## Model
//! A [`Catalog`] holds the static world: regions and zones of each [`Provider`], instance types,
//! [`Offer`]s (an instance type in a zone with on-demand and spot prices and a capacity, or an
//! on-prem host pool), validated once. A [`Snapshot`] holds what changes: prices (with their
//! integrals, so billing is exact however often they move), capacity in use, health, host pools'
//! free space, spend and spread. A [`VmRequest`] asks for resources under constraints.
//!
//! ## Decisions
//! A [`PlacementPolicy`] is a pure function `decide(&request, &snapshot, now) -> Decision`. Policies
//! are chosen with the serde-tagged [`PolicyConfig`] (`kind = "cost-optimized"`, ...). Every
//! decision carries the per-objective [`Scores`] that explain it.
//!
//! ## Driving it
//! [`Engine::handle`] takes one time-stamped [`Event`] (a request arrived, an instance is running
//! or failed, a spot interruption notice, a health or price change, a timer) and appends
//! [`Action`]s (provision, terminate, set a timer, reject). The engine has no clock, no I/O and no
//! random numbers: time comes in as `now`, and the same events give the same actions, bit for bit.
//! Ties are broken by catalog order; internal maps use a fixed hasher and are never iterated where
//! order could leak into a decision.
//!
//! ## Rollouts and autoscaling
//! A deployment with a [`Rollout`] replaces the replicas placed for an earlier template when its
//! template changes, a few at a time (`RollingUpdate`, bounded by a surge and an unavailability)
//! or all at once (`Recreate`). [`autoscale`] decides replica counts from CPU utilisation as
//! Kubernetes' HorizontalPodAutoscaler does (tolerance, scale-down stabilisation), with `now`
//! passed in.
//!
//! ## Caching
//! [`cache`] holds the policy of the two-level cache (in-process L1, shared Redis L2) in front of
//! cloud API calls: TTLs by key pattern, lazy or eager refresh, the write strategies
//! (write-through, write-behind, read-through, cache-aside), strong or eventual consistency,
//! warming plans, LRU/LFU/FIFO eviction and memory thresholds — each a pure decision of the key,
//! the stored entries' metadata and `now`. The simulator measures it; the operator runs it.

pub mod autoscale;
pub mod cache;
pub mod cost;
pub mod deploy;
pub mod dr;
pub mod engine;
pub mod hosts;
pub mod migration;
pub mod model;
pub mod policy;
pub mod prices;
pub mod snapshot;
pub mod time;

pub use autoscale::{AutoscalePolicy, Autoscaler};
pub use cache::{CacheConfig, CachePolicy, EntryMeta, ReadDecision, WriteDecision};
pub use cost::{Billing, Commitment, CostModel, EgressPrices};
pub use deploy::{Deployment, DeploymentSpec, MoveReason, Rollout, Strategy};
pub use engine::{Action, Bill, Engine, EngineConfig, Event, FailureCause, ProvisionReason};
pub use hosts::HostPool;
pub use model::{
    Catalog, Fit, GroupId, HostId, InstanceId, InstanceType, InstanceTypeId, Market, Offer, OfferId, OfferKind,
    Placement, PoolId, PoolSpec, Provider, Region, RegionId, Resources, Timer, TimerKind, VmId, VmRequest, VmState,
    Zone, ZoneId,
};
pub use policy::{Decision, LearnedConfig, ModelArtifact, ModelSource, PlacementPolicy, PolicyConfig, Scores};
pub use prices::{PriceBook, PriceError, PriceTable};
pub use snapshot::{Candidate, RejectReason, Snapshot};
pub use time::{DurationError, SimDuration, SimTime};

/// Errors of the engine's constructors. Decisions themselves never fail: they reject.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog is inconsistent.
    #[error("invalid catalog: {0}")]
    InvalidCatalog(String),
    /// A setting is out of range.
    #[error("invalid engine setting: {0}")]
    InvalidConfig(String),
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
