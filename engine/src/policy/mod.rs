//! Placement policies. Each is a type behind [`PlacementPolicy`], with its own config type, chosen
//! through the serde-tagged [`PolicyConfig`]. A decision is a pure function of the request, a
//! read-only [`Snapshot`] and `now`, and carries the per-objective [`Scores`] that explain it.
//!
//! All policies choose among the same feasible [`Candidate`]s ([`Snapshot::for_each_candidate`]):
//! allowed, big enough, healthy, not recently failed, with capacity, within price and budget caps.
//! Ties always go to the candidate listed first (catalog order, on-demand before spot), so a
//! decision never depends on anything but its inputs.

use serde::{Deserialize, Serialize};

use crate::model::{Market, VmRequest};
use crate::snapshot::{Candidate, RejectReason, Snapshot};
use crate::time::SimTime;

mod availability;
mod balanced;
mod bin_packing;
mod capacity_optimized;
mod cost_optimized;
mod diversified;
pub mod learned;
mod lowest_price;
mod performance;
mod price_capacity_optimized;

pub use availability::{Availability, AvailabilityConfig};
pub use balanced::{Balanced, BalancedConfig, Weights};
pub use bin_packing::{BinPacking, BinPackingConfig};
pub use capacity_optimized::{CapacityOptimized, CapacityOptimizedConfig};
pub use cost_optimized::{CostOptimized, CostOptimizedConfig};
pub use diversified::{Diversified, DiversifiedConfig};
pub use learned::{Learned, LearnedConfig, ModelArtifact, ModelSource};
pub use lowest_price::{LowestPrice, LowestPriceConfig};
pub use performance::{Performance, PerformanceConfig};
pub use price_capacity_optimized::{PriceCapacityOptimized, PriceCapacityOptimizedConfig};

/// Electrical power drawn per vCPU, W (for the energy objective).
pub const WATTS_PER_VCPU: f64 = 4.0;
/// Electrical power drawn per GiB of memory, W.
pub const WATTS_PER_GIB: f64 = 0.375;
/// Electrical power drawn per GPU, W.
pub const WATTS_PER_GPU: f64 = 250.0;

/// What a decision was based on, per objective (lower is better for all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// What the placement adds to the bill, $/h (zero when a commitment pays).
    pub cost_per_h: f64,
    /// Latency from the request's users, ms (zero when the request names none).
    pub latency_ms: f64,
    /// Share of the request's group (or the fleet) already in the chosen zone, 0..1.
    pub spread: f64,
    /// Emissions, gCO2e per hour.
    pub carbon_g_per_h: f64,
    /// Expected spot interruptions per hour at the chosen offer (zero on demand).
    pub interruption_risk_per_h: f64,
    /// The policy's own objective value for the chosen candidate.
    pub objective: f64,
}

impl Scores {
    /// The objective values of a candidate.
    pub fn of(req: &VmRequest, cand: &Candidate, snap: &Snapshot, now: SimTime) -> Scores {
        let region = &snap.catalog.regions[cand.region.idx()];
        let latency_ms = req.users_near.map_or(0.0, |u| snap.catalog.latency(u, cand.region));
        let counts = snap.spread_for(req.group);
        let spread = counts.zone(cand.zone) as f64 / (counts.total as f64 + 1.0);
        let r = &req.resources;
        let watts = r.vcpu as f64 * WATTS_PER_VCPU
            + r.memory_mib as f64 / 1024.0 * WATTS_PER_GIB
            + r.gpu as f64 * WATTS_PER_GPU;
        let carbon_g_per_h = region.carbon_g_per_kwh * watts / 1000.0;
        let interruption_risk_per_h = match cand.market {
            Market::Spot => snap.offers[cand.offer.idx()].interruption_rate(now, snap.interruption_half_life),
            Market::OnDemand => 0.0,
        };
        Scores {
            cost_per_h: cand.marginal_per_h,
            latency_ms,
            spread,
            carbon_g_per_h,
            interruption_risk_per_h,
            objective: 0.0,
        }
    }
}

/// The outcome of a placement decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Serve the request from this candidate.
    Place {
        /// Where.
        candidate: Candidate,
        /// Why.
        scores: Scores,
    },
    /// Nothing feasible.
    Reject(RejectReason),
}

