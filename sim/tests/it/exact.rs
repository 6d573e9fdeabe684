//! Small scenarios whose outcome can be worked out by hand; the arithmetic is in the comments.

use std::io::Write;

use sim::run::RunOptions;

fn scenario(trace: &str, extra: &str) -> (tempfile::TempDir, sim::Scenario) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = std::fs::File::create(dir.path().join("t.csv")).expect("trace");
    t.write_all(trace.as_bytes()).expect("write trace");
    let text = format!(
        r#"
name = "exact"
seed = 1
duration = "2h"
[policy]
kind = "cost-optimized"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "aws"
location = [0.0, 0.0]
provision_delay = {{ dist = "fixed", value = "60s" }}
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.10
capacity = 2
[workload]
arrival = {{ process = "trace", path = "t.csv", format = "simple" }}
{extra}
"#
    );
    let path = dir.path().join("exact.toml");
    let s = sim::scenario::parse(&text, &path).expect("valid scenario");
    (dir, s)
}

#[test]
fn three_vms_one_hour_each() {
    // Three 1 h VMs arriving at 0, 100 and 200 s; capacity 2, so the third waits? No: the first
    // two are placed, the third finds the offer full and is rejected (queue_timeout defaults to 0).
    let (_d, s) =
        scenario("arrival_s,lifetime_s,vcpu,memory_mib\n0,3600,2,4096\n100,3600,2,4096\n200,3600,2,4096\n", "");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let m = &r.summary;
    assert_eq!((m.requests_total, m.requests_served, m.requests_rejected), (3, 2, 1));
    assert_eq!(m.rejected_by_reason.get("no-capacity"), Some(&1));
    // Billing runs from the create call to the release: exactly 1 h each at $0.10/h = $0.20.
    assert!((m.total_cost_usd - 0.20).abs() < 1e-9, "{}", m.total_cost_usd);
    // Served: 3600 − 60 s boot for each of the two; requested: 3 × 3600 s.
    let expected = 2.0 * 3540.0 / (3.0 * 3600.0);
    assert!((m.availability - expected).abs() < 1e-12, "{} vs {expected}", m.availability);
    assert_eq!(m.mean_time_to_first_run_s, Some(60.0));
}

#[test]
fn queued_request_waits_for_capacity() {
    // Same, but requests may wait 2 h: the third is retried every 10 s (retry_backoff) from 200 s;
    // the retry at 200 + 10 × 340 = 3600 s comes after the first VM's release at 3600 s (scheduled
    // earlier, so it goes first in the tie), finds room, and places it.
    let (_d, s) = scenario(
        "arrival_s,lifetime_s,vcpu,memory_mib\n0,3600,2,4096\n100,3600,2,4096\n200,3600,2,4096\n",
        "[engine]\nqueue_timeout = \"2h\"\n",
    );
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let m = &r.summary;
    assert_eq!((m.requests_served, m.requests_rejected), (3, 0));
    let third = &r.vms[2];
    // Running 60 s after placement at 3600 s.
    assert_eq!(third.first_running_s, Some(3660.0));
    // Its owner wanted it from 200 s for 3600 s, so it is released at 3800 s: billed 3600 → 3800 s
    // = 200/3600 × $0.10, plus $0.20 for the other two.
    let expected = 0.20 + 200.0 / 3600.0 * 0.10;
    assert!((m.total_cost_usd - expected).abs() < 1e-9, "{} vs {expected}", m.total_cost_usd);
    // Served: the third 3660 → 3800 s = 140 s; the first two 3540 s each; each wanted 3600 s.
    let availability = (3540.0 * 2.0 + 140.0) / (3.0 * 3600.0);
    assert!((m.availability - availability).abs() < 1e-12, "{} vs {availability}", m.availability);
}

