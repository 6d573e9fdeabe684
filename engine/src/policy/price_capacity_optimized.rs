//! Spot allocation `price-capacity-optimized` (AWS's recommended default): first keep the spot
//! pools whose capacity score is within `capacity_tolerance` of the best one, then take the cheapest
//! of those.

use serde::{Deserialize, Serialize};

use super::capacity_optimized::capacity_score;
use super::{Decision, PlacementPolicy, cheapest_on_demand, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::{Candidate, Snapshot};
use crate::time::SimTime;

/// Parameters of [`PriceCapacityOptimized`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceCapacityOptimizedConfig {
    /// Pools scoring at least `(1 - capacity_tolerance) × best score` are kept, 0..1.
    pub capacity_tolerance: f64,
}

impl Default for PriceCapacityOptimizedConfig {
    fn default() -> Self {
        PriceCapacityOptimizedConfig { capacity_tolerance: 0.5 }
    }
}

impl PriceCapacityOptimizedConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.capacity_tolerance) {
            return Err("capacity_tolerance must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// The price-capacity-optimized spot strategy.
#[derive(Clone, Debug)]
pub struct PriceCapacityOptimized {
    cfg: PriceCapacityOptimizedConfig,
}

impl PriceCapacityOptimized {
    /// A policy with these parameters.
    pub fn new(cfg: PriceCapacityOptimizedConfig) -> Self {
        PriceCapacityOptimized { cfg }
    }
}

impl PlacementPolicy for PriceCapacityOptimized {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let mut spot: Vec<(Candidate, f64)> = Vec::new();
        if let Err(r) = snap.for_each_candidate(req, now, |c| {
            if c.market == Market::Spot {
                spot.push((*c, capacity_score(c, snap, now)));
            }
        }) {
            return Decision::Reject(r);
        }
        let best_score = spot.iter().map(|(_, s)| *s).fold(f64::NEG_INFINITY, f64::max);
        let floor = best_score * (1.0 - self.cfg.capacity_tolerance);
        let mut best: Option<Candidate> = None;
        for (c, s) in &spot {
            if *s >= floor && best.is_none_or(|b| c.marginal_per_h < b.marginal_per_h) {
                best = Some(*c);
            }
        }
        match best {
            Some(c) => place(req, snap, now, c, c.marginal_per_h),
            None => cheapest_on_demand(req, snap, now),
        }
    }
}
