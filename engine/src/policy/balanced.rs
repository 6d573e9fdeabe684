//! Balanced: a weighted sum of the four objectives, each normalised to 0..1 across the feasible
//! candidates (min-max), so that weights mean the same whatever the units.
//!
//! * cost: marginal $/h, plus expected interruption cost for spot (as in cost-optimized);
//! * performance: latency to the request's users;
//! * availability: share of the group already in the zone, plus spot interruption risk;
//! * energy: gCO2e per hour from the region's grid intensity and the VM's power draw.

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, Scores, place};
use crate::model::{Market, VmRequest};
use crate::snapshot::{Candidate, Snapshot};
use crate::time::SimTime;

/// Objective weights (any non-negative numbers, not all zero; they are normalised). A weight left
/// out of a `weights` table is zero: `weights = { energy = 1 }` optimises for carbon alone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Weight of cost.
    #[serde(default)]
    pub cost: f64,
    /// Weight of latency.
    #[serde(default)]
    pub performance: f64,
    /// Weight of spread and interruption risk.
    #[serde(default)]
    pub availability: f64,
    /// Weight of carbon emissions.
    #[serde(default)]
    pub energy: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { cost: 0.4, performance: 0.3, availability: 0.2, energy: 0.1 }
    }
}

/// Parameters of [`Balanced`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancedConfig {
    /// Objective weights.
    pub weights: Weights,
    /// Dollars per spot interruption, as in cost-optimized.
    pub interruption_cost_usd: f64,
    /// Interruptions per hour assumed for spot before any is observed.
    pub prior_interruptions_per_h: f64,
}

impl Default for BalancedConfig {
    fn default() -> Self {
        BalancedConfig { weights: Weights::default(), interruption_cost_usd: 0.5, prior_interruptions_per_h: 0.02 }
    }
}

impl BalancedConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let w = self.weights;
        let all = [w.cost, w.performance, w.availability, w.energy];
        if all.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err("weights.cost, .performance, .availability and .energy must be numbers >= 0".into());
        }
        if all.iter().sum::<f64>() <= 0.0 {
            return Err("at least one of the weights must be > 0".into());
        }
        super::check_spot_risk(self.interruption_cost_usd, self.prior_interruptions_per_h)
    }
}

/// The balanced multi-objective policy.
#[derive(Clone, Debug)]
pub struct Balanced {
    cfg: BalancedConfig,
}

impl Balanced {
    /// A policy with these parameters.
    pub fn new(cfg: BalancedConfig) -> Self {
        Balanced { cfg }
    }

    fn raw(&self, req: &VmRequest, c: &Candidate, snap: &Snapshot, now: SimTime) -> [f64; 4] {
        let s = Scores::of(req, c, snap, now);
        let risk = match c.market {
            Market::Spot => self.cfg.prior_interruptions_per_h + s.interruption_risk_per_h,
            Market::OnDemand => 0.0,
        };
        [s.cost_per_h + risk * self.cfg.interruption_cost_usd, s.latency_ms, s.spread + risk.min(1.0), s.carbon_g_per_h]
    }
}

impl PlacementPolicy for Balanced {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let mut cands: Vec<(Candidate, [f64; 4])> = Vec::new();
        if let Err(r) = snap.for_each_candidate(req, now, |c| cands.push((*c, self.raw(req, c, snap, now)))) {
            return Decision::Reject(r);
        }
        let mut lo = [f64::INFINITY; 4];
        let mut hi = [f64::NEG_INFINITY; 4];
        for (_, v) in &cands {
            for k in 0..4 {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
        let w = self.cfg.weights;
        let wsum = w.cost + w.performance + w.availability + w.energy;
        let weights = [w.cost / wsum, w.performance / wsum, w.availability / wsum, w.energy / wsum];
        let mut best: Option<(Candidate, f64)> = None;
        for (c, v) in &cands {
            let mut total = 0.0;
            for k in 0..4 {
                let span = hi[k] - lo[k];
                let norm = if span > 0.0 { (v[k] - lo[k]) / span } else { 0.0 };
                total += weights[k] * norm;
            }
            if best.is_none_or(|(_, b)| total < b) {
                best = Some((*c, total));
            }
        }
        match best {
            Some((c, total)) => place(req, snap, now, c, total),
            None => super::cost_optimized::unreachable_reject(),
        }
    }
}
