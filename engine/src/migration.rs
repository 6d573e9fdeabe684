//! Models of VM migration: how long moving a VM takes, how long it is unreachable, how much data
//! crosses the network, and how long the source and the target are both billed.
//!
//! Three kinds, as in a NovaCron manifest's `migrationPolicy.type`:
//!
//! * **live** — iterative pre-copy (Clark et al., *Live Migration of Virtual Machines*, NSDI 2005;
//!   QEMU/KVM's default). The VM keeps running while its memory is copied in rounds; each round
//!   re-sends what the guest dirtied during the previous one. When what is left is small enough,
//!   or after a round limit, the VM is paused, the rest is copied (the downtime) and the target
//!   resumes it.
//! * **warm** — a standby was provisioned on the target beforehand and kept in sync; the cut-over
//!   only ships the last delta and redirects traffic.
//! * **cold** — stop, snapshot the disk, copy the snapshot, restore and boot on the target. The
//!   whole operation is downtime, but source and target are never billed together.
//!
//! It is a fluid model: constant rates, no compression, no page-level detail. The figures are
//! planning estimates for placement and cost decisions, not a packet-level simulation. Every
//! function is pure and total: [`plan`] never panics and never returns NaN, whatever the input
//! (out-of-range figures are clamped as documented on [`MigrationParams`]);
//! [`MigrationParams::validate`] tells the caller what is out of range before it gets that far.

use serde::{Deserialize, Serialize};

use crate::time::SimDuration;

/// GiB per second carried by one Gbit/s: 10⁹ / 8 bytes over 2³⁰ bytes per GiB ≈ 0.1164.
pub const GIB_PER_S_PER_GBIT_PER_S: f64 = 1e9 / 8.0 / 1_073_741_824.0;

/// Bandwidth between regions of one cloud: a 10 Gbit/s path ≈ 1.164 GiB/s (a common instance
/// network allowance on AWS, Azure and GCP, and a typical dedicated inter-region link share).
pub const SAME_CLOUD_BANDWIDTH_GIB_PER_S: f64 = 10.0 * GIB_PER_S_PER_GBIT_PER_S;

/// Bandwidth between clouds over the public internet: 0.1 GiB/s (≈ 860 Mbit/s), a sustained
/// single-stream figure well below the instance's own allowance. Callers pick one of these.
pub const CROSS_CLOUD_BANDWIDTH_GIB_PER_S: f64 = 0.1;

/// Largest size, in GiB, that the model takes at face value (10⁹ GiB ≈ 1 EiB); larger, infinite
/// sizes are clamped to it, so sums over many rounds stay finite.
pub const MAX_GIB: f64 = 1e9;

/// Smallest transfer rate, GiB/s, the model uses (about one byte per second): zero, negative
/// and NaN rates are clamped to it, so a transfer over a dead link takes effectively forever
/// (durations saturate at `SimDuration(u64::MAX)` if need be) instead of dividing by zero.
pub const MIN_RATE_GIB_PER_S: f64 = 1e-9;

/// Largest transfer or dirty rate, GiB/s, the model uses; larger and infinite rates are clamped to it.
pub const MAX_RATE_GIB_PER_S: f64 = 1e9;

/// Most pre-copy rounds the model runs; `max_precopy_rounds` above it is clamped to it.
/// Hypervisors stop far earlier (Xen's classic pre-copy gave up after about 30 rounds).
pub const MAX_PRECOPY_ROUNDS: u32 = 1000;

/// How a VM is moved, as in a NovaCron manifest's `migrationPolicy.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationKind {
    /// Iterative pre-copy of memory while the VM runs, then a short stop-and-copy.
    Live,
    /// Cut-over to a standby that was provisioned beforehand and kept in sync.
    Warm,
    /// Stop, snapshot, copy, restore and boot.
    Cold,
}

