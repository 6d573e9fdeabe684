//! Host-level bin-packing on on-prem pools: first-fit, best-fit and worst-fit. The pools are
//! searched through their indices ([`crate::hosts::HostPool`]), never by scanning every host.
//!
//! * first-fit: the first pool (catalog order) with room, its lowest-numbered host that fits;
//! * best-fit: across pools, the fitting host with the least free vCPU (then memory);
//! * worst-fit: across pools, the fitting host with the most free vCPU (then memory).
//!
//! With `overflow_to_cloud`, a request no pool can hold goes to the cheapest cloud candidate.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, cheapest_on_demand, place};
use crate::model::{Fit, OfferKind, VmRequest};
use crate::snapshot::{Candidate, RejectReason, Snapshot};
use crate::time::SimTime;

/// Parameters shared by the bin-packing policies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinPackingConfig {
    /// Send requests that fit no host to the cheapest cloud offer instead of rejecting them.
    pub overflow_to_cloud: bool,
}

/// A bin-packing policy.
#[derive(Clone, Debug)]
pub struct BinPacking {
    fit: Fit,
    cfg: BinPackingConfig,
}

impl BinPacking {
    /// A policy packing with `fit`.
    pub fn new(fit: Fit, cfg: BinPackingConfig) -> Self {
        BinPacking { fit, cfg }
    }
}

impl PlacementPolicy for BinPacking {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        // (candidate, free vCPU, free memory) of the best host so far.
        let mut best: Option<(Candidate, u32, u64)> = None;
        let result = snap.for_each_candidate(req, now, |c| {
            let OfferKind::Pool(p) = snap.catalog.offers[c.offer.idx()].kind else { return };
            if self.fit == Fit::FirstFit && best.is_some() {
                return;
            }
            let pool = &snap.pools[p.idx()];
            let Some(h) = pool.find_shared(self.fit, &req.resources) else { return };
            let free = pool.free(h);
            let better = match (&best, self.fit) {
                (None, _) => true,
                (Some(_), Fit::FirstFit) => false,
                (Some((_, cpu, mem)), Fit::BestFit) => (free.vcpu, free.memory_mib) < (*cpu, *mem),
                (Some((_, cpu, mem)), Fit::WorstFit) => (free.vcpu, free.memory_mib) > (*cpu, *mem),
            };
            if better {
                best = Some((Candidate { host: Some(h), ..*c }, free.vcpu, free.memory_mib));
            }
        });
        match (best, result) {
            (Some((c, cpu, _)), _) => place(req, snap, now, c, cpu as f64),
            (None, _) if self.cfg.overflow_to_cloud => cheapest_on_demand(req, snap, now),
            (None, Err(r)) => Decision::Reject(r),
            // Only cloud candidates: the pools that could hold the request (if any) are full or down.
            (None, Ok(())) => {
                let pool_matches = snap.catalog.offers.iter().any(|o| {
                    matches!(o.kind, OfferKind::Pool(_))
                        && req.allows(snap.catalog.provider_of(o.id), o.region, o.zone)
                        && snap.catalog.offer_fits(o, &req.resources)
                });
                Decision::Reject(if pool_matches { RejectReason::NoCapacity } else { RejectReason::NoMatchingOffer })
            }
        }
    }
}
