//! Deployment strategies in whole simulated scenarios: each strategy scenario shipped in
//! `scenarios/` shows what its header promises. The figures are worked out by hand in the comments.
//!
//! Common ground: the scenarios fix every provisioning delay, evaluate their deployments every 30 s
//! from time 0 (so evaluations fall on whole half-minutes) and run their background VMs in an
//! on-prem pool, so that `instances` of AWS, Azure and GCP in the time series are the deployments'
//! own (booting or running). Events at the same instant are handled in the order they were
//! scheduled: a fault starts before the evaluation at the same time, and a time-series sample at
//! a whole minute is taken before the evaluation at that instant.

use sim::results::{DeploymentSample, FailoverRecord, RunResults};
use sim::run::RunOptions;

fn run(name: &str) -> RunResults {
    let s = sim::scenario::load(&crate::scenario_path(name)).expect("valid");
    sim::run(&s, &RunOptions::default(), &mut ()).expect("runs")
}

/// `(time, deployment, from, to, reason)` of every recorded move.
fn moves(r: &RunResults) -> Vec<(f64, &str, &str, &str, &str)> {
    r.failovers
        .iter()
        .map(|f| (f.time_s, f.deployment.as_str(), f.from.as_str(), f.to.as_str(), f.reason.as_str()))
        .collect()
}

/// Instances `(aws, azure, gcp)` in the time-series sample taken at `t`.
fn instances(r: &RunResults, t: f64) -> (u64, u64, u64) {
    let s = r.samples.iter().find(|s| s.time_s == t).unwrap_or_else(|| panic!("no sample at {t} s"));
    (s.instances[0], s.instances[1], s.instances[2])
}

/// The deployment's sample taken at `t`.
fn dep<'a>(r: &'a RunResults, name: &str, t: f64) -> &'a DeploymentSample {
    r.deployment_samples
        .iter()
        .find(|s| s.deployment == name && s.time_s == t)
        .unwrap_or_else(|| panic!("no sample of {name} at {t} s"))
}