/// What a migration has to move and how fast it can move it.
///
/// [`plan`] accepts any values and clamps them: sizes (`memory_gib`, `disk_gib`,
/// `stop_copy_threshold_gib`) and `dirty_rate_gib_per_s` that are negative or NaN count as zero;
/// sizes above [`MAX_GIB`] and rates above [`MAX_RATE_GIB_PER_S`] (infinity included) count as
/// those bounds; `bandwidth_gib_per_s` and `snapshot_rate_gib_per_s` below
/// [`MIN_RATE_GIB_PER_S`] (zero, negative, NaN) count as that minimum; `max_precopy_rounds`
/// above [`MAX_PRECOPY_ROUNDS`] counts as that. [`MigrationParams::validate`] rejects all of these.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationParams {
    /// Guest memory, GiB.
    pub memory_gib: f64,
    /// Disk to move, GiB (ignored by live and warm copies when `shared_storage`).
    pub disk_gib: f64,
    /// How fast the running guest dirties memory, GiB/s.
    pub dirty_rate_gib_per_s: f64,
    /// Network throughput between source and target, GiB/s (see [`SAME_CLOUD_BANDWIDTH_GIB_PER_S`]
    /// and [`CROSS_CLOUD_BANDWIDTH_GIB_PER_S`]).
    pub bandwidth_gib_per_s: f64,
    /// Most pre-copy rounds before a live migration forces the stop-and-copy.
    pub max_precopy_rounds: u32,
    /// A live migration stops pre-copying once what is left to send is at most this, GiB.
    pub stop_copy_threshold_gib: f64,
    /// Fixed cost of pausing the source and resuming the target (device state, ARP/route update).
    pub pause_overhead: SimDuration,
    /// Warm cut-over: redirecting traffic from the source to the standby.
    pub switch_over: SimDuration,
    /// How fast the source's disk is snapshotted (cold), GiB/s.
    pub snapshot_rate_gib_per_s: f64,
    /// Provisioning and booting an instance on the target (cold restore, warm standby).
    pub boot_time: SimDuration,
    /// Source and target see the same storage, so the disk need not be copied.
    pub shared_storage: bool,
}

impl Default for MigrationParams {
    /// A general-purpose VM (8 GiB memory, 50 GiB disk) moving between regions of one cloud.
    ///
    /// * bandwidth: 10 Gbit/s ≈ 1.164 GiB/s ([`SAME_CLOUD_BANDWIDTH_GIB_PER_S`]);
    /// * dirty rate: 0.1 GiB/s (≈ 107 MB/s), a busy but not write-bound server;
    /// * stop-copy threshold: what the link moves in 300 ms, QEMU's default `downtime-limit`
    ///   (≈ 0.35 GiB at 1.164 GiB/s);
    /// * 30 pre-copy rounds, about where Xen's classic pre-copy gave up;
    /// * pause overhead 100 ms (device state and network re-announcement);
    /// * warm switch-over 2 s (a load-balancer target or DNS-less route change);
    /// * snapshot rate 0.1 GiB/s (a first, full block-storage snapshot is slow, minutes for tens of GiB);
    /// * boot time 60 s (cloud instance launch to a booted OS is typically 30–90 s);
    /// * no shared storage (the usual case across regions).
    fn default() -> Self {
        MigrationParams {
            memory_gib: 8.0,
            disk_gib: 50.0,
            dirty_rate_gib_per_s: 0.1,
            bandwidth_gib_per_s: SAME_CLOUD_BANDWIDTH_GIB_PER_S,
            max_precopy_rounds: 30,
            stop_copy_threshold_gib: 0.3 * SAME_CLOUD_BANDWIDTH_GIB_PER_S,
            pause_overhead: SimDuration::from_millis(100),
            switch_over: SimDuration::from_secs(2),
            snapshot_rate_gib_per_s: 0.1,
            boot_time: SimDuration::from_secs(60),
            shared_storage: false,
        }
    }
}

