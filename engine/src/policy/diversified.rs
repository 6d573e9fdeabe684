//! Spot allocation `diversified`: spread spot instances over as many pools as possible, so that one
//! pool's interruption storm takes few of them. Picks the spot pool (zone) holding the fewest of the
//! group's instances, then the offer with the fewest of ours, then the cheaper.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, cheapest_on_demand, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::SimTime;

/// Parameters of [`Diversified`] (none yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiversifiedConfig {}

/// The diversified spot strategy.
#[derive(Clone, Debug)]
pub struct Diversified {
    _cfg: DiversifiedConfig,
}

impl Diversified {
    /// A policy with these parameters.
    pub fn new(cfg: DiversifiedConfig) -> Self {
        Diversified { _cfg: cfg }
    }
}

impl PlacementPolicy for Diversified {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let counts = snap.spread_for(req.group);
        let key =
            |c: &crate::snapshot::Candidate| (counts.zone(c.zone), snap.offers[c.offer.idx()].in_use, c.marginal_per_h);
        match argmin(req, snap, now, |c| c.market == Market::Spot, key) {
            Ok(Some((c, k))) => place(req, snap, now, c, k.0 as f64),
            Ok(None) => cheapest_on_demand(req, snap, now),
            Err(r) => Decision::Reject(r),
        }
    }
}
