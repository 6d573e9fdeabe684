//! Cost-optimized: the cheapest feasible candidate, with spot priced at its expected cost
//! including the interruptions it will suffer.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::SimTime;

/// Parameters of [`CostOptimized`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostOptimizedConfig {
    /// What one interruption costs in dollars (restart, lost work, downtime): added to a spot
    /// offer's price as `risk per hour × this`.
    pub interruption_cost_usd: f64,
    /// Interruptions per hour assumed for any spot market before any is observed.
    pub prior_interruptions_per_h: f64,
}

impl Default for CostOptimizedConfig {
    fn default() -> Self {
        CostOptimizedConfig { interruption_cost_usd: 0.5, prior_interruptions_per_h: 0.02 }
    }
}

impl CostOptimizedConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        super::check_spot_risk(self.interruption_cost_usd, self.prior_interruptions_per_h)
    }
}

/// The cost-optimized policy.
#[derive(Clone, Debug)]
pub struct CostOptimized {
    cfg: CostOptimizedConfig,
}

impl CostOptimized {
    /// A policy with these parameters.
    pub fn new(cfg: CostOptimizedConfig) -> Self {
        CostOptimized { cfg }
    }
}

impl PlacementPolicy for CostOptimized {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let hl = snap.interruption_half_life;
        let effective = |c: &crate::snapshot::Candidate| match c.market {
            Market::OnDemand => c.marginal_per_h,
            Market::Spot => {
                let risk = self.cfg.prior_interruptions_per_h + snap.offers[c.offer.idx()].interruption_rate(now, hl);
                c.marginal_per_h + risk * self.cfg.interruption_cost_usd
            }
        };
        match argmin(req, snap, now, |_| true, effective) {
            Ok(Some((c, k))) => place(req, snap, now, c, k),
            Ok(None) => unreachable_reject(),
            Err(r) => Decision::Reject(r),
        }
    }
}

/// `argmin` with an always-true filter returns `Some` whenever it returns `Ok`.
pub(crate) fn unreachable_reject() -> Decision {
    Decision::Reject(crate::snapshot::RejectReason::NoCapacity)
}
