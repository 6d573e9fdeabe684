//! Active-active: replicas spread over weighted locations. A location that is lost has its share
//! re-placed on the others at once; it gets its share back only after it has stayed healthy for
//! `restore_after` and the cooldown has passed. Within the cooldown, replicas at live locations
//! stay where they are.

use serde::{Deserialize, Serialize};

use super::{Deployment, MoveReason, Plan, apportion, assign};
use crate::model::RegionId;
use crate::snapshot::Snapshot;
use crate::time::{SimDuration, SimTime};

/// Parameters of active-active.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveActiveConfig {
    /// Locations and their weights.
    pub locations: Vec<(RegionId, f64)>,
    /// How long a lost location must stay healthy before it gets replicas back.
    #[serde(default = "default_restore")]
    pub restore_after: SimDuration,
}

fn default_restore() -> SimDuration {
    SimDuration::from_secs(600)
}

pub(super) fn plan(d: &mut Deployment, c: &ActiveActiveConfig, snap: &Snapshot, now: SimTime) -> Plan {
    let first = d.slots.is_empty();
    let rebalance_ok = d.cooled_down(now);
    // A location seen down is lost until it has stayed healthy for `restore_after` and the cooldown
    // has passed; then it is restored for good (until it goes down again), so that its weight does
    // not come and go with the cooldown.
    for (r, _) in &c.locations {
        if !Deployment::location_healthy(snap, *r) {
            d.lost.insert(*r);
        } else if rebalance_ok
            && d.location_ok(snap, *r, now)
            && d.healthy_since.get(r).is_some_and(|s| now.since(*s) >= c.restore_after)
        {
            d.lost.remove(r);
        }
    }
    let live: Vec<bool> = c
        .locations
        .iter()
        .map(|(r, _)| d.location_ok(snap, *r, now) && (!d.lost.contains(r) || d.count_at(*r) > 0))
        .collect();
    let locs: Vec<RegionId> = c.locations.iter().map(|(r, _)| *r).collect();
    let weights: Vec<f64> = c.locations.iter().zip(&live).map(|((_, w), l)| if *l { *w } else { 0.0 }).collect();
    // A live location of weight 0 takes no replica: it is not somewhere to go.
    if !weights.iter().any(|w| *w > 0.0) {
        // Nowhere to go: stay put.
        let current: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
        let fill = current.first().copied().unwrap_or(locs[0]);
        let mut out = current;
        out.resize(d.spec.replicas as usize, fill);
        return Plan { locations: out, failover: None };
    }
    let want = apportion(d.spec.replicas, &weights);
    let current: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
    // Replicas move between live locations only to rebalance, once the cooldown has passed; until
    // then only those at lost locations (and new ones) are placed, where the most are missing.
    let out = if rebalance_ok { assign(&current, &locs, &want) } else { fill(&current, &locs, &want, &weights) };
    let count = |v: &[RegionId], r: RegionId| v.iter().filter(|x| **x == r).count();
    // Record a failover when a location that held replicas loses them all, or a rebalance.
    let lost = locs.iter().copied().find(|r| count(&out, *r) == 0 && count(&current, *r) > 0);
    let gained = locs.iter().copied().find(|r| count(&out, *r) > 0 && count(&current, *r) == 0 && !first);
    let failover = match (lost, gained) {
        (Some(from), _) => {
            let to = locs.iter().copied().find(|r| count(&out, *r) > 0).unwrap_or(from);
            // A healthy location loses its last replica only to a rebalance (with few replicas,
            // largest remainder may give its share to a location that came back).
            let reason = if d.location_ok(snap, from, now) { MoveReason::Rebalance } else { MoveReason::Unhealthy };
            Some((from, to, reason))
        }
        (None, Some(to)) => {
            let from = current.iter().copied().find(|r| *r != to).unwrap_or(to);
            Some((from, to, MoveReason::Rebalance))
        }
        _ => None,
    };
    Plan { locations: out, failover }
}

/// Keeps every slot that is at a location of positive weight, and places the others (and new
/// slots, up to the total wanted) where the most replicas are missing; ties go to the earlier one.
fn fill(current: &[RegionId], locations: &[RegionId], want: &[u32], weights: &[f64]) -> Vec<RegionId> {
    let total = want.iter().sum::<u32>() as usize;
    let usable = |r: &RegionId| locations.iter().position(|l| l == r).filter(|&i| weights[i] > 0.0);
    let mut have = vec![0i64; locations.len()];
    for i in current.iter().take(total).filter_map(usable) {
        have[i] += 1;
    }
    let mut out = Vec::with_capacity(total);
    for k in 0..total {
        if let Some(r) = current.get(k).filter(|r| usable(r).is_some()) {
            out.push(*r);
            continue;
        }
        let best = (0..locations.len())
            .filter(|&i| weights[i] > 0.0)
            .max_by_key(|&i| (want[i] as i64 - have[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        have[best] += 1;
        out.push(locations[best]);
    }
    out
}
