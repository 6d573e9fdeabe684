//! Performance: the lowest latency to the request's users; ties go to the cheaper candidate.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, cost_optimized::unreachable_reject, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::SimTime;

/// Parameters of [`Performance`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformanceConfig {
    /// Whether spot capacity may be used.
    pub allow_spot: bool,
}

/// The performance (latency) policy.
#[derive(Clone, Debug)]
pub struct Performance {
    cfg: PerformanceConfig,
}

impl Performance {
    /// A policy with these parameters.
    pub fn new(cfg: PerformanceConfig) -> Self {
        Performance { cfg }
    }
}

impl PlacementPolicy for Performance {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let latency =
            |c: &crate::snapshot::Candidate| req.users_near.map_or(0.0, |u| snap.catalog.latency(u, c.region));
        let allowed = |c: &crate::snapshot::Candidate| self.cfg.allow_spot || c.market == Market::OnDemand;
        match argmin(req, snap, now, allowed, |c| (latency(c), c.marginal_per_h)) {
            Ok(Some((c, k))) => place(req, snap, now, c, k.0),
            Ok(None) => unreachable_reject(),
            Err(r) => Decision::Reject(r),
        }
    }
}
