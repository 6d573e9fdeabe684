//! Multi-cloud deployments: a group of identical VMs kept at locations chosen by a strategy
//! (active-passive, active-active, burst, cost-optimized), moved by failover triggers with
//! hysteresis and a cooldown, and recovered from spot interruptions as real fleets do.
//!
//! A strategy is a pure planner: from the deployment's state and the [`Snapshot`] it decides the
//! location of every replica ([`Plan`]) and whether that is a failover. The [`crate::Engine`]
//! reconciles its VMs to the plan with the same provision/terminate actions as placement, so a
//! deployment's VMs are placed, retried, billed and replaced exactly like any other.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dr::{BackupKind, BackupLedger, BackupPolicy};
use crate::migration::MigrationPolicy;
use crate::model::{GroupId, OfferKind, RegionId, VmId, VmRequest};
use crate::snapshot::Snapshot;
use crate::time::{SimDuration, SimTime};

mod active_active;
mod active_passive;
mod burst;
mod cost_optimized;
mod rollout;
pub mod trigger;

pub use active_active::ActiveActiveConfig;
pub use active_passive::ActivePassiveConfig;
pub(crate) use active_passive::pick_target;
pub use burst::BurstConfig;
pub use cost_optimized::CostOptimizedConfig;
pub use rollout::{Replace, ReplicaView, Rollout};
pub use trigger::{Observation, Trigger, TriggerKind, TriggerState};

/// Deployment VMs get ids of their own: the top bit set, the deployment in bits 24..56, the slot
/// below. Callers' request ids must stay below 2^63.
pub fn slot_vm(deployment: GroupId, slot: u32) -> VmId {
    VmId((1 << 63) | ((deployment.0 as u64) << 24) | (slot as u64 & 0xff_ffff))
}

/// Whether a VM id belongs to a deployment.
pub fn is_deployment_vm(vm: VmId) -> bool {
    vm.0 >> 63 == 1
}

/// The deployment strategies, as `deploymentStrategy.type` in NovaCron manifests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Strategy {
    /// A primary location and ordered secondaries.
    ActivePassive(ActivePassiveConfig),
    /// Replicas spread over weighted locations.
    ActiveActive(ActiveActiveConfig),
    /// A baseline in the primary, overflow to burst targets.
    Burst(BurstConfig),
    /// The cheapest feasible locations, moving only when it pays.
    CostOptimized(CostOptimizedConfig),
}

impl Strategy {
    /// Name as in manifests.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::ActivePassive(_) => "active-passive",
            Strategy::ActiveActive(_) => "active-active",
            Strategy::Burst(_) => "burst",
            Strategy::CostOptimized(_) => "cost-optimized",
        }
    }
}

/// How spot interruptions are handled for a deployment's replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotRecovery {
    /// After this many interruptions of one replica, it runs on demand.
    pub on_demand_after: u32,
    /// How long a replica stays on demand before it may return to spot.
    pub back_to_spot_after: SimDuration,
}

impl Default for SpotRecovery {
    fn default() -> Self {
        SpotRecovery { on_demand_after: 2, back_to_spot_after: SimDuration::from_secs(3600) }
    }
}