impl MigrationParams {
    /// Checks every figure; the message names the field and what is allowed. Durations are
    /// always valid. Values that pass are used by [`plan`] exactly as given.
    pub fn validate(&self) -> Result<(), String> {
        let gib = |name: &str, v: f64, positive: bool| {
            let ok = (if positive { v > 0.0 } else { v >= 0.0 }) && v <= MAX_GIB;
            let lower = if positive { "greater than 0" } else { ">= 0" };
            check(name, v, ok, &format!("a number of GiB {lower} and at most 1e9"))
        };
        let rate = |name: &str, v: f64| {
            let ok = (MIN_RATE_GIB_PER_S..=MAX_RATE_GIB_PER_S).contains(&v);
            check(name, v, ok, "a rate in GiB/s between 1e-9 and 1e9")
        };
        gib("memory_gib", self.memory_gib, true)?;
        gib("disk_gib", self.disk_gib, false)?;
        let dirty = self.dirty_rate_gib_per_s;
        check(
            "dirty_rate_gib_per_s",
            dirty,
            (0.0..=MAX_RATE_GIB_PER_S).contains(&dirty),
            "a rate in GiB/s >= 0 and at most 1e9",
        )?;
        rate("bandwidth_gib_per_s", self.bandwidth_gib_per_s)?;
        if self.max_precopy_rounds > MAX_PRECOPY_ROUNDS {
            return Err(format!(
                "migration parameter max_precopy_rounds must be a whole number from 0 to {MAX_PRECOPY_ROUNDS}, got {}",
                self.max_precopy_rounds
            ));
        }
        gib("stop_copy_threshold_gib", self.stop_copy_threshold_gib, false)?;
        rate("snapshot_rate_gib_per_s", self.snapshot_rate_gib_per_s)?;
        Ok(())
    }
}

fn check(name: &str, value: f64, ok: bool, allowed: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("migration parameter {name} must be {allowed}, got {value}")) }
}

/// A size in GiB: NaN and negative → 0, above [`MAX_GIB`] → [`MAX_GIB`].
pub(crate) fn clamp_gib(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 { 0.0 } else { x.min(MAX_GIB) }
}

/// A rate that may be zero (dirty rate): NaN and negative → 0, capped at [`MAX_RATE_GIB_PER_S`].
fn clamp_rate(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 { 0.0 } else { x.min(MAX_RATE_GIB_PER_S) }
}

/// A rate that divides (bandwidth, snapshot rate): within [`MIN_RATE_GIB_PER_S`]..=[`MAX_RATE_GIB_PER_S`].
pub(crate) fn clamp_divisor_rate(x: f64) -> f64 {
    if x.is_nan() { MIN_RATE_GIB_PER_S } else { x.clamp(MIN_RATE_GIB_PER_S, MAX_RATE_GIB_PER_S) }
}

/// What a migration costs in time and data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationPlan {
    /// The kind planned.
    pub kind: MigrationKind,
    /// From the start of the migration until the VM runs on the target.
    pub total_time: SimDuration,
    /// How long the VM is unreachable; never more than `total_time`.
    pub downtime: SimDuration,
    /// Data sent from source to target, GiB (what egress is billed on).
    pub transferred_gib: f64,
    /// Pre-copy rounds run while the VM was live (live only; zero otherwise).
    pub rounds: u32,
    /// Whether the memory left for the stop-and-copy came down to the threshold (live); warm and
    /// cold migrations always converge.
    pub converged: bool,
    /// How long the source and the target are both billed.
    pub overlap: SimDuration,
}

