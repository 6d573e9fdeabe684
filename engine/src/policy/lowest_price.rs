//! Spot allocation `lowest-price`: the cheapest spot pool; on demand (cheapest) when the request
//! may not use spot or no spot pool is available.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, argmin, cheapest_on_demand, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::SimTime;

/// Parameters of [`LowestPrice`] (none yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LowestPriceConfig {}

/// The lowest-price spot strategy.
#[derive(Clone, Debug)]
pub struct LowestPrice {
    _cfg: LowestPriceConfig,
}

impl LowestPrice {
    /// A policy with these parameters.
    pub fn new(cfg: LowestPriceConfig) -> Self {
        LowestPrice { _cfg: cfg }
    }
}

impl PlacementPolicy for LowestPrice {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        match argmin(req, snap, now, |c| c.market == Market::Spot, |c| c.marginal_per_h) {
            Ok(Some((c, k))) => place(req, snap, now, c, k),
            Ok(None) => cheapest_on_demand(req, snap, now),
            Err(r) => Decision::Reject(r),
        }
    }
}
