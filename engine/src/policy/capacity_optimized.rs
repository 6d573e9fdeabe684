//! Spot allocation `capacity-optimized`: the spot pool least likely to be interrupted, judged by
//! its spare capacity discounted by its recent interruption rate:
//! `score = free slots / (1 + interruptions per hour)`, highest wins.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, cheapest_on_demand, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::{Candidate, Snapshot};
use crate::time::SimTime;

/// Parameters of [`CapacityOptimized`] (none yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacityOptimizedConfig {}

/// The capacity-optimized spot strategy.
#[derive(Clone, Debug)]
pub struct CapacityOptimized {
    _cfg: CapacityOptimizedConfig,
}

impl CapacityOptimized {
    /// A policy with these parameters.
    pub fn new(cfg: CapacityOptimizedConfig) -> Self {
        CapacityOptimized { _cfg: cfg }
    }
}

/// Spare-capacity score of a spot candidate (higher is safer).
pub(crate) fn capacity_score(c: &Candidate, snap: &Snapshot, now: SimTime) -> f64 {
    let rate = snap.offers[c.offer.idx()].interruption_rate(now, snap.interruption_half_life);
    c.free_capacity as f64 / (1.0 + rate)
}

impl PlacementPolicy for CapacityOptimized {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        match argmin(
            req,
            snap,
            now,
            |c| c.market == Market::Spot,
            |c| (-capacity_score(c, snap, now), c.marginal_per_h),
        ) {
            Ok(Some((c, k))) => place(req, snap, now, c, -k.0),
            Ok(None) => cheapest_on_demand(req, snap, now),
            Err(r) => Decision::Reject(r),
        }
    }
}