/// A deployment as its owner describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// Its id (also its spread and budget group).
    pub id: GroupId,
    /// Name for reports.
    pub name: String,
    /// Replicas wanted (the burst strategy's baseline).
    pub replicas: u32,
    /// What each replica needs and may use; `id`, `group` and `regions` are set by the engine.
    pub template: VmRequest,
    /// The strategy.
    pub strategy: Strategy,
    /// Failover triggers.
    pub triggers: Vec<Trigger>,
    /// At most one failover per cooldown.
    pub cooldown: SimDuration,
    /// How often the deployment is evaluated.
    pub evaluate_every: SimDuration,
    /// Spend cap, $/h (also enforced at placement as the group's budget).
    pub max_cost_per_h: Option<f64>,
    /// Spot recovery.
    pub spot: SpotRecovery,
    /// How replicas move between healthy locations (`migrationPolicy`). `None`: make-before-break
    /// with an instant cut-over (a stateless replica).
    #[serde(default)]
    pub migration: Option<MigrationPolicy>,
    /// Backups and restore after the loss of a location (`disasterRecovery`). `None`: a replica
    /// lost with its location is re-placed empty.
    #[serde(default)]
    pub disaster_recovery: Option<BackupPolicy>,
    /// How replicas placed for an earlier template are replaced when the template changes
    /// (`updateStrategy`, see [`Rollout`]). `None`: they keep running as they are; only new
    /// placements (new replicas, failovers, moves) use the new template. Left out of the JSON
    /// when `None`, so that decision logs of deployments without one are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl DeploymentSpec {
    /// Checks ranges and references against the catalog regions count.
    pub fn validate(&self, regions: usize) -> Result<(), String> {
        let region_ok = |r: &RegionId| r.idx() < regions;
        let locs: Vec<RegionId> = match &self.strategy {
            Strategy::ActivePassive(c) => std::iter::once(c.primary).chain(c.secondary.iter().copied()).collect(),
            Strategy::ActiveActive(c) => c.locations.iter().map(|(r, _)| *r).collect(),
            Strategy::Burst(c) => std::iter::once(c.primary).chain(c.targets.iter().copied()).collect(),
            Strategy::CostOptimized(c) => c.locations.clone(),
        };
        if !locs.iter().all(region_ok) {
            return Err("a location names a region that does not exist".into());
        }
        if self.evaluate_every == SimDuration::ZERO {
            return Err("evaluate_every must be longer than 0".into());
        }
        if self.replicas > 0xff_ffff {
            return Err("replicas must be at most 16777215".into());
        }
        if let Some(m) = &self.migration {
            m.validate()?;
            if m.cost_threshold.is_some() && !matches!(self.strategy, Strategy::CostOptimized(_)) {
                return Err("a migration cost threshold applies to the cost-optimized strategy only".into());
            }
        }
        if let Some(r) = &self.rollout {
            r.validate()?;
        }
        if let Some(b) = &self.disaster_recovery {
            b.validate()?;
            if !region_ok(&b.target_region) {
                return Err("the backup target names a region that does not exist".into());
            }
        }
        match &self.strategy {
            Strategy::ActiveActive(c) if c.locations.iter().any(|(_, w)| !(w.is_finite() && *w >= 0.0)) => {
                Err("active-active weights must be numbers >= 0".into())
            }
            Strategy::ActiveActive(c) if c.locations.iter().all(|(_, w)| *w <= 0.0) => {
                Err("active-active needs a location of weight > 0".into())
            }
            Strategy::CostOptimized(c) => c.validate(),
            Strategy::Burst(c) => c.validate(),
            _ => Ok(()),
        }
    }
}

/// One replica slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// Its VM.
    pub vm: VmId,
    /// Where it should run.
    pub location: RegionId,
    /// Spot interruptions it suffered since it last ran on demand.
    pub spot_failures: u32,
    /// On demand until then (after too many interruptions).
    pub on_demand_until: Option<SimTime>,
    /// Its on-demand period is over: move it back to spot when the policy would place it there.
    pub back_to_spot: bool,
    /// What its instance costs now, $/h (set by the engine before each evaluation).
    pub price_per_h: Option<f64>,
}

/// Why a deployment moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveReason {
    /// A trigger fired (its name).
    Trigger(String),
    /// The location is known to be unhealthy.
    Unhealthy,
    /// An operator asked.
    Manual,
    /// Back to the primary after it stayed healthy for the hold-down.
    Failback,
    /// Overflow of a burst, or its scale-in.
    Burst,
    /// A cheaper location pays for the move.
    Cost,
    /// Rebalancing after a location came back.
    Rebalance,
}

/// A strategy's decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Desired location of each slot, in slot order (the length is the desired replica count).
    pub locations: Vec<RegionId>,
    /// A failover to record: from, to, why.
    pub failover: Option<(RegionId, RegionId, MoveReason)>,
}

/// Latest external metrics of a deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// CPU utilisation, 0..1.
    pub cpu: Option<f64>,
    /// p99 latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Provider API error rate, 0..1.
    pub api_error_rate: Option<f64>,
}