/// A placement policy.
pub trait PlacementPolicy: Send + Sync + std::fmt::Debug {
    /// Chooses where `req` runs, given the world in `snap` at `now`. Pure: no side effects.
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision;
}

/// Checks the spot-risk parameters shared by cost-optimized and balanced.
pub(crate) fn check_spot_risk(interruption_cost_usd: f64, prior_interruptions_per_h: f64) -> Result<(), String> {
    if !(interruption_cost_usd.is_finite() && interruption_cost_usd >= 0.0) {
        return Err("interruption_cost_usd must be a number >= 0".into());
    }
    if !(prior_interruptions_per_h.is_finite() && prior_interruptions_per_h >= 0.0) {
        return Err("prior_interruptions_per_h must be a number >= 0".into());
    }
    Ok(())
}

/// Picks the candidate with the lowest key; ties go to the first one listed.
pub(crate) fn argmin<K: PartialOrd>(
    req: &VmRequest,
    snap: &Snapshot,
    now: SimTime,
    mut filter: impl FnMut(&Candidate) -> bool,
    mut key: impl FnMut(&Candidate) -> K,
) -> Result<Option<(Candidate, K)>, RejectReason> {
    let mut best: Option<(Candidate, K)> = None;
    snap.for_each_candidate(req, now, |c| {
        if !filter(c) {
            return;
        }
        let k = key(c);
        if best.as_ref().is_none_or(|(_, bk)| k < *bk) {
            best = Some((*c, k));
        }
    })?;
    Ok(best)
}

/// Turns a chosen candidate into a decision with its scores.
pub(crate) fn place(req: &VmRequest, snap: &Snapshot, now: SimTime, c: Candidate, objective: f64) -> Decision {
    let mut scores = Scores::of(req, &c, snap, now);
    scores.objective = objective;
    Decision::Place { candidate: c, scores }
}

/// The cheapest on-demand candidate: the fallback of the spot strategies.
pub(crate) fn cheapest_on_demand(req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
    match argmin(req, snap, now, |c| c.market == Market::OnDemand, |c| c.marginal_per_h) {
        Ok(Some((c, k))) => place(req, snap, now, c, k),
        Ok(None) => Decision::Reject(RejectReason::NoCapacity),
        Err(r) => Decision::Reject(r),
    }
}

/// Which placement policy to run, with its parameters. In TOML: `kind = "cost-optimized"` plus
/// the policy's own keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PolicyConfig {
    /// Cheapest feasible, spot priced with its interruption risk.
    CostOptimized(CostOptimizedConfig),
    /// Spread over providers, regions and zones.
    Availability(AvailabilityConfig),
    /// Lowest latency to the request's users.
    Performance(PerformanceConfig),
    /// Weighted multi-objective: cost, performance, availability, energy.
    Balanced(BalancedConfig),
    /// Spot fleet: the cheapest spot pool.
    LowestPrice(LowestPriceConfig),
    /// Spot fleet: the pool with the most spare capacity.
    CapacityOptimized(CapacityOptimizedConfig),
    /// Spot fleet: the cheapest among the pools with the most spare capacity.
    PriceCapacityOptimized(PriceCapacityOptimizedConfig),
    /// Spot fleet: spread over pools.
    Diversified(DiversifiedConfig),
    /// Host-level first-fit on on-prem pools.
    FirstFit(BinPackingConfig),
    /// Host-level best-fit on on-prem pools.
    BestFit(BinPackingConfig),
    /// Host-level worst-fit on on-prem pools.
    WorstFit(BinPackingConfig),
    /// A trained model scores every candidate (see [`learned`]). Not in [`PolicyConfig::NAMES`]:
    /// it has no default, it needs a model.
    Learned(LearnedConfig),
}

impl PolicyConfig {
    /// Every policy's name, as written in `kind`.
    pub const NAMES: [&'static str; 11] = [
        "cost-optimized",
        "availability",
        "performance",
        "balanced",
        "lowest-price",
        "capacity-optimized",
        "price-capacity-optimized",
        "diversified",
        "first-fit",
        "best-fit",
        "worst-fit",
    ];