/// Plans a migration of `kind` with parameters `p`.
///
/// * **Live.** Round 0 copies all memory, V₀ = `memory_gib`. Round i takes tᵢ = Vᵢ / bandwidth,
///   during which the guest dirties Vᵢ₊₁ = dirty_rate × tᵢ (capped at `memory_gib`: a guest
///   cannot dirty more memory than it has). Rounds run while Vᵢ > `stop_copy_threshold_gib` and
///   fewer than `max_precopy_rounds` have run. When the dirty rate is at least the bandwidth the
///   residue never shrinks: the rounds run out and the plan is not `converged`. Then the VM
///   pauses: downtime = V_last / bandwidth + `pause_overhead`. Unless `shared_storage`, the disk
///   is copied first (disk / bandwidth). total_time = disk copy + pre-copy rounds + downtime;
///   both sides run throughout, so overlap = total_time. transferred = disk + Σ Vᵢ + V_last.
/// * **Warm.** The standby is provisioned (`boot_time`) and synced (disk unless shared, plus
///   memory, at the bandwidth); at cut-over the guest has dirtied delta = dirty_rate ×
///   `switch_over` (capped at memory): downtime = `switch_over` + delta / bandwidth.
///   total_time = boot_time + sync + downtime = overlap; transferred = disk + memory + delta.
/// * **Cold.** Stop, snapshot (disk / snapshot rate), copy (disk / bandwidth, none with shared
///   storage), restore and boot (`boot_time`): downtime = total_time = the sum; overlap zero;
///   transferred = disk, or nothing with shared storage. Memory is not moved: the VM reboots.
///
/// Never panics and never gives NaN: inputs are clamped as described on [`MigrationParams`];
/// durations saturate at `SimDuration(u64::MAX)`.
pub fn plan(kind: MigrationKind, p: &MigrationParams) -> MigrationPlan {
    let memory = clamp_gib(p.memory_gib);
    let disk_gib = if p.shared_storage { 0.0 } else { clamp_gib(p.disk_gib) };
    let dirty = clamp_rate(p.dirty_rate_gib_per_s);
    let bandwidth = clamp_divisor_rate(p.bandwidth_gib_per_s);
    match kind {
        MigrationKind::Live => {
            let threshold = clamp_gib(p.stop_copy_threshold_gib);
            let max_rounds = p.max_precopy_rounds.min(MAX_PRECOPY_ROUNDS);
            let mut left = memory;
            let mut rounds = 0;
            let mut precopy_s = 0.0;
            let mut sent = 0.0;
            while left > threshold && rounds < max_rounds {
                let t = left / bandwidth;
                precopy_s += t;
                sent += left;
                rounds += 1;
                left = (dirty * t).min(memory);
            }
            let downtime = SimDuration::from_secs_f64(left / bandwidth) + p.pause_overhead;
            let total_time = SimDuration::from_secs_f64(disk_gib / bandwidth + precopy_s) + downtime;
            MigrationPlan {
                kind,
                total_time,
                downtime,
                transferred_gib: disk_gib + sent + left,
                rounds,
                converged: left <= threshold,
                overlap: total_time,
            }
        }
        MigrationKind::Warm => {
            let delta = (dirty * p.switch_over.as_secs_f64()).min(memory);
            let downtime = p.switch_over + SimDuration::from_secs_f64(delta / bandwidth);
            let sync = SimDuration::from_secs_f64((disk_gib + memory) / bandwidth);
            let total_time = p.boot_time + sync + downtime;
            MigrationPlan {
                kind,
                total_time,
                downtime,
                transferred_gib: disk_gib + memory + delta,
                rounds: 0,
                converged: true,
                overlap: total_time,
            }
        }
        MigrationKind::Cold => {
            let snapshot_s = clamp_gib(p.disk_gib) / clamp_divisor_rate(p.snapshot_rate_gib_per_s);
            let total_time = SimDuration::from_secs_f64(snapshot_s + disk_gib / bandwidth) + p.boot_time;
            MigrationPlan {
                kind,
                total_time,
                downtime: total_time,
                transferred_gib: disk_gib,
                rounds: 0,
                converged: true,
                overlap: SimDuration::ZERO,
            }
        }
    }
}

/// Time to move `gib` at `bandwidth_gib_per_s` (an image or a snapshot between clouds), rounded
/// to the millisecond. Clamped like [`MigrationParams`]: a negative or NaN size moves nothing, a
/// zero, negative or NaN bandwidth counts as [`MIN_RATE_GIB_PER_S`].
pub fn transfer_time(gib: f64, bandwidth_gib_per_s: f64) -> SimDuration {
    SimDuration::from_secs_f64(clamp_gib(gib) / clamp_divisor_rate(bandwidth_gib_per_s))
}

/// Egress dollars for a plan at `per_gib` $/GiB (see [`crate::EgressPrices::per_gib`]). A price
/// or a transferred size that is negative, NaN or infinite counts as zero, and the product
/// saturates at `f64::MAX`, so the result is always finite and non-negative.
pub fn egress_cost(plan: &MigrationPlan, per_gib: f64) -> f64 {
    let price = if per_gib.is_finite() && per_gib > 0.0 { per_gib } else { 0.0 };
    let gib = if plan.transferred_gib.is_finite() { clamp_gib(plan.transferred_gib) } else { 0.0 };
    (gib * price).min(f64::MAX)
}