/// A deployment's running state.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// The spec.
    pub spec: DeploymentSpec,
    /// Replica slots.
    pub slots: Vec<Slot>,
    /// Active-passive: index into `[primary, secondary...]` of the active location.
    pub active: usize,
    /// Locations recently failed away from, avoided until the time given.
    pub avoid: BTreeMap<RegionId, SimTime>,
    /// When the last failover happened.
    pub last_failover: Option<SimTime>,
    /// Trigger states, like `spec.triggers`.
    pub triggers: Vec<TriggerState>,
    /// Latest metrics.
    pub metrics: Metrics,
    /// Burst: replicas currently wanted (baseline if never told).
    pub demand: u32,
    /// Since when a location (primary for failback, lost ones for rebalancing) has been healthy.
    pub healthy_since: BTreeMap<RegionId, SimTime>,
    /// Burst: since when demand has been low enough to scale in.
    pub low_since: Option<SimTime>,
    /// Cost-optimized: moves made in the current window, and its start.
    pub window_moves: (SimTime, u32),
    /// Whether every replica has run since the deployment was created or last moved.
    pub settled: bool,
    /// When it was created or last moved.
    pub moved_at: SimTime,
    /// Active-active: locations seen down and not restored since (healthy for `restore_after`
    /// with the cooldown passed).
    pub lost: BTreeSet<RegionId>,
    /// Replicas serving (running at a healthy location) when it was last observed.
    pub serving: u32,
    /// Disaster recovery: the backups kept.
    pub backups: BackupLedger,
    /// Disaster recovery: the backup under way (its restore point, kind and end).
    pub backup_running: Option<(SimTime, BackupKind, SimTime)>,
    /// Disaster recovery: when the next scheduled backup starts.
    pub next_backup: Option<SimTime>,
    /// The template's revision: 0, plus one each time an applied spec changed the template.
    pub revision: u32,
}

impl Deployment {
    /// A deployment with no replicas placed yet.
    pub fn new(spec: DeploymentSpec) -> Self {
        let triggers = vec![TriggerState::default(); spec.triggers.len()];
        let retention = spec.disaster_recovery.as_ref().map_or(0, |b| b.retention);
        Deployment {
            demand: spec.replicas,
            spec,
            slots: Vec::new(),
            active: 0,
            avoid: BTreeMap::new(),
            last_failover: None,
            triggers,
            metrics: Metrics::default(),
            healthy_since: BTreeMap::new(),
            low_since: None,
            window_moves: (SimTime::ZERO, 0),
            settled: false,
            moved_at: SimTime::ZERO,
            lost: BTreeSet::new(),
            serving: 0,
            backups: BackupLedger::new(retention),
            backup_running: None,
            next_backup: None,
            revision: 0,
        }
    }

    /// Whether a failover is allowed now (cooldown passed).
    pub fn cooled_down(&self, now: SimTime) -> bool {
        self.last_failover.is_none_or(|t| now.since(t) >= self.spec.cooldown)
    }

    /// Whether `r` is healthy: the region and at least one of its zones.
    pub fn location_healthy(snap: &Snapshot, r: RegionId) -> bool {
        snap.region_healthy.get(r.idx()).copied().unwrap_or(false)
            && snap.catalog.regions[r.idx()].zones.iter().any(|z| snap.zone_healthy[z.idx()])
    }

    /// Whether `r` may be targeted: healthy and not recently failed away from.
    pub fn location_ok(&self, snap: &Snapshot, r: RegionId, now: SimTime) -> bool {
        Self::location_healthy(snap, r) && self.avoid.get(&r).is_none_or(|until| *until <= now)
    }

    /// Instances of the template the region could still take (free slots of fitting offers,
    /// plus what its pools' free vCPUs could hold).
    pub fn capacity(&self, snap: &Snapshot, r: RegionId) -> u64 {
        let t = &self.spec.template;
        let mut n = 0u64;
        for o in snap.catalog.offers.iter().filter(|o| o.region == r) {
            if !snap.zone_healthy[o.zone.idx()] || !snap.catalog.offer_fits(o, &t.resources) {
                continue;
            }
            n += match o.kind {
                OfferKind::Instance(_) => o.capacity.saturating_sub(snap.offers[o.id.idx()].in_use) as u64,
                OfferKind::Pool(p) => {
                    let pool = &snap.pools[p.idx()];
                    let total = pool.len() as u64 * pool.host_capacity().vcpu as u64;
                    total.saturating_sub(pool.used().0) / t.resources.vcpu.max(1) as u64
                }
            };
        }
        n
    }

    /// Number of slots at `r`.
    pub fn count_at(&self, r: RegionId) -> usize {
        self.slots.iter().filter(|s| s.location == r).count()
    }