/// The deployment's samples in `[from, to]`.
fn dep_between<'a>(r: &'a RunResults, name: &'a str, from: f64, to: f64) -> impl Iterator<Item = &'a DeploymentSample> {
    r.deployment_samples.iter().filter(move |s| s.deployment == name && s.time_s >= from && s.time_s <= to)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn detect_recover(f: &FailoverRecord) -> (Option<f64>, Option<f64>) {
    (f.time_to_detect_s, f.time_to_recover_s)
}

#[test]
fn active_active_replaces_a_lost_regions_share_and_restores_it() {
    let r = run("active-active.toml");
    // 8 replicas weighted 2:1:1 over AWS, Azure, GCP: 8 × 2/4, 8 × 1/4, 8 × 1/4 = 4/2/2.
    assert_eq!(instances(&r, 3540.0), (4, 2, 2));
    let m = moves(&r);
    assert_eq!(m.len(), 2, "{m:?}");
    // AWS dies at 3,600 s; the engine is told at 3,660 s (detect_after 1m), an evaluation instant.
    // Without AWS the weights are 0:1:1, so its 4 replicas go 2 to Azure and 2 to GCP. The move is
    // recorded against the first live location.
    assert_eq!(m[0], (3660.0, "web", "aws-us-east-1", "azure-eastus", "unhealthy"));
    // Detected 60 s after the outage began; the new replicas boot in 40 s, so every replica serves
    // again at 3,700 s: 100 s after the outage began.
    assert_eq!(detect_recover(&r.failovers[0]), (Some(60.0), Some(100.0)));
    assert_eq!(dep(&r, "web", 3660.0).replicas_running, 4);
    assert_eq!(dep(&r, "web", 3720.0).replicas_running, 8);
    for s in r.samples.iter().filter(|s| (3720.0..=6060.0).contains(&s.time_s)) {
        assert_eq!(instances(&r, s.time_s), (0, 4, 4), "at {} s", s.time_s);
    }
    // AWS is back at 5,400 s, known at 5,460 s; it has been healthy for restoreAfter (10 min) at
    // 6,060 s, long after the cooldown (3,660 + 600 s): it gets its 4 replicas back then, moved
    // make-before-break from Azure and GCP (nothing stops serving, so recovery takes 0 s).
    assert_eq!(m[1], (6060.0, "web", "azure-eastus", "aws-us-east-1", "rebalance"));
    assert_eq!(detect_recover(&r.failovers[1]), (None, Some(0.0)));
    // The new AWS replicas run at 6,100 s and the ones they replace go: 4/2/2 to the end.
    for s in r.samples.iter().filter(|s| s.time_s >= 6120.0) {
        assert_eq!(instances(&r, s.time_s), (4, 2, 2), "at {} s", s.time_s);
    }
    assert!(r.deployment_samples.iter().all(|s| s.replicas_wanted == 8));
    let d = &r.summary.deployments[0];
    assert_eq!((d.name.as_str(), d.strategy.as_str(), d.failovers), ("web", "active-active", 2));
    // Nothing served only while the first replicas booted (40 s); fewer than 8 also while AWS's
    // share was re-placed (3,600 to 3,700 s): 140 s.
    assert_eq!((d.downtime_s, d.degraded_s), (40.0, 140.0));
    // Replica-time lost: 8 × 40 + 4 × 100 = 720 s of 8 × 10,800 wanted.
    assert!(close(d.availability, 1.0 - 720.0 / 86_400.0), "{}", d.availability);
}

#[test]
fn burst_overflows_to_targets_in_order_and_scales_in_after_the_hold() {
    let r = run("burst-strategy.toml");
    // Baseline 4, all in the primary.
    assert_eq!(dep(&r, "api", 3540.0).replicas_wanted, 4);
    assert_eq!(instances(&r, 3540.0), (4, 0, 0));
    // Demand 20 at 1 h: the primary has room for 10 (its capacity), Azure (first target) for 6,
    // GCP takes the remaining 4. All run by 3,660 s (boots of 40, 60 and 30 s).
    assert_eq!(dep(&r, "api", 3660.0).replicas_wanted, 20);
    assert_eq!(instances(&r, 3720.0), (10, 6, 4));
    assert_eq!(dep(&r, "api", 3720.0).replicas_running, 20);
    // 10 × 0.10 + 6 × 0.12 + 4 × 0.11 = $2.16/h.
    assert!(close(dep(&r, "api", 3720.0).cost_rate_usd_per_h, 2.16));
    // Demand 6 at 2 h, but scale-in waits until demand has been low for 15 min: still 20 at
    // 8,040 s, 6 (all in the primary, the newest replicas going first) after the evaluation at
    // 8,100 s.
    assert_eq!(dep(&r, "api", 8040.0).replicas_wanted, 20);
    assert_eq!(instances(&r, 8040.0), (10, 6, 4));
    let first_six = r.deployment_samples.iter().find(|s| s.replicas_wanted == 6).map(|s| s.time_s);
    assert_eq!(first_six, Some(8160.0));
    for s in r.samples.iter().filter(|s| s.time_s >= 8160.0) {
        assert_eq!(instances(&r, s.time_s), (6, 0, 0), "at {} s", s.time_s);
    }
    assert!(dep_between(&r, "api", 8160.0, 10_800.0).all(|s| s.replicas_wanted == 6 && s.replicas_running == 6));
    let d = &r.summary.deployments[0];
    assert_eq!(d.strategy, "burst");
    // Degraded while booting: 40 s at the start, then 3,600 to 3,660 s (Azure's 60 s boot).
    assert_eq!((d.downtime_s, d.degraded_s), (40.0, 100.0));
    // Wanted replica-time: 4 × 3,600 + 20 × 4,500 + 6 × 2,700 = 120,600 s; lost: 4 × 40 at the
    // start, then 6 × 40 (AWS) + 6 × 60 (Azure) + 4 × 30 (GCP) = 880 s.
    assert!(close(d.availability, 1.0 - 880.0 / 120_600.0), "{}", d.availability);
    // Billed: AWS 4 × 3 h + 2 × 2 h (the two that stay) + 4 × 1.25 h = 21 h at $0.10, Azure 6 ×
    // 1.25 h at $0.12, GCP 4 × 1.25 h at $0.11: 2.10 + 0.90 + 0.55.
    assert!(close(d.cost_usd, 3.55), "{}", d.cost_usd);
}

#[test]
fn cost_optimized_moves_only_when_it_pays_within_the_disruption_budget() {
    let r = run("cost-optimized-strategy.toml");
    let rate = |name: &str, t: f64| dep(&r, name, t).cost_rate_usd_per_h;
    // Before the spikes: batch in AWS ($0.10 < Azure's $0.11), steady in GCP us-central1
    // ($0.100 < us-east4's $0.102).
    assert_eq!(instances(&r, 3540.0), (10, 0, 10));
    assert!(close(rate("batch", 3540.0), 1.0) && close(rate("steady", 3540.0), 1.0));
    // AWS triples to $0.30 at 1 h. A move to Azure saves (0.30 − 0.11) × 24 h = $4.56 and costs
    // 10 GiB × $0.09 + 2 min × $10/h + 10 min × $0.11/h = $1.25: 4.56 ≥ 2 × 1.25, it pays. The
    // budget, ⌊20 % × 10⌋ = 2 per 1 h window, lets 2 move at 1 h, 2 at 2 h, 2 at 3 h (each window
    // starts at the first evaluation an hour after the last one began).
    let steps = [
        (3720.0, (8, 2)),
        (7140.0, (8, 2)),
        (7320.0, (6, 4)),
        (10_740.0, (6, 4)),
        (10_920.0, (4, 6)),
        (14_340.0, (4, 6)),
        // The spike ends at 4 h: AWS is only $0.01/h cheaper, $0.24 over the horizon, far less
        // than twice the cost of a move: the 6 stay in Azure.
        (14_460.0, (4, 6)),
        (18_000.0, (4, 6)),
    ];
    for (t, (aws, azure)) in steps {
        assert_eq!(instances(&r, t), (aws, azure, 10), "at {t} s");
    }
    // batch's spend rate: 10 × 0.30; 8 × 0.30 + 2 × 0.11; 6 × 0.30 + 4 × 0.11; 4 × 0.30 + 6 × 0.11;
    // after the spike 4 × 0.10 + 6 × 0.11.
    for (t, want) in [(3600.0, 3.0), (3720.0, 2.62), (7320.0, 2.24), (10_920.0, 1.86), (14_460.0, 1.06)] {
        assert!(close(rate("batch", t), want), "batch at {t} s: {} vs {want}", rate("batch", t));
    }
    // steady: us-central1 × 1.05 = $0.105/h against $0.102/h saves $0.003/h × 24 h = $0.072,
    // while a move costs at least 50 GiB × $0.02 = $1 of egress: it never moves, so its spend
    // rate is 10 × 0.105 for the whole spike, and no GCP replica is ever added.
    for s in dep_between(&r, "steady", 3600.0, 14_340.0) {
        assert!(close(s.cost_rate_usd_per_h, 1.05), "steady at {} s: {}", s.time_s, s.cost_rate_usd_per_h);
    }
    assert!(close(rate("steady", 14_460.0), 1.0));
    assert!(r.samples.iter().filter(|s| s.time_s >= 60.0).all(|s| s.instances[2] == 10));
    let [batch, steady] = &r.summary.deployments[..] else { panic!("two deployments") };
    assert_eq!((batch.strategy.as_str(), steady.strategy.as_str()), ("cost-optimized", "cost-optimized"));
    // No move stopped service: down only during the first boot (AWS 40 s, GCP 30 s).
    assert_eq!((batch.downtime_s, batch.degraded_s), (40.0, 40.0));
    assert_eq!((steady.downtime_s, steady.degraded_s), (30.0, 30.0));
    // batch, per replica in AWS: 1 h at $0.10, then $0.30 until its Azure copy runs (60 s after
    // the move): pairs leave at 3,660, 7,260 and 10,860 s, 4 stay (3 h at $0.30, 1 h at $0.10):
    // 2 × (0.1 + 0.005) + 2 × (0.1 + 0.305) + 2 × (0.1 + 0.605) + 4 × 1.1 = 6.83; Azure from the
    // moves to the end at $0.11: 2 × 0.44 + 2 × 0.33 + 2 × 0.22 = 1.98.
    assert!(close(batch.cost_usd, 8.81), "{}", batch.cost_usd);
    // steady: 10 × (2 h × 0.100 + 3 h × 0.105).
    assert!(close(steady.cost_usd, 5.15), "{}", steady.cost_usd);
}

#[test]
fn flapping_primary_fails_over_once_and_back_after_a_stable_hold_down() {
    let r = run("flapping-region.toml");
    assert_eq!(r.summary.faults.len(), 5, "five outages");
    let m = moves(&r);
    // The first outage kills the replicas at 3,600 s; the evaluation at 3,600 s sees availability
    // 0 in a 5-minute window of 30 s samples: 10/11 < 95 %, the trigger fires before the outage is
    // even known (30 s later). Azure boots in 60 s.
    // The next outages never reach the service in Azure. us-east-1 is up 12 minutes at most
    // between them (3:30 to 15:00 past each quarter hour, as known to the engine), less than the
    // 15-minute hold-down: no failback, no flapping. The last outage ends at 7,380 s, known at
    // 7,410 s; 15 minutes later, at 8,310 s, the deployment fails back (make-before-break).
    assert_eq!(
        m,
        [
            (3600.0, "web", "aws-us-east-1", "azure-eastus", "availability"),
            (8310.0, "web", "azure-eastus", "aws-us-east-1", "failback"),
        ]
    );
    assert_eq!(detect_recover(&r.failovers[0]), (Some(0.0), Some(60.0)));
    assert_eq!(detect_recover(&r.failovers[1]), (None, Some(0.0)));
    // At most one failover per cooldown (10 min).
    assert!(r.failovers.windows(2).all(|w| w[1].time_s - w[0].time_s >= 600.0));
    // Every replica serves from the recovery to the end, through four more outages of the primary.
    assert!(dep_between(&r, "web", 3660.0, 10_800.0).all(|s| s.replicas_running == 4));
    let d = &r.summary.deployments[0];
    assert_eq!(d.failovers, 2);
    // Down during the first boot (40 s) and the move to Azure (60 s).
    assert_eq!((d.downtime_s, d.degraded_s), (100.0, 100.0));
    assert!(close(d.availability, 1.0 - 4.0 * 100.0 / (4.0 * 10_800.0)), "{}", d.availability);
}

#[test]
fn spot_deployments_recover_on_demand_and_fail_over_on_interruptions() {
    let r = run("spot-deployment.toml");
    let rate = |name: &str, t: f64| dep(&r, name, t).cost_rate_usd_per_h;
    // Before the storm both run 4 replicas on spot at $0.03/h.
    assert!(close(rate("workers", 3540.0), 0.12) && close(rate("web", 3540.0), 0.12));
    // The storm (interruptions × 10,000 from 1 h) gives each of the 8 spot instances a notice at
    // the spot step at 3,600 s. web's trigger (2 notices within 10 min) sees them at the next
    // evaluation, 3,630 s (the notices arrive just after the evaluation at 3,600 s), and moves
    // it to Azure (spot $0.04/h), make-before-break.
    assert_eq!(moves(&r), [(3630.0, "web", "aws-us-east-1", "azure-eastus", "spot-interruption")]);
    assert_eq!(detect_recover(&r.failovers[0]), (None, Some(0.0)));
    assert!(dep_between(&r, "web", 3720.0, 14_400.0).all(|s| close(s.cost_rate_usd_per_h, 0.16)));
    // workers: the first notice moves each replica to spot in us-east-1b (us-east-1a's spot market
    // is blocked after its notices): still 4 × $0.03. The second, at the step at 3,900 s, is the
    // `onDemandAfter = 2`nd: the replacements go on demand, 4 × $0.10, running at 3,940 s.
    assert!(close(rate("workers", 3720.0), 0.12));
    // On demand for backToSpotAfter (1 h), until 7,500 s.
    assert!(dep_between(&r, "workers", 3960.0, 7440.0).all(|s| close(s.cost_rate_usd_per_h, 0.40)));
    // Back to spot at the evaluation at 7,500 s, make-before-break: 4 × $0.03 once the spot
    // replacements run (from the 7,560 s sample), to the end.
    assert!(dep_between(&r, "workers", 7560.0, 14_400.0).all(|s| close(s.cost_rate_usd_per_h, 0.12)));
    // 8 notices at 1 h, 4 more at 1 h 5 m (web was in Azure by then, never interrupted).
    assert_eq!(r.summary.spot_interruptions, 12);
    // Replacements were up before every reclaim: down only during the first boot.
    for d in &r.summary.deployments {
        assert_eq!((d.downtime_s, d.degraded_s), (40.0, 40.0), "{}", d.name);
    }
    assert_eq!(r.summary.deployments.iter().map(|d| d.failovers).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn cpu_trigger_fails_over_once_and_an_operator_moves_it_back() {
    let r = run("metric-trigger.toml");
    // CPU 95 % from 3,600 s: the trigger's clock starts at the evaluation at 3,600 s, the
    // condition holds 5 minutes at 3,900 s → failover to the first secondary, reason `cpu`. It is
    // not an outage: no time to detect, and the move is make-before-break. The figure disappears at
    // 4,200 s, before the restarted trigger could fire again (4,230 s at the earliest).
    // The manual failover at 7,200 s (no `to`) picks the first location in order other than the
    // current one that can take every replica: the primary.
    assert_eq!(
        moves(&r),
        [
            (3900.0, "api", "aws-us-east-1", "azure-eastus", "cpu"),
            (7200.0, "api", "azure-eastus", "aws-us-east-1", "manual"),
        ]
    );
    for f in &r.failovers {
        assert_eq!(detect_recover(f), (None, Some(0.0)));
    }
    // Azure boots in 60 s: both copies exist from 3,900 to 3,960 s; AWS in 40 s: from 7,200 to
    // 7,240 s.
    assert_eq!(instances(&r, 3870.0), (4, 0, 0));
    assert_eq!(instances(&r, 3930.0), (4, 4, 0));
    assert_eq!(instances(&r, 3990.0), (0, 4, 0));
    assert_eq!(instances(&r, 7230.0), (4, 4, 0));
    assert_eq!(instances(&r, 7260.0), (4, 0, 0));
    assert!(dep_between(&r, "api", 60.0, 10_800.0).all(|s| s.replicas_running == 4));
    let d = &r.summary.deployments[0];
    assert_eq!(d.failovers, 2);
    assert_eq!((d.downtime_s, d.degraded_s), (40.0, 40.0));
    // 4 replicas × 3 h × $0.096, plus the overlaps: 4 × (60 + 40) s × $0.096/h.
    assert!(close(d.cost_usd, 4.0 * 3.0 * 0.096 + 4.0 * 100.0 / 3600.0 * 0.096), "{}", d.cost_usd);
}
