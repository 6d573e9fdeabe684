//! Availability: spread a group's VMs over providers, then regions, then zones, so that the loss of
//! any one location takes as little of the group as possible. Ties go to the cheaper candidate.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, cost_optimized::unreachable_reject, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::SimTime;

/// Parameters of [`Availability`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvailabilityConfig {
    /// Whether spot capacity may be used (it can be taken away at two minutes' notice).
    pub allow_spot: bool,
}

/// The availability (spread) policy.
#[derive(Clone, Debug)]
pub struct Availability {
    cfg: AvailabilityConfig,
}

impl Availability {
    /// A policy with these parameters.
    pub fn new(cfg: AvailabilityConfig) -> Self {
        Availability { cfg }
    }
}

impl PlacementPolicy for Availability {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let counts = snap.spread_for(req.group);
        let key = |c: &crate::snapshot::Candidate| {
            (counts.by_provider[c.provider.index()], counts.region(c.region), counts.zone(c.zone), c.marginal_per_h)
        };
        let allowed = |c: &crate::snapshot::Candidate| self.cfg.allow_spot || c.market == Market::OnDemand;
        match argmin(req, snap, now, allowed, key) {
            Ok(Some((c, k))) => place(req, snap, now, c, (k.0 + k.1 + k.2) as f64),
            Ok(None) => unreachable_reject(),
            Err(r) => Decision::Reject(r),
        }
    }
}