#[test]
fn minimum_charge_applies_to_short_vms() {
    // A 10 s VM is billed the 60 s minimum: 60/3600 × $0.10.
    let (_d, s) = scenario("arrival_s,lifetime_s,vcpu,memory_mib\n0,10,2,4096\n", "");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    assert!((r.summary.total_cost_usd - 0.1 / 60.0).abs() < 1e-12, "{}", r.summary.total_cost_usd);
    // It never ran: released before its 60 s boot finished.
    assert_eq!(r.summary.requests_served, 0);
}

#[test]
fn recorded_spot_series_drives_prices_and_billing() {
    // One spot-allowed VM for the whole 2 h run on a spot market replaying a recorded series:
    // $0.03/h from 0 s, $0.05/h from 1800 s, $0.02/h from 3600 s, never interrupted.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("series.csv"),
        "time_s,price_per_h,interruption_rate_per_h\n0,0.03,0\n1800,0.05,0\n3600,0.02,0\n",
    )
    .expect("series");
    std::fs::write(dir.path().join("t.csv"), "arrival_s,lifetime_s,vcpu,memory_mib\n0,7200,2,4096\n").expect("trace");
    let text = r#"
name = "series"
seed = 1
duration = "2h"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "gcp"
location = [0.0, 0.0]
provision_delay = { dist = "fixed", value = "60s" }
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.10
capacity = 2
spot = { series = "series.csv" }
[workload]
arrival = { process = "trace", path = "t.csv", format = "simple" }
[[workload.shapes]]
vcpu = 2
memory_gib = 4
spot_allowed = true
"#;
    let s = sim::scenario::parse(text, &dir.path().join("s.toml")).expect("valid");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    // Cost-optimized takes spot: 0.03 + 0.02 prior interruptions/h × $0.5 = 0.04 < 0.10 on demand.
    assert_eq!(r.vms[0].first_market, Some(engine::Market::Spot));
    // The engine is told of each recorded change, at its time.
    let changes: Vec<(f64, f64)> = r.prices.iter().map(|p| (p.time_s, p.price_per_h)).collect();
    assert_eq!(changes, [(1800.0, 0.05), (3600.0, 0.02)]);
    // Billed exactly over the series: 0.5 h × 0.03 + 0.5 h × 0.05 + 1 h × 0.02 = $0.06.
    assert!((r.summary.total_cost_usd - 0.06).abs() < 1e-12, "{}", r.summary.total_cost_usd);
    assert_eq!(r.summary.spot_interruptions, 0);
}

#[test]
fn egress_to_users_is_priced_into_placement_and_billed() {
    // Two regions of different clouds at the same list price; users near r2. Each VM sends
    // 10 GiB/h to its users: from r2 that is inter-zone traffic at $0.01/GiB = $0.10/h, from r1
    // (another cloud) internet egress at $0.09/GiB = $0.90/h. So placement picks r2 although r1 is
    // listed first, and one hour costs $0.10 (instance) + $0.10 (egress) = $0.20.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("t.csv"), "arrival_s,lifetime_s,vcpu,memory_mib\n0,3600,2,4096\n").expect("trace");
    let text = r#"
name = "egress"
seed = 1
duration = "2h"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "aws"
location = [0.0, 0.0]
[[regions]]
name = "r2"
provider = "gcp"
location = [10.0, 10.0]
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.10
capacity = 2
[[offers]]
region = "r2"
instance_type = "small"
on_demand = 0.10
capacity = 2
[workload]
arrival = { process = "trace", path = "t.csv", format = "simple" }
[[workload.shapes]]
vcpu = 2
memory_gib = 4
users_near = "r2"
egress_gib_per_h = 10
"#;
    let s = sim::scenario::parse(text, &dir.path().join("s.toml")).expect("valid");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let region = r.vms[0].first_offer.map(|o| s.catalog.offers[o.idx()].region);
    assert_eq!(region, s.catalog.region_by_name("r2"));
    assert!((r.summary.total_cost_usd - 0.20).abs() < 1e-9, "{}", r.summary.total_cost_usd);
}
