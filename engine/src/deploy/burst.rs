//! Burst: a baseline of replicas in the primary; when demand outgrows the primary (its capacity, or
//! `primary_max` replicas), the overflow goes to the burst targets in order; when demand falls, the
//! deployment scales back in, but only after demand has stayed low for `scale_in_after`
//! (hysteresis). A CPU trigger firing adds `step` replicas of demand.

use serde::{Deserialize, Serialize};

use super::{Deployment, MoveReason, Plan, assign};
use crate::model::RegionId;
use crate::snapshot::Snapshot;
use crate::time::{SimDuration, SimTime};

/// Parameters of burst.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstConfig {
    /// Where the baseline runs.
    pub primary: RegionId,
    /// Where overflow goes, in order.
    pub targets: Vec<RegionId>,
    /// Most replicas the primary may hold (default: no limit but its capacity).
    #[serde(default)]
    pub primary_max: Option<u32>,
    /// How long demand must stay low before scaling in.
    #[serde(default = "default_scale_in")]
    pub scale_in_after: SimDuration,
    /// Replicas added when a CPU trigger fires.
    #[serde(default = "default_step")]
    pub step: u32,
    /// Most replicas in all.
    #[serde(default)]
    pub max_replicas: Option<u32>,
}

fn default_scale_in() -> SimDuration {
    SimDuration::from_secs(600)
}
fn default_step() -> u32 {
    1
}

impl BurstConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_replicas.is_some_and(|m| m > 0xff_ffff) {
            return Err("max_replicas must be at most 16777215".into());
        }
        Ok(())
    }
}

pub(super) fn plan(
    d: &mut Deployment,
    c: &BurstConfig,
    snap: &Snapshot,
    fired: Option<MoveReason>,
    now: SimTime,
) -> Plan {
    if matches!(&fired, Some(MoveReason::Trigger(t)) if t == "cpu") {
        d.demand = d.demand.saturating_add(c.step.max(1));
    }
    let cap = c.max_replicas.unwrap_or(0xff_ffff).min(0xff_ffff);
    let wanted = d.demand.max(d.spec.replicas).min(cap);
    let current = d.slots.len() as u32;
    let total = if wanted >= current {
        d.low_since = None;
        wanted
    } else {
        let since = *d.low_since.get_or_insert(now);
        if now.since(since) >= c.scale_in_after {
            d.low_since = None;
            wanted
        } else {
            current
        }
    };
    let locs: Vec<RegionId> = std::iter::once(c.primary).chain(c.targets.iter().copied()).collect();
    let mut want = vec![0u32; locs.len()];
    let mut left = total;
    for (i, r) in locs.iter().enumerate() {
        if left == 0 {
            break;
        }
        if !d.location_ok(snap, *r, now) {
            continue;
        }
        let room = (d.capacity(snap, *r) + d.count_at(*r) as u64).min(u32::MAX as u64) as u32;
        let room = if i == 0 { room.min(c.primary_max.unwrap_or(u32::MAX)) } else { room };
        let take = left.min(room);
        want[i] = take;
        left -= take;
    }
    // Whatever fits nowhere waits in the primary (or the first target that is up).
    if left > 0 {
        let i = (0..locs.len()).find(|&i| d.location_ok(snap, locs[i], now)).unwrap_or(0);
        want[i] += left;
    }
    let cur: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
    // Record when overflow first reaches a target, or a target is emptied by scaling in.
    let reached =
        locs.iter().zip(&want).skip(1).find(|(r, w)| **w > 0 && d.count_at(**r) == 0).map(|(r, _)| (c.primary, *r));
    let emptied =
        locs.iter().zip(&want).skip(1).find(|(r, w)| **w == 0 && d.count_at(**r) > 0).map(|(r, _)| (*r, c.primary));
    let failover = reached.or(emptied).filter(|_| !d.slots.is_empty()).map(|(from, to)| (from, to, MoveReason::Burst));
    Plan { locations: assign(&cur, &locs, &want), failover }
}