/// How a deployment moves replicas between healthy locations: a manifest's `migrationPolicy`.
///
/// Every move of a replica whose instance still serves (a cost move, a failover a trigger asked
/// for while the source is up, a failback, a rebalance) follows [`plan`] for `kind`; a replica
/// whose location died is not migrated but re-placed (and restored, with disaster recovery).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationPolicy {
    /// Live, warm or cold.
    pub kind: MigrationKind,
    /// What a replica holds and how fast it moves; `bandwidth_gib_per_s` is the rate between
    /// regions of one cloud.
    pub params: MigrationParams,
    /// The rate between clouds, GiB/s (see [`CROSS_CLOUD_BANDWIDTH_GIB_PER_S`]).
    pub cross_cloud_bandwidth_gib_per_s: f64,
    /// Cost moves must also save at least this share of what the replica costs now, 0..1 (the
    /// seed's cost trigger `threshold: "25%"`).
    pub cost_threshold: Option<f64>,
}

impl MigrationPolicy {
    /// A policy of `kind` with default parameters and no cost threshold.
    pub fn new(kind: MigrationKind) -> Self {
        MigrationPolicy {
            kind,
            params: MigrationParams::default(),
            cross_cloud_bandwidth_gib_per_s: CROSS_CLOUD_BANDWIDTH_GIB_PER_S,
            cost_threshold: None,
        }
    }

