//! Runs policies, learned and hand-written, on scenarios and seeds and compares them: total cost,
//! availability, rejections, SLA violations (VMs whose own availability after boot fell under the
//! target),
//! spot interruptions, failovers, and regret against the hindsight
//! oracle (per first placement, the chosen candidate's penalized hindsight cost minus the best
//! candidate's, as [`crate::dataset`] computes them).

use std::collections::BTreeMap;

use engine::PolicyConfig;
use sim::Scenario;
use sim::run::RunOptions;

use crate::Result;
use crate::dataset::{Penalties, record_run};

/// One run's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunFigures {
    /// Scenario (as given).
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Policy label.
    pub policy: String,
    /// Total cost, $ (commitment fees included).
    pub total_cost_usd: f64,
    /// Availability, 0..1, as the simulator reports it.
    pub availability: f64,
    /// Requests.
    pub requests: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// VMs served less than the SLA target of the time their owner wanted them (a rejected
    /// request is a violation too).
    pub sla_violations: u64,
    /// Spot interruption notices.
    pub interruptions: u64,
    /// Failovers.
    pub failovers: u64,
    /// First placements recorded.
    pub decisions: u64,
    /// Σ (chosen − best) penalized hindsight cost over the decisions, $.
    pub regret_usd: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Runs every scenario × seed × policy.
pub fn run_all(
    scenarios: &[(String, Scenario)],
    seeds: std::ops::Range<u64>,
    policies: &[(String, PolicyConfig)],
    penalties: Penalties,
    sla: f64,
) -> Result<Vec<RunFigures>> {
    let mut out = Vec::new();
    for (name, s) in scenarios {
        for seed in seeds.clone() {
            for (label, p) in policies {
                let t = std::time::Instant::now();
                let (rows, res) = record_run(s, &RunOptions { seed: Some(seed), policy: Some(p.clone()) }, penalties)?;
                let seconds = t.elapsed().as_secs_f64();
                let mut by_decision: BTreeMap<u64, (Option<f64>, f64)> = BTreeMap::new();
                for r in &rows {
                    let e = by_decision.entry(r.decision).or_insert((None, f64::INFINITY));
                    if r.chosen {
                        e.0 = Some(r.penalized_cost_usd);
                    }
                    e.1 = e.1.min(r.penalized_cost_usd);
                }
                let regret_usd = by_decision.values().filter_map(|(c, b)| c.map(|c| c - b)).sum();
                let sm = &res.summary;
                out.push(RunFigures {
                    scenario: name.clone(),
                    seed,
                    policy: label.clone(),
                    total_cost_usd: sm.total_cost_usd,
                    availability: sm.availability,
                    requests: sm.requests_total,
                    rejected: sm.requests_rejected,
                    sla_violations: sla_violations(&res.vms, sla),
                    interruptions: sm.spot_interruptions,
                    failovers: sm.failovers,
                    decisions: by_decision.len() as u64,
                    regret_usd,
                    seconds,
                });
            }
        }
    }
    Ok(out)
}

/// VMs that missed the SLA: served less than `sla` × the time their owner wanted them from their
/// first boot on (the boot itself is not counted against it), or never running at all (rejected,
/// or still waiting when the run ended). A VM not wanted within the run is never a violation.
pub fn sla_violations(vms: &[sim::results::VmRecord], sla: f64) -> u64 {
    vms.iter()
        .filter(|v| v.requested_s > 0.0)
        .filter(|v| match v.first_running_s {
            None => true,
            Some(up) => {
                let wanted = (v.requested_s - (up - v.arrival_s).max(0.0)).max(0.0);
                v.served_s < sla * wanted
            }
        })
        .count() as u64
}

/// A Markdown table of the means over seeds, per scenario and policy, in the order given.
pub fn table(runs: &[RunFigures]) -> String {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.scenario.clone(), r.policy.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut s = String::from(
        "| scenario | policy | seeds | cost $ | availability % | rejected | SLA violations | interruptions | failovers | regret $/decision |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (sc, p) in keys {
        let g: Vec<&RunFigures> = runs.iter().filter(|r| r.scenario == sc && r.policy == p).collect();
        let n = g.len() as f64;
        let mean = |f: &dyn Fn(&RunFigures) -> f64| g.iter().map(|r| f(r)).sum::<f64>() / n;
        let decisions: u64 = g.iter().map(|r| r.decisions).sum();
        let regret: f64 = g.iter().map(|r| r.regret_usd).sum();
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.4} |\n",
            sc,
            p,
            g.len(),
            mean(&|r| r.total_cost_usd),
            100.0 * mean(&|r| r.availability),
            mean(&|r| r.rejected as f64),
            mean(&|r| r.sla_violations as f64),
            mean(&|r| r.interruptions as f64),
            mean(&|r| r.failovers as f64),
            regret / decisions.max(1) as f64,
        ));
    }
    s
}
