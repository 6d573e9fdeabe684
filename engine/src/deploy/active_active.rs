//! Active-active: replicas spread over weighted locations. A location that is lost has its share
//! re-placed on the others at once; it gets its share back only after it has stayed healthy for
//! `restore_after` and the cooldown has passed.

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
    let live: Vec<bool> = c
        .locations
        .iter()
        .map(|(r, _)| {
            d.location_ok(snap, *r, now)
                && (first
                    || d.count_at(*r) > 0
                    || (rebalance_ok && d.healthy_since.get(r).is_some_and(|s| now.since(*s) >= c.restore_after)))
        })
        .collect();
    let locs: Vec<RegionId> = c.locations.iter().map(|(r, _)| *r).collect();
    if !live.iter().any(|l| *l) {
        // Nowhere to go: stay put.
        let current: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
        let fill = current.first().copied().unwrap_or(locs[0]);
        let mut out = current;
        out.resize(d.spec.replicas as usize, fill);
        return Plan { locations: out, failover: None };
    }
    let weights: Vec<f64> = c.locations.iter().zip(&live).map(|((_, w), l)| if *l { *w } else { 0.0 }).collect();
    let want = apportion(d.spec.replicas, &weights);
    let current: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
    let out = assign(&current, &locs, &want);
    // Record a failover when a location that held replicas loses them all, or a rebalance.
    let lost = locs.iter().zip(&want).find(|(r, w)| **w == 0 && d.count_at(**r) > 0).map(|(r, _)| *r);
    let gained = locs.iter().zip(&want).find(|(r, w)| **w > 0 && d.count_at(**r) == 0 && !first).map(|(r, _)| *r);
    let failover = match (lost, gained) {
        (Some(from), _) => {
            let to = locs.iter().zip(&want).find(|(_, w)| **w > 0).map(|(r, _)| *r).unwrap_or(from);
            Some((from, to, MoveReason::Unhealthy))
        }
        (None, Some(to)) => {
            let from = current.iter().copied().find(|r| *r != to).unwrap_or(to);
            Some((from, to, MoveReason::Rebalance))
        }
        _ => None,
    };
    Plan { locations: out, failover }
}
