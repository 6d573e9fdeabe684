//! The modeled cache: `[cache]` parsing and errors, determinism, a zero TTL that is transparent,
//! and the trade-off of `scenarios/cache.toml` between API calls and stale decisions.

use std::path::Path;

use sim::cache::CacheSummary;
use sim::run::RunOptions;

fn cache_scenario(ttl: &str) -> sim::Scenario {
    let text = std::fs::read_to_string(crate::scenario_path("cache.toml")).expect("cache.toml");
    let text = text.replace("defaultTtl = \"1m\"", &format!("defaultTtl = \"{ttl}\""));
    sim::scenario::parse(&text, Path::new("cache.toml")).expect("valid")
}

fn summary(s: &sim::Scenario) -> (sim::results::Summary, CacheSummary) {
    let r = sim::run(s, &RunOptions::default(), &mut ()).expect("runs");
    let c = r.summary.cache.clone().expect("a [cache] scenario reports its cache");
    (r.summary, c)
}

#[test]
fn counters_add_up_and_the_same_seed_gives_the_same_bytes() {
    let s = cache_scenario("1m");
    let a = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let b = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let ja = serde_json::to_string_pretty(&a.summary).expect("json");
    assert_eq!(ja, serde_json::to_string_pretty(&b.summary).expect("json"));
    let c = a.summary.cache.expect("cache");
    // Every read is a hit in one level or a miss; every call is a miss or an eager refresh.
    assert_eq!(c.reads, c.l1_hits + c.l2_hits + c.misses);
    assert_eq!(c.api_calls, c.misses + c.refresh_calls);
    assert_eq!(c.api_calls_without_cache, c.reads);
    assert_eq!(c.reads, c.reads_by_kind.values().sum::<u64>());
    assert_eq!(c.api_calls_saved, c.reads as i64 - c.api_calls as i64);
    assert!(c.l2_hits > 0, "l1Ttl (30 s) is shorter than the TTL (1 m): L2 serves what L1 dropped");
    assert!(c.refresh_calls > 0, "vm:* refreshes eagerly");
    assert!(ja.contains("\"cache\": {"));
}

#[test]
fn a_scenario_without_cache_has_no_cache_key() {
    let s = sim::scenario::load(&crate::scenario_path("regional-outage.toml")).expect("valid");
    assert!(s.cache.is_none());
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let json = serde_json::to_string(&r.summary).expect("json");
    assert!(!json.contains("\"cache\""));
}

#[test]
fn zero_ttl_serves_nothing_cached_and_decides_exactly_as_without_a_cache() {
    // TTL 0 for prices and health: every read is an API call that returns the truth, so every
    // decision is the one made without a cache. (vm:* and metrics:* are still cached.)
    let zero = cache_scenario("0");
    let (with, c) = summary(&zero);
    let mut bare = zero.clone();
    bare.cache = None;
    let without = sim::run(&bare, &RunOptions::default(), &mut ()).expect("runs").summary;
    assert_eq!(c.stale_reads, 0);
    assert_eq!((c.stale_price_decisions, c.stale_health_decisions), (0, 0));
    assert_eq!((c.stale_price_extra_cost_usd, c.stale_health_downtime_s), (0.0, 0.0));
    // Price and health reads all miss: the hits are vm/metrics reads.
    assert!(c.l1_hits + c.l2_hits <= c.reads_by_kind["vm"] + c.reads_by_kind["metrics"]);
    assert!(c.misses >= c.reads_by_kind["price"] + c.reads_by_kind["health"]);
    assert_eq!(with.total_cost_usd, without.total_cost_usd);
    assert_eq!(with.availability, without.availability);
    assert_eq!(
        (with.requests_total, with.requests_served, with.requests_rejected, with.failovers),
        (without.requests_total, without.requests_served, without.requests_rejected, without.failovers)
    );
    assert_eq!(with.cloud, without.cloud);
}

