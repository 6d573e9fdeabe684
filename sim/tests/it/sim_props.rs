//! The deployment invariants on whole simulated scenarios: a small three-cloud world with one
//! active-passive deployment (drawn: migration kind, disaster recovery, spot) runs under an
//! arbitrary list of faults (region and zone outages with a detection delay, spot storms, price
//! spikes, capacity crunches, hot CPU, manual failovers), which all end by 4 h; the run goes on
//! to 6 h. On what the simulator reports:
//! * (2) the clouds never saw a delete for an instance deleted before, and at the end nothing
//!   runs that the engine does not track (no leak);
//! * (3) no failover or migration goes to a region the engine knew was down (from the outage's
//!   detection to its end);
//! * (4) the deployment's spend rate never exceeds its cap (make-before-break and migration
//!   overlap are inside the cap: the engine places a new copy only within the budget);
//! * (5) moves by trigger, failback or rebalance come at least a cooldown after the previous move;
//! * (6) after the faults stop, every replica serves again: the last hour has full samples;
//! * (7) the same scenario and seed give the same summary, byte for byte.
//!
//! (1) and the finer properties are checked event by event on the engine in
//! `engine/tests/it/deploy_props.rs`.

use proptest::prelude::*;
use sim::run::RunOptions;

const REGIONS: [&str; 3] = ["aws-us-east-1", "azure-eastus", "gcp-us-central1"];
const CAP: f64 = 2.0;
const COOLDOWN_S: f64 = 600.0;

#[derive(Clone, Debug)]
enum Fault {
    Region(usize, u32, u32, u32),
    Zone(usize, u32, u32),
    Storm(usize, u32, u32),
    Spike(usize, u32, u32, f64),
    Crunch(usize, u32, u32, f64),
    Cpu(u32, u32),
    Manual(u32, Option<usize>),
}

/// Start and length in minutes; everything ends by 240 min.
fn window() -> impl Strategy<Value = (u32, u32)> {
    (0u32..200).prop_flat_map(|at| (Just(at), 1u32..=(240 - at).min(60)))
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => (0usize..3, window(), 0u32..4).prop_map(|(r, (a, d), det)| Fault::Region(r, a, d, det)),
        2 => (0usize..3, window()).prop_map(|(r, (a, d))| Fault::Zone(r, a, d)),
        1 => (0usize..3, window()).prop_map(|(r, (a, d))| Fault::Storm(r, a, d)),
        1 => (0usize..3, window(), 1.5f64..4.0).prop_map(|(r, (a, d), m)| Fault::Spike(r, a, d, m)),
        1 => (0usize..3, window(), 0.0f64..0.5).prop_map(|(r, (a, d), f)| Fault::Crunch(r, a, d, f)),
        1 => window().prop_map(|(a, d)| Fault::Cpu(a, d)),
        1 => (0u32..240, prop::option::of(0usize..3)).prop_map(|(a, to)| Fault::Manual(a, to)),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    migration: Option<&'static str>,
    dr: bool,
    spot: bool,
    replicas: u32,
    faults: Vec<Fault>,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::option::of(prop::sample::select(vec!["live", "warm", "cold"])),
        any::<bool>(),
        any::<bool>(),
        1u32..5,
        prop::collection::vec(fault(), 0..8),
        0u64..1000,
    )
        .prop_map(|(migration, dr, spot, replicas, faults, seed)| Case {
            migration,
            dr,
            spot,
            replicas,
            faults,
            seed,
        })
}