    /// Checks the parameters; the message names the field and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        self.params.validate()?;
        let cross = self.cross_cloud_bandwidth_gib_per_s;
        check(
            "cross_cloud_bandwidth_gib_per_s",
            cross,
            (MIN_RATE_GIB_PER_S..=MAX_RATE_GIB_PER_S).contains(&cross),
            "a rate in GiB/s between 1e-9 and 1e9",
        )?;
        match self.cost_threshold {
            Some(t) if !(0.0..=1.0).contains(&t) => {
                check("cost_threshold", t, false, "a share of the current price between 0 and 1")
            }
            _ => Ok(()),
        }
    }

    /// The plan of one move, at the bandwidth of the path: within one cloud or across clouds.
    pub fn plan(&self, cross_cloud: bool) -> MigrationPlan {
        let mut p = self.params;
        if cross_cloud {
            p.bandwidth_gib_per_s = self.cross_cloud_bandwidth_gib_per_s;
        }
        plan(self.kind, &p)
    }

    /// How long the data moves before the cut-over, once the target is up (live and warm), or
    /// before the target is provisioned (cold: snapshot and copy). The target's boot is the
    /// cloud's real provisioning time, so the plan's `boot_time` is left out.
    pub fn transfer_time(&self, plan: &MigrationPlan) -> SimDuration {
        match plan.kind {
            MigrationKind::Live => plan.total_time,
            MigrationKind::Warm | MigrationKind::Cold => {
                SimDuration(plan.total_time.as_millis().saturating_sub(self.params.boot_time.as_millis()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 8 GiB, 1 GiB/s, dirtying 0.25 GiB/s, stop-copy at 0.1 GiB, 100 ms pause, shared storage.
    fn base() -> MigrationParams {
        MigrationParams {
            memory_gib: 8.0,
            disk_gib: 16.0,
            dirty_rate_gib_per_s: 0.25,
            bandwidth_gib_per_s: 1.0,
            max_precopy_rounds: 30,
            stop_copy_threshold_gib: 0.1,
            pause_overhead: SimDuration::from_millis(100),
            switch_over: SimDuration::from_secs(2),
            snapshot_rate_gib_per_s: 0.5,
            boot_time: SimDuration::from_secs(60),
            shared_storage: true,
        }
    }

    #[test]
    fn live_converges_geometrically() {
        let p = plan(MigrationKind::Live, &base());
        // Rounds copy 8, 2, 0.5, 0.125 GiB in 8 + 2 + 0.5 + 0.125 = 10.625 s (each dirties a
        // quarter of what it sends); 0.03125 GiB is left, <= 0.1: stop after 4 rounds.
        assert_eq!(p.rounds, 4);
        assert!(p.converged);
        // Downtime: 0.03125 GiB / 1 GiB/s = 31.25 ms, rounded to 31 ms, + 100 ms pause.
        assert_eq!(p.downtime, SimDuration::from_millis(131));
        // Total: 10 625 ms of pre-copy + 131 ms of downtime.
        assert_eq!(p.total_time, SimDuration::from_millis(10_756));
        assert_eq!(p.overlap, p.total_time);
        // 8 + 2 + 0.5 + 0.125 + 0.03125, exact in binary.
        assert_eq!(p.transferred_gib, 10.65625);
    }

    #[test]
    fn live_copies_disk_first_without_shared_storage() {
        let p = plan(MigrationKind::Live, &MigrationParams { shared_storage: false, ..base() });
        // 16 GiB of disk at 1 GiB/s adds 16 s and 16 GiB.
        assert_eq!(p.total_time, SimDuration::from_millis(26_756));
        assert_eq!(p.downtime, SimDuration::from_millis(131));
        assert_eq!(p.transferred_gib, 26.65625);
        // Egress at $0.5/GiB: 26.65625 * 0.5 = 13.328125.
        assert_eq!(egress_cost(&p, 0.5), 13.328125);
    }

    #[test]
    fn live_round_limit_leaves_a_bigger_residue() {
        let p = plan(MigrationKind::Live, &MigrationParams { max_precopy_rounds: 2, ..base() });
        // Rounds of 8 s and 2 s; 0.5 GiB left > 0.1: not converged.
        assert_eq!(p.rounds, 2);
        assert!(!p.converged);
        // 0.5 GiB / 1 GiB/s = 500 ms + 100 ms pause; total 10 s + 600 ms; sent 8 + 2 + 0.5.
        assert_eq!(p.downtime, SimDuration::from_millis(600));
        assert_eq!(p.total_time, SimDuration::from_millis(10_600));
        assert_eq!(p.transferred_gib, 10.5);
    }

    #[test]
    fn live_does_not_converge_when_dirtying_outpaces_the_link() {
        for dirty in [1.0, 2.0, f64::INFINITY] {
            let p = plan(
                MigrationKind::Live,
                &MigrationParams { dirty_rate_gib_per_s: dirty, max_precopy_rounds: 5, ..base() },
            );
            // Every round re-sends all 8 GiB (dirtying is capped at the memory size): 5 rounds
            // of 8 s, then a stop-and-copy of 8 GiB: 8 s + 100 ms downtime, 48.1 s in all.
            assert_eq!(p.rounds, 5, "dirty {dirty}");
            assert!(!p.converged);
            assert_eq!(p.downtime, SimDuration::from_millis(8_100));
            assert_eq!(p.total_time, SimDuration::from_millis(48_100));
            assert_eq!(p.transferred_gib, 48.0);
        }
    }

    #[test]
    fn live_small_memory_goes_straight_to_stop_and_copy() {
        let p = plan(MigrationKind::Live, &MigrationParams { memory_gib: 0.05, ..base() });
        // 0.05 GiB <= 0.1 at once: no rounds, 50 ms copy + 100 ms pause.
        assert_eq!(p.rounds, 0);
        assert!(p.converged);
        assert_eq!(p.downtime, SimDuration::from_millis(150));
        assert_eq!(p.total_time, SimDuration::from_millis(150));
    }

    #[test]
    fn warm_switches_over_to_a_synced_standby() {
        let p = plan(MigrationKind::Warm, &MigrationParams { shared_storage: false, ..base() });
        // Delta: 0.25 GiB/s * 2 s = 0.5 GiB, 0.5 s to ship: downtime 2 + 0.5 = 2.5 s.
        assert_eq!(p.downtime, SimDuration::from_millis(2_500));
        // Boot the standby 60 s, sync 16 + 8 GiB at 1 GiB/s = 24 s, then the 2.5 s cut-over.
        assert_eq!(p.total_time, SimDuration::from_millis(86_500));
        assert_eq!(p.overlap, p.total_time);
        assert_eq!(p.transferred_gib, 24.5);
        assert_eq!((p.rounds, p.converged), (0, true));

        let shared = plan(MigrationKind::Warm, &base());
        // Memory only: 60 + 8 + 2.5 = 70.5 s; 8 + 0.5 GiB.
        assert_eq!(shared.total_time, SimDuration::from_millis(70_500));
        assert_eq!(shared.transferred_gib, 8.5);
    }

    #[test]
    fn cold_is_all_downtime_and_no_overlap() {
        let p = plan(MigrationKind::Cold, &MigrationParams { shared_storage: false, ..base() });
        // Snapshot 16 GiB at 0.5 GiB/s = 32 s, copy 16 s, boot 60 s: 108 s, all of it down.
        assert_eq!(p.total_time, SimDuration::from_secs(108));
        assert_eq!(p.downtime, p.total_time);
        assert_eq!(p.overlap, SimDuration::ZERO);
        assert_eq!(p.transferred_gib, 16.0);

        let shared = plan(MigrationKind::Cold, &base());
        // Shared storage: still snapshotted (32 s), nothing copied, boot 60 s.
        assert_eq!(shared.total_time, SimDuration::from_secs(92));
        assert_eq!(shared.downtime, SimDuration::from_secs(92));
        assert_eq!(shared.transferred_gib, 0.0);
        assert_eq!(egress_cost(&shared, 0.09), 0.0);
    }

    #[test]
    fn default_figures() {
        let d = MigrationParams::default();
        assert_eq!(d.validate(), Ok(()));
        // 10 Gbit/s = 1.25e9 B/s = 1.1641532... GiB/s.
        assert!((d.bandwidth_gib_per_s - 1.164_153_218_3).abs() < 1e-9, "{}", d.bandwidth_gib_per_s);
        let p = plan(MigrationKind::Live, &d);
        // 8 GiB in 6.872 s dirties 0.687 GiB; that in 0.590 s dirties 0.059 GiB <= 0.349: 2 rounds.
        assert_eq!(p.rounds, 2);
        assert!(p.converged);
        // 0.05903 GiB / 1.16415 GiB/s = 50.7 ms → 51 ms, + 100 ms.
        assert_eq!(p.downtime, SimDuration::from_millis(151));
    }

    #[test]
    fn transfer_times() {
        // 64 GiB image across clouds at 0.25 GiB/s: 256 s.
        assert_eq!(transfer_time(64.0, 0.25), SimDuration::from_secs(256));
        // 100 GiB at the default cross-cloud 0.1 GiB/s: 1000 s.
        assert_eq!(transfer_time(100.0, CROSS_CLOUD_BANDWIDTH_GIB_PER_S), SimDuration::from_secs(1000));
        assert_eq!(transfer_time(-5.0, 1.0), SimDuration::ZERO);
        assert_eq!(transfer_time(f64::NAN, 1.0), SimDuration::ZERO);
        // A dead link: 1 GiB at 1e-9 GiB/s = 1e9 s.
        assert_eq!(transfer_time(1.0, 0.0), SimDuration::from_secs(1_000_000_000));
        assert_eq!(transfer_time(1.0, f64::NAN), SimDuration::from_secs(1_000_000_000));
    }

    #[test]
    fn egress_cost_ignores_nonsense_prices() {
        let p = plan(MigrationKind::Cold, &MigrationParams { shared_storage: false, ..base() });
        assert_eq!(egress_cost(&p, 0.02), 16.0 * 0.02);
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            assert_eq!(egress_cost(&p, bad), 0.0);
        }
        let weird = MigrationPlan { transferred_gib: f64::NAN, ..p };
        assert_eq!(egress_cost(&weird, 0.09), 0.0);
        // 16 GiB at an absurd 1e308 $/GiB overflows to infinity; it saturates instead.
        assert_eq!(egress_cost(&p, 1e308), f64::MAX);
    }

    #[test]
    fn validate_names_the_field() {
        let cases: [(MigrationParams, &str); 8] = [
            (MigrationParams { memory_gib: 0.0, ..base() }, "memory_gib"),
            (MigrationParams { disk_gib: f64::NAN, ..base() }, "disk_gib"),
            (MigrationParams { dirty_rate_gib_per_s: -0.1, ..base() }, "dirty_rate_gib_per_s"),
            (MigrationParams { bandwidth_gib_per_s: 0.0, ..base() }, "bandwidth_gib_per_s"),
            (MigrationParams { bandwidth_gib_per_s: f64::INFINITY, ..base() }, "bandwidth_gib_per_s"),
            (MigrationParams { max_precopy_rounds: 1001, ..base() }, "max_precopy_rounds"),
            (MigrationParams { stop_copy_threshold_gib: -1.0, ..base() }, "stop_copy_threshold_gib"),
            (MigrationParams { snapshot_rate_gib_per_s: f64::NAN, ..base() }, "snapshot_rate_gib_per_s"),
        ];
        for (p, field) in cases {
            let err = p.validate().expect_err(field);
            assert!(err.contains(field) && err.contains("must be"), "{err}");
        }
        assert_eq!(
            MigrationParams { bandwidth_gib_per_s: 0.0, ..base() }.validate(),
            Err("migration parameter bandwidth_gib_per_s must be a rate in GiB/s between 1e-9 and 1e9, got 0".into())
        );
        assert_eq!(base().validate(), Ok(()));
    }

    #[test]
    fn serde_kebab_case_and_strict_fields() {
        assert_eq!(serde_json::to_string(&MigrationKind::Live).expect("serializes"), "\"live\"");
        let k: MigrationKind = serde_json::from_str("\"cold\"").expect("kebab-case kind");
        assert_eq!(k, MigrationKind::Cold);
        assert!(serde_json::from_str::<MigrationKind>("\"Live\"").is_err());
        // Missing fields take defaults; unknown ones are refused.
        let p: MigrationParams = toml::from_str("memory_gib = 16.0\nshared_storage = true").expect("partial params");
        assert_eq!(p, MigrationParams { memory_gib: 16.0, shared_storage: true, ..MigrationParams::default() });
        assert!(toml::from_str::<MigrationParams>("memory = 16.0").is_err());
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::num::f64::ANY,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(0.0),
            -10.0..100.0f64,
        ]
    }

    proptest! {
        /// Whatever the figures, plan() gives finite, non-negative data and downtime <= total time.
        #[test]
        fn plan_is_total(
            memory in any_f64(), disk in any_f64(), dirty in any_f64(), bandwidth in any_f64(),
            threshold in any_f64(), snapshot in any_f64(), per_gib in any_f64(),
            rounds in prop_oneof![0u32..50, any::<u32>()],
            pause in any::<u64>(), switch in any::<u64>(), boot in any::<u64>(),
            shared in any::<bool>(),
        ) {
            let p = MigrationParams {
                memory_gib: memory,
                disk_gib: disk,
                dirty_rate_gib_per_s: dirty,
                bandwidth_gib_per_s: bandwidth,
                max_precopy_rounds: rounds,
                stop_copy_threshold_gib: threshold,
                pause_overhead: SimDuration(pause),
                switch_over: SimDuration(switch),
                snapshot_rate_gib_per_s: snapshot,
                boot_time: SimDuration(boot),
                shared_storage: shared,
            };
            for kind in [MigrationKind::Live, MigrationKind::Warm, MigrationKind::Cold] {
                let m = plan(kind, &p);
                prop_assert_eq!(m.kind, kind);
                prop_assert!(m.transferred_gib.is_finite() && m.transferred_gib >= 0.0, "{:?}", m);
                prop_assert!(m.downtime <= m.total_time, "{:?}", m);
                prop_assert!(m.overlap <= m.total_time, "{:?}", m);
                prop_assert!(m.rounds <= MAX_PRECOPY_ROUNDS);
                let cost = egress_cost(&m, per_gib);
                prop_assert!(cost.is_finite() && cost >= 0.0);
            }
            let _ = transfer_time(disk, bandwidth);
        }
    }
}
