//! Every shipped scenario is valid; the small ones run, and show what their header promises.

use sim::run::RunOptions;

/// Scenarios too big to run in a debug-build test (measured in release, see the README).
const LARGE: [&str; 3] = ["scale-1m.toml", "onprem-binpack.toml", "onprem-binpack-10k.toml"];

fn shipped() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(crate::root().join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_is_valid() {
    let files = shipped();
    assert!(files.len() >= 7, "expected the shipped scenarios, found {files:?}");
    for p in files {
        if let Err(e) = sim::scenario::load(&p) {
            panic!("{}: {e}", p.display());
        }
    }
}

fn run(name: &str) -> (sim::Scenario, sim::results::RunResults) {
    let s = sim::scenario::load(&crate::scenario_path(name)).expect("valid");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    (s, r)
}

#[test]
fn small_scenarios_run_and_serve_most_requests() {
    for p in shipped() {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if LARGE.contains(&name.as_str()) {
            continue;
        }
        let (_, r) = run(&name);
        let m = &r.summary;
        assert!(m.requests_total > 0, "{name}: no requests");
        assert!(
            m.requests_served as f64 >= 0.5 * m.requests_total as f64,
            "{name}: served {} of {}",
            m.requests_served,
            m.requests_total
        );
        assert!(m.availability > 0.5 && m.availability <= 1.0, "{name}: availability {}", m.availability);
        assert!(m.total_cost_usd > 0.0, "{name}: free?");
    }
}

#[test]
fn regional_outage_fails_over_and_avoids_the_dead_region() {
    let (s, r) = run("regional-outage.toml");
    let m = &r.summary;
    assert!(m.cloud.outage_losses > 0, "the outage kills instances");
    // Every VM lost in the outage is recovered: the fleet's by failover, the checkout
    // deployment's three replicas by restore from backup.
    assert_eq!(m.failovers + m.restores, m.cloud.outage_losses, "every VM lost in the outage is recovered");
    assert!(m.mean_time_to_recover_s.is_some_and(|t| t > 0.0 && t < 600.0), "{:?}", m.mean_time_to_recover_s);
    // Once the outage is detected (2 h + 1 min) and until it ends (2 h 45 min), nothing new goes there.
    let dead = s.catalog.region_by_name("aws-us-east-1").expect("region");
    for v in r.vms.iter().filter(|v| v.arrival_s > 7260.0 && v.arrival_s < 9900.0) {
        if let Some(o) = v.first_offer {
            assert_ne!(s.catalog.offers[o.idx()].region, dead, "VM {} placed in the dead region", v.vm_id);
        }
    }
}

#[test]
fn spot_storm_interrupts_and_replaces() {
    let (_, r) = run("spot-storm.toml");
    let m = &r.summary;
    assert!(m.spot_interruptions > 100, "{}", m.spot_interruptions);
    // Most interrupted VMs get a replacement running before the two-minute notice runs out.
    assert!(
        m.replacements * 2 > m.spot_interruptions,
        "{} replacements for {} interruptions",
        m.replacements,
        m.spot_interruptions
    );
    // The storm (2 h to 3 h) shows in the time series: interruptions pile up faster during it.
    let at = |t: f64| r.samples.iter().rfind(|x| x.time_s <= t).map_or(0, |x| x.interruptions_total);
    assert!(at(10_800.0) - at(7_200.0) > 3 * (at(7_200.0) - at(3_600.0)), "storm not visible");
}

#[test]
fn cost_optimized_uses_commitments_on_prem_and_the_budget() {
    let (_, r) = run("cost-optimized.toml");
    let m = &r.summary;
    assert!(m.commitment_fees_usd > 0.0);
    assert!(m.cost_by_provider_usd["onprem"] > 0.0, "the on-prem pool is used");
    assert!(
        m.rejected_by_reason.get("over-budget").is_some_and(|n| *n > 0),
        "the budget binds: {:?}",
        m.rejected_by_reason
    );
}

#[test]
fn trace_replays_every_record() {
    // 300 VMs in the Azure sample, 328 task lives in the Google sample, 506 rows in ours.
    for (file, n) in [("trace-replay.toml", 300), ("trace-replay-google.toml", 328), ("trace-replay-simple.toml", 506)]
    {
        let (_, r) = run(file);
        assert_eq!(r.summary.requests_total, n, "{file}");
    }
}

#[test]
fn burst_spills_from_aws_into_the_other_clouds() {
    let (s, r) = run("burst.toml");
    let m = &r.summary;
    let provider = |v: &sim::results::VmRecord| v.first_offer.map(|o| s.catalog.provider_of(o));
    // Front-ends (shape 0, on demand) are placed on AWS before the burst (reserved m5.large there,
    // then the cheapest on-demand price, tied with Azure and first in catalog order)…
    let front =
        |lo: f64, hi: f64| r.vms.iter().filter(move |v| v.shape == Some(0) && v.arrival_s >= lo && v.arrival_s < hi);
    let before: Vec<_> = front(0.0, 7200.0).map(provider).collect();
    assert!(!before.is_empty() && before.iter().all(|p| *p == Some(engine::Provider::Aws)), "{before:?}");
    // …and spill into Azure and GCP during it, when AWS's capacity (halved by the crunch) runs out.
    let spilled = front(7200.0, 9900.0)
        .filter(|v| matches!(provider(v), Some(engine::Provider::Azure | engine::Provider::Gcp)))
        .count();
    assert!(spilled > 20, "only {spilled} front-ends spilled over");
    assert!(m.cloud.insufficient_capacity > 0, "the capacity crunch makes AWS create calls fail");
    assert!(m.availability > 0.95, "{}", m.availability);
}

#[test]
fn large_scenarios_run_when_capped() {
    // The full runs are measured in release mode (README); here the first 20,000 requests of each
    // show the scenario works end to end in a debug build.
    for name in LARGE {
        let mut s = sim::scenario::load(&crate::scenario_path(name)).expect("valid");
        s.workload.max_requests = Some(20_000);
        let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
        let m = &r.summary;
        assert_eq!(m.requests_total, 20_000, "{name}");
        assert!(m.availability > 0.95, "{name}: {}", m.availability);
        if name.starts_with("onprem") {
            // 20,000 VMs never fill 1,000 hosts of 144 vCPU: nothing is rejected, all on-prem.
            assert_eq!(m.requests_rejected, 0, "{name}");
            assert!(m.cost_by_provider_usd["onprem"] > 0.0 && m.cost_by_provider_usd["aws"] == 0.0, "{name}");
        }
    }
}

#[test]
fn provider_outage_fails_over_and_back() {
    let (_, r) = run("provider-outage.toml");
    // Exactly two moves: to Azure when AWS goes down at 2 h (the availability trigger sees the
    // replicas die at once: one zero sample in a 5-minute window of 30 s samples averages 10/11 <
    // 95 %), and back after AWS has been up for the 15-minute hold-down (3 h + 15 min = 11,700 s,
    // acted on at the next 30 s evaluation).
    let moves: Vec<(f64, &str, &str, &str)> =
        r.failovers.iter().map(|f| (f.time_s, f.from.as_str(), f.to.as_str(), f.reason.as_str())).collect();
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert_eq!(moves[0], (7200.0, "aws-us-east-1", "azure-eastus", "availability"));
    let (t, from, to, why) = moves[1];
    assert!(
        (11_700.0..=11_790.0).contains(&t) && (from, to, why) == ("azure-eastus", "aws-us-east-1", "failback"),
        "{moves:?}"
    );
    let d = &r.summary.deployments[0];
    assert_eq!(d.failovers, 2);
    // Down only while the Azure replicas boot (median 90 s): well under the 5-minute window.
    assert!(d.downtime_s > 0.0 && d.downtime_s < 300.0, "{}", d.downtime_s);
    // The failback is make-before-break: no downtime after 3 h.
    let after: Vec<_> = r.deployment_samples.iter().filter(|x| x.time_s > 11_000.0).collect();
    assert!(after.iter().all(|x| x.replicas_running == 4), "service dropped during the failback");
    assert!(d.availability > 0.98, "{}", d.availability);
}

#[test]
fn the_seed_manifest_applies_as_written() {
    let (_, r) = run("seed-manifest.toml");
    let moves: Vec<(f64, &str, &str)> =
        r.failovers.iter().map(|f| (f.time_s, f.from.as_str(), f.to.as_str())).collect();
    // The outage at 90 min kills the AWS replicas; the availability trigger fires at once (one zero
    // sample in the 5-minute window) and the first secondary, "azure-eastus", takes over.
    assert_eq!(moves, [(5400.0, "aws-us-east-1", "azure-eastus")]);
    // maxCostPerHour "1.00" holds: 6 replicas on spot at ~$0.04–0.05/h each.
    assert!(r.deployment_samples.iter().all(|x| x.cost_rate_usd_per_h <= 1.0));
}