fn scenario(c: &Case) -> String {
    let mut t = format!("name = \"props\"\nseed = {}\nduration = \"6h\"\nsample_interval = \"1m\"\n\n", c.seed);
    t += "[[instance_types]]\nname = \"std-2\"\nvcpu = 2\nmemory_gib = 8\n\n";
    for (i, r) in REGIONS.iter().enumerate() {
        let provider = ["aws", "azure", "gcp"][i];
        t += &format!(
            "[[regions]]\nname = \"{r}\"\nprovider = \"{provider}\"\nzones = [\"{r}-a\", \"{r}-b\"]\nlocation = [40.0, {}.0]\nprovision_delay = {{ dist = \"lognormal\", median = \"40s\", sigma = 0.3 }}\napi_error_rate = 0.01\n\n",
            -80 + 5 * i as i32
        );
        t += &format!(
            "[[offers]]\nregion = \"{r}\"\ninstance_type = \"std-2\"\non_demand = {}\ncapacity = 12\nspot = {{ price = 0.04, volatility = 0.05, interruption_rate_per_h = 0.01 }}\n\n",
            0.10 + 0.005 * i as f64
        );
    }
    t += "[workload]\narrival = { process = \"poisson\", rate_per_s = 0.003 }\nlifetime = { dist = \"exponential\", mean = \"30m\" }\n\n[[workload.shapes]]\nvcpu = 2\nmemory_gib = 4\n\n";
    t += &format!(
        "[[deployments]]\nname = \"web\"\nreplicas = {}\nvcpu = 2\nmemoryGib = 4\ncooldown = \"10m\"\nevaluateEvery = \"30s\"\n\n",
        c.replicas
    );
    t += "[deployments.deploymentStrategy]\ntype = \"active-passive\"\nprimary = \"aws-us-east-1\"\nsecondary = [\"azure-eastus\", \"gcp-us-central1\"]\nfailback = true\nholdDown = \"10m\"\n\n";
    t += "[[deployments.deploymentStrategy.failoverTriggers]]\ntype = \"availability\"\nthreshold = \"95%\"\nduration = \"5m\"\n\n";
    t += &format!("[deployments.costOptimization]\nuseSpotInstances = {}\nmaxCostPerHour = \"{CAP:.2}\"\n\n", c.spot);
    if let Some(kind) = c.migration {
        t += &format!(
            "[deployments.migrationPolicy]\ntype = \"{kind}\"\ndiskGib = 5\ndirtyRateGibPerS = 0.01\n\n[[deployments.migrationPolicy.triggers]]\ntype = \"performance\"\nthreshold = \"cpu:90%\"\nduration = \"5m\"\n\n"
        );
    }
    if c.dr {
        t += "[deployments.disasterRecovery]\nrpo = \"15m\"\nrto = \"30m\"\n\n[deployments.disasterRecovery.backupStrategy]\nschedule = \"*/15 * * * *\"\ntarget = \"gcp-us-central1\"\ndataGib = 2\nbandwidthGibPerS = 0.1\n\n";
    }
    for f in &c.faults {
        t += "[[faults]]\n";
        t += &match f {
            Fault::Region(r, a, d, det) => format!(
                "kind = \"region-outage\"\nregion = \"{}\"\nat = \"{a}m\"\nduration = \"{d}m\"\ndetect_after = \"{det}m\"\n",
                REGIONS[*r]
            ),
            Fault::Zone(r, a, d) => format!(
                "kind = \"zone-outage\"\nregion = \"{0}\"\nzone = \"{0}-a\"\nat = \"{a}m\"\nduration = \"{d}m\"\n",
                REGIONS[*r]
            ),
            Fault::Storm(r, a, d) => format!(
                "kind = \"spot-storm\"\nregion = \"{}\"\nat = \"{a}m\"\nduration = \"{d}m\"\ninterruption_multiplier = 50.0\n",
                REGIONS[*r]
            ),
            Fault::Spike(r, a, d, m) => format!(
                "kind = \"price-spike\"\nregion = \"{}\"\nat = \"{a}m\"\nduration = \"{d}m\"\nmultiplier = {m}\n",
                REGIONS[*r]
            ),
            Fault::Crunch(r, a, d, f) => format!(
                "kind = \"capacity-crunch\"\nregion = \"{}\"\nat = \"{a}m\"\nduration = \"{d}m\"\nfraction = {f}\n",
                REGIONS[*r]
            ),
            Fault::Cpu(a, d) => {
                format!("kind = \"metrics\"\ndeployment = \"web\"\nat = \"{a}m\"\nduration = \"{d}m\"\ncpu = \"95%\"\n")
            }
            Fault::Manual(a, to) => match to {
                Some(r) => format!(
                    "kind = \"manual-failover\"\ndeployment = \"web\"\nat = \"{a}m\"\nto = \"{}\"\n",
                    REGIONS[*r]
                ),
                None => format!("kind = \"manual-failover\"\ndeployment = \"web\"\nat = \"{a}m\"\n"),
            },
        };
        t += "\n";
    }
    t
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("props.toml");
    std::fs::write(&path, scenario(c)).expect("write");
    let s = sim::scenario::load(&path).map_err(|e| TestCaseError::fail(format!("scenario invalid: {e}")))?;
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let m = &r.summary;
    // (2)
    prop_assert_eq!(m.cloud.double_deletes, 0, "(2) double delete");
    prop_assert_eq!(m.cloud.leaked_at_end, 0, "(2) leaked instances");
    // (3) the engine knows a region is down after its detection and until the end of the
    // outage. At the detection instant itself another event (a manual failover scheduled for that
    // minute) may be handled before the detection is, so the window opens just after it.
    let known_down = |region: &str, t: f64| {
        c.faults.iter().any(|f| match f {
            Fault::Region(r, a, d, det) => {
                REGIONS[*r] == region && t > ((a + det) * 60) as f64 && t < ((a + d) * 60) as f64
            }
            _ => false,
        })
    };
    for f in &r.failovers {
        prop_assert!(!known_down(&f.to, f.time_s), "(3) failover to {} while known down at {}", f.to, f.time_s);
    }
    for mg in &r.migrations {
        prop_assert!(!known_down(&mg.to, mg.time_s), "(3) migration to {} while known down at {}", mg.to, mg.time_s);
    }
    // (4)
    for x in &r.deployment_samples {
        prop_assert!(
            x.cost_rate_usd_per_h <= CAP + 1e-9,
            "(4) spend {} over the cap at {}",
            x.cost_rate_usd_per_h,
            x.time_s
        );
    }
    // (5)
    let mut last: Option<f64> = None;
    for f in &r.failovers {
        let exempt = matches!(f.reason.as_str(), "unhealthy" | "manual");
        if let (Some(prev), false) = (last, exempt) {
            prop_assert!(f.time_s - prev >= COOLDOWN_S, "(5) {} at {} after a move at {prev}", f.reason, f.time_s);
        }
        last = Some(f.time_s);
    }
    // (6) faults end by 4 h; by 5 h every replica serves (failback, restore, spot recovery done).
    for x in r.deployment_samples.iter().filter(|x| x.time_s >= 5.0 * 3600.0) {
        prop_assert_eq!(x.replicas_running, x.replicas_wanted, "(6) not converged at {}", x.time_s);
    }
    if std::env::var_os("NOVACRON_PROPS_DEBUG").is_some() {
        eprintln!(
            "faults {} failovers {} migrations {} restores {} leaked {} api errors {}",
            c.faults.len(),
            r.failovers.len(),
            r.migrations.len(),
            r.restores.len(),
            m.cloud.leaked_at_end,
            m.cloud.api_errors
        );
    }
    // (7)
    let again = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    prop_assert_eq!(
        serde_json::to_string(&again.summary).expect("json"),
        serde_json::to_string(m).expect("json"),
        "(7) same seed, different summary"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn deployment_invariants_hold_in_whole_simulations(c in case()) {
        check(&c)?;
    }
}

/// Shrunk by proptest: an outage of aws-us-east-1 from 24 to 82 min with a shorter one inside it
/// (65 to 70 min). The end of the inner one marked the region healthy while the outer one went
/// on, and the deployment failed back into a dead region. Overlapping faults now compose.
#[test]
fn regression_nested_outages_keep_the_region_down() {
    let c = Case {
        migration: None,
        dr: false,
        spot: false,
        replicas: 1,
        faults: vec![Fault::Region(0, 24, 58, 1), Fault::Region(0, 65, 5, 1)],
        seed: 91,
    };
    check(&c).unwrap_or_else(|e| panic!("{e}"));
}

/// Shrunk by proptest: gcp-us-central1 goes down at 135 min and is detected at 136 min, the very
/// minute a manual failover to it is scheduled. The failover was handled first (it was queued
/// earlier), before the engine could know; the oracle had counted the detection instant as known.
#[test]
fn regression_a_manual_failover_at_the_detection_instant() {
    let c = Case {
        migration: None,
        dr: false,
        spot: false,
        replicas: 1,
        faults: vec![Fault::Region(2, 135, 2, 1), Fault::Manual(136, Some(2))],
        seed: 778,
    };
    check(&c).unwrap_or_else(|e| panic!("{e}"));
}
