//! Active-passive: every replica at one location, the primary while it is healthy; on a trigger,
//! everything fails over to the first healthy secondary with capacity; optionally back to the
//! primary once it has stayed healthy for a hold-down period.

use serde::{Deserialize, Serialize};

use super::{Deployment, MoveReason, Plan};
use crate::model::RegionId;
use crate::snapshot::Snapshot;
use crate::time::{SimDuration, SimTime};

/// Parameters of active-passive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivePassiveConfig {
    /// The primary location.
    pub primary: RegionId,
    /// Secondaries, in order of preference.
    pub secondary: Vec<RegionId>,
    /// Return to the primary when it is healthy again.
    #[serde(default)]
    pub failback: bool,
    /// How long the primary must stay healthy before failing back.
    #[serde(default = "default_hold_down")]
    pub hold_down: SimDuration,
}

fn default_hold_down() -> SimDuration {
    SimDuration::from_secs(900)
}

impl ActivePassiveConfig {
    /// `[primary, secondary...]`.
    pub fn locations(&self) -> Vec<RegionId> {
        std::iter::once(self.primary).chain(self.secondary.iter().copied()).collect()
    }
}

/// The first location after `skip` (in preference order) that is healthy, not avoided, and can take
/// every replica; failing that, if `partial`, the healthy one that can take the most (at least one).
///
/// A partial move splits the replicas over two locations, which is only worth it when the one
/// they are leaving is dead; a move away from a live location waits until one can take them all.
pub(crate) fn pick_target(
    d: &Deployment,
    locs: &[RegionId],
    skip: usize,
    snap: &Snapshot,
    now: SimTime,
    partial: bool,
) -> Option<usize> {
    let need = d.spec.replicas as u64;
    let ok: Vec<(usize, u64)> = locs
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != skip && d.location_ok(snap, **r, now))
        .map(|(i, r)| (i, d.capacity(snap, *r) + d.count_at(*r) as u64))
        .collect();
    ok.iter()
        .find(|(_, cap)| *cap >= need)
        .or_else(|| {
            ok.iter().filter(|(_, cap)| partial && *cap > 0).max_by_key(|(i, cap)| (*cap, std::cmp::Reverse(*i)))
        })
        .map(|(i, _)| *i)
}

pub(super) fn plan(
    d: &mut Deployment,
    c: &ActivePassiveConfig,
    snap: &Snapshot,
    fired: Option<MoveReason>,
    now: SimTime,
) -> Plan {
    let locs = c.locations();
    let current = locs[d.active.min(locs.len() - 1)];
    let mut failover = None;
    // A location known to be dead is left at once; a trigger or a failback waits for the cooldown.
    let dead = !snap.region_healthy.get(current.idx()).copied().unwrap_or(false)
        || !snap.catalog.regions[current.idx()].zones.iter().any(|z| snap.zone_healthy[z.idx()]);
    let reason = if dead {
        Some(MoveReason::Unhealthy)
    } else if d.cooled_down(now) {
        fired
    } else {
        None
    };
    if let Some(reason) = reason {
        // Splitting the replicas is worth it only when nothing serves where they are.
        if let Some(i) = pick_target(d, &locs, d.active, snap, now, dead || d.serving == 0) {
            d.active = i;
            failover = Some((current, locs[i], reason));
        }
    } else if c.failback && d.active != 0 && d.cooled_down(now) {
        let back = d.location_ok(snap, c.primary, now)
            && d.healthy_since.get(&c.primary).is_some_and(|s| now.since(*s) >= c.hold_down)
            && d.capacity(snap, c.primary) >= d.spec.replicas as u64;
        if back {
            d.active = 0;
            failover = Some((current, c.primary, MoveReason::Failback));
        }
    }
    Plan { locations: vec![locs[d.active]; d.spec.replicas as usize], failover }
}