    /// The policy `name` with default parameters, or `None` if there is no such policy.
    pub fn default_for(name: &str) -> Option<PolicyConfig> {
        Some(match name {
            "cost-optimized" => PolicyConfig::CostOptimized(Default::default()),
            "availability" => PolicyConfig::Availability(Default::default()),
            "performance" => PolicyConfig::Performance(Default::default()),
            "balanced" => PolicyConfig::Balanced(Default::default()),
            "lowest-price" => PolicyConfig::LowestPrice(Default::default()),
            "capacity-optimized" => PolicyConfig::CapacityOptimized(Default::default()),
            "price-capacity-optimized" => PolicyConfig::PriceCapacityOptimized(Default::default()),
            "diversified" => PolicyConfig::Diversified(Default::default()),
            "first-fit" => PolicyConfig::FirstFit(Default::default()),
            "best-fit" => PolicyConfig::BestFit(Default::default()),
            "worst-fit" => PolicyConfig::WorstFit(Default::default()),
            _ => return None,
        })
    }

    /// This policy's name.
    pub fn name(&self) -> &'static str {
        let i = match self {
            PolicyConfig::Learned(_) => return "learned",
            PolicyConfig::CostOptimized(_) => 0,
            PolicyConfig::Availability(_) => 1,
            PolicyConfig::Performance(_) => 2,
            PolicyConfig::Balanced(_) => 3,
            PolicyConfig::LowestPrice(_) => 4,
            PolicyConfig::CapacityOptimized(_) => 5,
            PolicyConfig::PriceCapacityOptimized(_) => 6,
            PolicyConfig::Diversified(_) => 7,
            PolicyConfig::FirstFit(_) => 8,
            PolicyConfig::BestFit(_) => 9,
            PolicyConfig::WorstFit(_) => 10,
        };
        Self::NAMES[i]
    }

    /// Checks parameter ranges; the message names the key and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            PolicyConfig::CostOptimized(c) => c.validate(),
            PolicyConfig::Balanced(c) => c.validate(),
            PolicyConfig::PriceCapacityOptimized(c) => c.validate(),
            PolicyConfig::Learned(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// The runnable policy.
    pub fn build(&self) -> Box<dyn PlacementPolicy> {
        use crate::model::Fit;
        match self {
            PolicyConfig::CostOptimized(c) => Box::new(CostOptimized::new(c.clone())),
            PolicyConfig::Availability(c) => Box::new(Availability::new(c.clone())),
            PolicyConfig::Performance(c) => Box::new(Performance::new(c.clone())),
            PolicyConfig::Balanced(c) => Box::new(Balanced::new(c.clone())),
            PolicyConfig::LowestPrice(c) => Box::new(LowestPrice::new(c.clone())),
            PolicyConfig::CapacityOptimized(c) => Box::new(CapacityOptimized::new(c.clone())),
            PolicyConfig::PriceCapacityOptimized(c) => Box::new(PriceCapacityOptimized::new(c.clone())),
            PolicyConfig::Diversified(c) => Box::new(Diversified::new(c.clone())),
            PolicyConfig::FirstFit(c) => Box::new(BinPacking::new(Fit::FirstFit, c.clone())),
            PolicyConfig::BestFit(c) => Box::new(BinPacking::new(Fit::BestFit, c.clone())),
            PolicyConfig::WorstFit(c) => Box::new(BinPacking::new(Fit::WorstFit, c.clone())),
            PolicyConfig::Learned(c) => Box::new(Learned::new(c.clone())),
        }
    }

    /// The host fit this policy packs with, if it is a bin-packing policy.
    pub fn fit(&self) -> Option<crate::model::Fit> {
        use crate::model::Fit;
        match self {
            PolicyConfig::FirstFit(_) => Some(Fit::FirstFit),
            PolicyConfig::BestFit(_) => Some(Fit::BestFit),
            PolicyConfig::WorstFit(_) => Some(Fit::WorstFit),
            _ => None,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::CostOptimized(CostOptimizedConfig::default())
    }
}

#[cfg(test)]
pub(crate) mod tests;