#[test]
fn longer_ttls_save_calls_and_throttling_and_cost_stale_decisions() {
    let (_, short) = summary(&cache_scenario("0"));
    let (_, long) = summary(&cache_scenario("10m"));
    assert!(long.api_calls < short.api_calls, "{} < {}", long.api_calls, short.api_calls);
    assert!(long.throttled < short.throttled, "{} < {}", long.throttled, short.throttled);
    assert!(long.throttling_avoided > short.throttling_avoided);
    assert!(long.stale_reads > 0);
    assert!(long.stale_price_decisions > 0);
    // Cached "healthy" outlives the outage's detection by up to 10 minutes: placements into
    // us-east-1 fail while the health API already says it is down.
    assert!(long.stale_health_decisions > 0);
    assert!(long.stale_health_downtime_s > 0.0);
}

fn error_of(text: &str) -> String {
    match sim::scenario::parse(text, Path::new("bad.toml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = r#"name = "t"
seed = 1
duration = "1h"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "aws"
location = [0.0, 0.0]
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.1
capacity = 10
[workload]
arrival = { process = "poisson", rate_per_s = 0.1 }
lifetime = { dist = "exponential", mean = "10m" }
[[workload.shapes]]
vcpu = 2
memory_gib = 4
"#;

#[test]
fn bad_cache_sections_name_file_line_key_and_what_is_allowed() {
    let e = error_of(&format!("{BASE}[cache]\nl1_entries = 0\npoll_interval = \"soon\"\n"));
    assert!(
        e.contains("bad.toml:24: cache.l1_entries: must be at least 1 (entries the in-process cache holds)"),
        "{e}"
    );
    assert!(e.contains("bad.toml:25: cache.poll_interval: invalid duration \"soon\""), "{e}");
    let e = error_of(&format!(
        "{BASE}[cache]\n[cache.policy]\ndefaultTtl = \"1m\"\n[[cache.policy.ttlPolicies]]\npattern = \"vm:*\"\nttl = \"5 parsecs\"\n"
    ));
    assert!(e.contains("bad.toml:28: cache.policy.ttlPolicies[0].ttl: invalid duration \"5 parsecs\""), "{e}");
    let e = error_of(&format!("{BASE}[cache]\n[cache.policy]\nstrategy = \"write-around\"\n"));
    assert!(e.contains("bad.toml:25") && e.contains("write-behind") && e.contains("cache-aside"), "{e}");
    let e = error_of(&format!("{BASE}[cache]\nttl = \"1m\"\n"));
    assert!(e.contains("unknown field `ttl`") && e.contains("api_rate_limit"), "{e}");
}

#[test]
fn a_ttl_sweep_gets_trade_off_figures_with_means_per_ttl() {
    use polars::prelude::*;
    use sim::report::figures::Content;
    let df = df!(
        "policy" => ["p", "p", "p", "p"],
        "param.cache.policy.defaultTtl" => ["1m", "0", "1m", "0"],
        "cache.api_calls" => [10u64, 100, 30, 200],
        "cache.stale_price_extra_cost_usd" => [1.0f64, 0.0, 2.0, 0.0],
        "cache.stale_health_downtime_s" => [120.0f64, 0.0, 0.0, 0.0]
    )
    .expect("frame");
    let (figures, table) = sim::report::cache::ttl_tradeoff(&df);
    let ids: Vec<&str> = figures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["cache_ttl_calls", "cache_ttl_stale_prices", "cache_ttl_stale_health"]);
    let points = |f: usize, label: &str| match &figures[f].content {
        Content::Lines { series, .. } => {
            series.iter().find(|s| s.label.as_deref() == Some(label)).expect("series").points.clone()
        }
        other => panic!("{other:?}"),
    };
    // TTLs in order, evenly spaced: 0 at x = 0, 1 min at x = 1; means over the two seeds.
    assert_eq!(points(0, "API calls"), [(0.0, 150.0), (1.0, 20.0)]);
    assert_eq!(points(1, "extra cost of stale price decisions"), [(0.0, 0.0), (1.0, 1.5)]);
    // Downtime in minutes: (120 + 0) / 2 s = 1 min.
    assert_eq!(points(2, "VM downtime from stale health decisions (min)"), [(0.0, 0.0), (1.0, 1.0)]);
    assert!(figures[0].x_label.contains("0 · 1 min"), "{}", figures[0].x_label);
    let table = table.expect("table");
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.rows[0][0], "0");
    // Without a TTL parameter, nothing.
    let plain = df!("cache.api_calls" => [1u64]).expect("frame");
    assert!(sim::report::cache::ttl_tradeoff(&plain).0.is_empty());
}
