//! Cost-optimized: keep every replica at the cheapest feasible location, moving one only when the
//! saving over `horizon` beats the cost of moving it by `min_saving_ratio`, and moving at most
//! `disruption_budget` of the replicas per `window`, so that it never churns VMs for a cent an
//! hour. The cost of a move is the egress of its data, the value of its downtime, and the time
//! both copies are billed (from the deployment's migration model when it has one, else from the
//! figures below). A migration policy's cost threshold adds that the saving must also be at least
//! that share of the replica's current price. Replicas at a location known to be dead are moved at once.

use serde::{Deserialize, Serialize};

use super::{Deployment, MoveReason, Plan};
use crate::model::RegionId;
use crate::snapshot::Snapshot;
use crate::time::{SimDuration, SimTime};

/// Parameters of cost-optimized deployments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostOptimizedConfig {
    /// Allowed locations (empty: any region).
    #[serde(default)]
    pub locations: Vec<RegionId>,
    /// How far ahead a saving is counted.
    pub horizon: SimDuration,
    /// A move must save this many times its cost (>= 1).
    pub min_saving_ratio: f64,
    /// Share of replicas that may move per window, 0..1.
    pub disruption_budget: f64,
    /// The disruption budget's window.
    pub window: SimDuration,
    /// Data moved with a replica, GiB (memory and disk).
    pub data_gib: f64,
    /// Service lost per move.
    pub downtime: SimDuration,
    /// What an hour of downtime costs, $.
    pub downtime_cost_per_h: f64,
    /// Time both copies run (and are billed) during a move.
    pub overlap: SimDuration,
}

impl CostOptimizedConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        let nums = [self.min_saving_ratio, self.disruption_budget, self.data_gib, self.downtime_cost_per_h];
        if nums.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(
                "min_saving_ratio, disruption_budget, data_gib and downtime_cost_per_h must be numbers >= 0".into()
            );
        }
        if self.disruption_budget > 1.0 {
            return Err("disruption_budget is a share of replicas, between 0 and 1".into());
        }
        if self.window == SimDuration::ZERO {
            return Err("window must be longer than 0".into());
        }
        Ok(())
    }
}

/// The cheapest marginal price per hour of the template in each region (`None`: nothing feasible).
fn prices(d: &Deployment, snap: &Snapshot, now: SimTime) -> Vec<Option<f64>> {
    let mut best = vec![None::<f64>; snap.catalog.regions.len()];
    let mut req = d.spec.template.clone();
    req.regions.clear();
    req.group = Some(d.spec.id);
    let _ = snap.for_each_candidate(&req, now, |c| {
        let b = &mut best[c.region.idx()];
        if b.is_none_or(|p| c.marginal_per_h < p) {
            *b = Some(c.marginal_per_h);
        }
    });
    best
}

pub(super) fn plan(d: &mut Deployment, c: &CostOptimizedConfig, snap: &Snapshot, now: SimTime) -> Plan {
    let price = prices(d, snap, now);
    let allowed = |r: RegionId| c.locations.is_empty() || c.locations.contains(&r);
    let mut ranked: Vec<(f64, RegionId)> = price
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (p, RegionId(i as u16))))
        .filter(|(_, r)| allowed(*r) && d.location_ok(snap, *r, now))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let Some(&(cheapest_price, cheapest)) = ranked.first() else {
        // Nothing feasible: keep what there is.
        let mut out: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
        let fill = out.first().copied().or(c.locations.first().copied()).unwrap_or(RegionId(0));
        out.resize(d.spec.replicas as usize, fill);
        return Plan { locations: out, failover: None };
    };
    if now.since(d.window_moves.0) >= c.window {
        d.window_moves = (now, 0);
    }
    let budget = (c.disruption_budget * d.spec.replicas as f64).floor() as u32;
    let horizon_h = c.horizon.as_hours_f64();
    let mut out = Vec::with_capacity(d.spec.replicas as usize);
    for i in 0..d.spec.replicas as usize {
        let Some(slot) = d.slots.get(i) else {
            out.push(cheapest);
            continue;
        };
        let here = slot.location;
        if !d.location_ok(snap, here, now) || !allowed(here) {
            out.push(cheapest);
            continue;
        }
        // What this replica costs now; the market's price if it has no instance yet. (A region
        // full of our own replicas lists no free offer, but it is not therefore dear.)
        let current = slot.price_per_h.or(price[here.idx()]).unwrap_or(f64::INFINITY);
        let saving = (current - cheapest_price) * horizon_h;
        // The move's data, downtime and overlap: the migration model's, if the deployment has one.
        let (gib, downtime, overlap, threshold) = match &d.spec.migration {
            Some(m) => {
                let cross = snap.catalog.regions[here.idx()].provider != snap.catalog.regions[cheapest.idx()].provider;
                let p = m.plan(cross);
                (p.transferred_gib, p.downtime, p.overlap, m.cost_threshold.unwrap_or(0.0))
            }
            None => (c.data_gib, c.downtime, c.overlap, 0.0),
        };
        let egress = gib * snap.cost.egress.per_gib(&snap.catalog, here, cheapest, false);
        let cost = egress + downtime.as_hours_f64() * c.downtime_cost_per_h + overlap.as_hours_f64() * cheapest_price;
        let pays = here != cheapest
            && saving > 0.0
            && saving >= c.min_saving_ratio * cost
            && current - cheapest_price >= threshold * current;
        if pays && d.window_moves.1 < budget {
            d.window_moves.1 += 1;
            out.push(cheapest);
        } else {
            out.push(here);
        }
    }
    let moved = d.slots.iter().zip(&out).find(|(s, to)| s.location != **to).map(|(s, to)| (s.location, *to));
    Plan { locations: out, failover: moved.map(|(from, to)| (from, to, MoveReason::Cost)) }
}