    /// Runs the strategy: the desired location of every slot at `now`.
    /// `fired` is the first trigger that fired this evaluation, if any.
    pub fn plan(&mut self, snap: &Snapshot, fired: Option<MoveReason>, now: SimTime) -> Plan {
        // Health is tracked apart from avoidance: a hold-down or restore period runs from when the
        // location came back, alongside the cooldown, not after it.
        for r in 0..snap.catalog.regions.len() {
            let r = RegionId(r as u16);
            if Self::location_healthy(snap, r) {
                self.healthy_since.entry(r).or_insert(now);
            } else {
                self.healthy_since.remove(&r);
            }
        }
        let strategy = self.spec.strategy.clone();
        let plan = match &strategy {
            Strategy::ActivePassive(c) => active_passive::plan(self, c, snap, fired, now),
            Strategy::ActiveActive(c) => active_active::plan(self, c, snap, now),
            Strategy::Burst(c) => burst::plan(self, c, snap, fired, now),
            Strategy::CostOptimized(c) => cost_optimized::plan(self, c, snap, now),
        };
        // Burst and cost moves are recorded, but they are not failovers: no cooldown, no avoidance.
        if let Some((from, _, reason)) =
            plan.failover.as_ref().filter(|(_, _, r)| !matches!(r, MoveReason::Burst | MoveReason::Cost))
        {
            self.last_failover = Some(now);
            self.settled = false;
            self.moved_at = now;
            // Only a location left because something was wrong with it is avoided: one that gave
            // replicas back to a restored location, or that a failback left, is healthy.
            if !matches!(reason, MoveReason::Rebalance | MoveReason::Failback) {
                self.avoid.insert(*from, now + self.spec.cooldown);
            }
            for t in &mut self.triggers {
                t.reset();
            }
        }
        plan
    }
}

/// Splits `n` replicas over `weights` by largest remainder; ties go to the earlier location.
pub fn apportion(n: u32, weights: &[f64]) -> Vec<u32> {
    let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    if weights.is_empty() || total <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> =
        weights.iter().map(|w| if w.is_finite() && *w > 0.0 { n as f64 * w / total } else { 0.0 }).collect();
    let mut out: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut left = n.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for i in order {
        if left == 0 {
            break;
        }
        if exact[i] > 0.0 {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

/// Moves slots so that location `i` holds `want[i]` of them, keeping every slot that can stay
/// where it is; returns the new location of every slot (same order, then new slots at the end).
pub fn assign(current: &[RegionId], locations: &[RegionId], want: &[u32]) -> Vec<RegionId> {
    let total: u32 = want.iter().sum();
    let mut keep = vec![0u32; locations.len()];
    let mut out: Vec<Option<RegionId>> = Vec::with_capacity(total as usize);
    for r in current.iter().take(total as usize) {
        match locations.iter().position(|l| l == r) {
            Some(i) if keep[i] < want[i] => {
                keep[i] += 1;
                out.push(Some(*r));
            }
            _ => out.push(None),
        }
    }
    while out.len() < total as usize {
        out.push(None);
    }
    let mut free: Vec<RegionId> = Vec::new();
    for (i, l) in locations.iter().enumerate() {
        for _ in keep[i]..want[i] {
            free.push(*l);
        }
    }
    let mut free = free.into_iter();
    out.into_iter()
        .map(|o| o.or_else(|| free.next()).unwrap_or(locations.first().copied().unwrap_or(RegionId(0))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_by_largest_remainder() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), [4, 3, 3]);
        assert_eq!(apportion(10, &[0.5, 0.3, 0.2]), [5, 3, 2]);
        assert_eq!(apportion(3, &[1.0, 0.0]), [3, 0]);
        assert_eq!(apportion(3, &[0.0, 0.0]), [0, 0]);
    }

    #[test]
    fn assign_keeps_what_can_stay() {
        let (a, b, c) = (RegionId(0), RegionId(1), RegionId(2));
        // Two at a, two at b; b is lost: its two go to a and c as wanted.
        let out = assign(&[a, b, a, b], &[a, c], &[3, 1]);
        assert_eq!(out, [a, a, a, c]);
        // Growing adds slots at the end.
        assert_eq!(assign(&[a], &[a, b], &[1, 2]), [a, b, b]);
    }

    #[test]
    fn slot_ids_are_marked() {
        let v = slot_vm(GroupId(3), 7);
        assert!(is_deployment_vm(v));
        assert!(!is_deployment_vm(VmId(12)));
        assert_ne!(slot_vm(GroupId(3), 8), v);
    }
}
