//! The cache policy's decisions, one rule at a time, with exact outcomes.

use engine::SimTime;
use engine::cache::{
    BackendWrite, CacheConfig, CachePolicy, CacheWrite, Consistency, EntryMeta, Level, Levels, Loader, MemoryLevel,
    MissReason, ReadDecision, Refresh, WriteStrategy,
};

const S: u64 = 1_000;

fn policy(toml_text: &str) -> CachePolicy {
    let config: CacheConfig = toml::from_str(toml_text).expect("valid");
    CachePolicy::new(&config).expect("valid")
}

fn error(toml_text: &str) -> String {
    let config: CacheConfig = toml::from_str(toml_text).expect("valid");
    CachePolicy::new(&config).expect_err("invalid").to_string()
}

fn t(s: u64) -> SimTime {
    SimTime(s * S)
}

const RULES: &str = r#"
strategy = "write-through"
defaultTtl = "5m"
[[ttlPolicies]]
pattern = "vm:*"
ttl = "30s"
[[ttlPolicies]]
pattern = "vm:aws:*"
ttl = "10s"
refresh = "eager"
refreshAt = 0.5
[[ttlPolicies]]
pattern = "metrics:*"
ttl = "1m"
level = "l1"
[[ttlPolicies]]
pattern = "config:*"
ttl = "1h"
consistency = "strong"
level = "l2"
[[ttlPolicies]]
pattern = "nocache:*"
ttl = "0"
"#;

#[test]
fn most_specific_pattern_wins_then_default() {
    let p = policy(RULES);
    // "vm:aws:*" has 7 literal characters, "vm:*" 3.
    let k = p.key_policy("vm:aws:i-1");
    assert_eq!((k.ttl.as_millis(), k.rule, k.refresh), (10 * S, Some(1), Refresh::Eager { at: 0.5 }));
    assert_eq!(p.key_policy("vm:gcp:i-1").ttl.as_millis(), 30 * S);
    assert_eq!(p.key_policy("metrics:cpu").levels, Levels::L1);
    let c = p.key_policy("config:limits");
    assert_eq!((c.consistency, c.levels), (Consistency::Strong, Levels::L2));
    let d = p.key_policy("price:aws:m5");
    assert_eq!((d.ttl.as_millis(), d.rule, d.levels), (300 * S, None, Levels::Both));
    assert!(!p.key_policy("nocache:x").cached());
}

#[test]
fn equally_specific_patterns_first_written_wins() {
    let p = policy(
        r#"
[[ttlPolicies]]
pattern = "a:*"
ttl = "1s"
[[ttlPolicies]]
pattern = "*:b"
ttl = "2s"
"#,
    );
    assert_eq!(p.key_policy("a:b").ttl.as_millis(), S);
}

#[test]
fn map_form_reads_bare_names_as_namespaces() {
    // The form of the shipped CacheIntegration example.
    let p = policy(
        r#"
strategy = "write-through"
evictionPolicy = "allkeys-lru"
[ttlPolicies]
prices = "5m"
catalog = "1h"
"#,
    );
    assert_eq!(p.key_policy("prices:aws:us-east-1:m5").ttl.as_millis(), 300 * S);
    assert_eq!(p.key_policy("catalog").ttl.as_millis(), 3_600 * S);
    assert_eq!(p.key_policy("pricesx").rule, None);
    assert_eq!(p.strategy(), WriteStrategy::WriteThrough);
}

#[test]
fn lazy_read_hits_until_ttl_then_misses() {
    let p = policy(RULES);
    let fill = p.on_fill("vm:gcp:1", 1, 100, t(100));
    let (l1, l2) = (fill.l1.expect("valid"), fill.l2.expect("valid"));
    assert_eq!((l1.expires_at, l2.expires_at), (t(130), t(130)));
    let hit = |now| p.on_read("vm:gcp:1", Some(&l1), Some(&l2), now);
    assert_eq!(hit(t(129)), ReadDecision::Hit { level: Level::L1, promote: false, refresh: false, validated: false });
    // Expiry is exclusive: at 130 s the value is 30 s old and no longer served.
    assert_eq!(hit(t(130)), ReadDecision::Miss { reason: MissReason::Expired, loader: Loader::Cache });
    // Only L2 holds it: served from L2 and copied into L1.
    assert_eq!(
        p.on_read("vm:gcp:1", None, Some(&l2), t(110)),
        ReadDecision::Hit { level: Level::L2, promote: true, refresh: false, validated: false }
    );
    assert_eq!(
        p.on_read("vm:gcp:1", None, None, t(110)),
        ReadDecision::Miss { reason: MissReason::Absent, loader: Loader::Cache }
    );
}

#[test]
fn eager_refresh_starts_at_fraction_and_never_serves_expired() {
    let p = policy(RULES);
    let fill = p.on_fill("vm:aws:1", 1, 100, t(0));
    let l1 = fill.l1.expect("valid");
    // ttl 10 s × 0.5 = 5 s.
    assert_eq!(l1.refresh_at, t(5));
    assert_eq!(p.refresh_time("vm:aws:1", &l1), Some(t(5)));
    let r = |now| p.on_read("vm:aws:1", Some(&l1), None, now);
    assert!(matches!(r(t(4)), ReadDecision::Hit { refresh: false, .. }));
    assert!(matches!(r(t(5)), ReadDecision::Hit { refresh: true, .. }));
    assert!(matches!(r(SimTime(10 * S - 1)), ReadDecision::Hit { refresh: true, .. }));
    assert!(matches!(r(t(10)), ReadDecision::Miss { reason: MissReason::Expired, .. }));
}

#[test]
fn level_rules_ignore_copies_in_other_levels() {
    let p = policy(RULES);
    let fill = p.on_fill("metrics:cpu", 1, 10, t(0));
    assert!(fill.l2.is_none());
    let l1 = fill.l1.expect("valid");
    // An L2 entry for an L1-only key is ignored.
    assert!(matches!(p.on_read("metrics:cpu", None, Some(&l1), t(1)), ReadDecision::Miss { .. }));
    assert!(matches!(p.on_read("metrics:cpu", Some(&l1), None, t(1)), ReadDecision::Hit { level: Level::L1, .. }));
}

#[test]
fn strong_keys_validate_l1_against_l2_version() {
    let p = policy(
        r#"
consistency = "strong"
defaultTtl = "1m"
"#,
    );
    let f = p.on_fill("k", 7, 10, t(0));
    let (l1, mut l2) = (f.l1.expect("valid"), f.l2.expect("valid"));
    assert_eq!(
        p.on_read("k", Some(&l1), Some(&l2), t(1)),
        ReadDecision::Hit { level: Level::L1, promote: false, refresh: false, validated: true }
    );
    // Another process wrote version 8 to L2: the L1 copy is refused, L2 serves.
    l2.version = 8;
    assert_eq!(
        p.on_read("k", Some(&l1), Some(&l2), t(1)),
        ReadDecision::Hit { level: Level::L2, promote: true, refresh: false, validated: false }
    );
    // L2 lost it: the L1 copy cannot be checked, so it is a miss.
    assert_eq!(
        p.on_read("k", Some(&l1), None, t(1)),
        ReadDecision::Miss { reason: MissReason::VersionMismatch, loader: Loader::Caller }
    );
}

#[test]
fn eventual_l1_serves_until_its_own_ttl() {
    let p = policy(
        r#"
defaultTtl = "10m"
l1Ttl = "20s"
"#,
    );
    let f = p.on_fill("k", 1, 10, t(0));
    let (l1, mut l2) = (f.l1.expect("valid"), f.l2.expect("valid"));
    assert_eq!((l1.expires_at, l2.expires_at), (t(20), t(600)));
    l2.version = 2;
    // L1 serves version 1 although L2 has 2 (eventual), for 20 s at most.
    assert!(matches!(p.on_read("k", Some(&l1), Some(&l2), t(19)), ReadDecision::Hit { level: Level::L1, .. }));
    assert!(matches!(p.on_read("k", Some(&l1), Some(&l2), t(20)), ReadDecision::Hit { level: Level::L2, .. }));
}

#[test]
fn write_strategies() {
    let base = r#"
defaultTtl = "1m"
[writeBehind]
flushDelay = "5s"
maxBatch = 3
"#;
    let with = |s: &str| policy(&format!("strategy = \"{s}\"\n{base}"));
    let wt = with("write-through").on_write("k", 0, t(12));
    assert_eq!(
        (wt.cache, wt.backend, wt.invalidate_peers_l1),
        (CacheWrite::Update(Levels::Both), BackendWrite::Now, false)
    );
    let wb = with("write-behind");
    // 12 s falls in the window [10, 15): flushed at 15 s; the third pending write flushes now.
    assert_eq!(wb.on_write("k", 0, t(12)).backend, BackendWrite::At(t(15)));
    assert_eq!(wb.on_write("k", 1, t(15)).backend, BackendWrite::At(t(20)));
    assert_eq!(wb.on_write("k", 2, t(16)).backend, BackendWrite::Now);
    assert_eq!(wb.on_write("k", 0, t(12)).cache, CacheWrite::Update(Levels::Both));
    for s in ["read-through", "cache-aside"] {
        let d = with(s).on_write("k", 0, t(1));
        assert_eq!((d.cache, d.backend), (CacheWrite::Invalidate(Levels::Both), BackendWrite::Now), "{s}");
    }
    let loader = |s: &str| match with(s).on_read("k", None, None, t(0)) {
        ReadDecision::Miss { loader, .. } => loader,
        hit => panic!("{hit:?}"),
    };
    assert_eq!((loader("read-through"), loader("cache-aside")), (Loader::Cache, Loader::Caller));
}

#[test]
fn strong_writes_invalidate_peers_and_uncached_keys_bypass() {
    let p = policy(RULES);
    // L2 only: no L1 copy to invalidate anywhere.
    assert!(!p.on_write("config:x", 0, t(0)).invalidate_peers_l1);
    let strong = policy("consistency = \"strong\"\nstrategy = \"write-through\"");
    assert!(strong.on_write("x", 0, t(0)).invalidate_peers_l1);
    let d = p.on_write("nocache:x", 0, t(0));
    assert_eq!((d.cache, d.backend), (CacheWrite::Nothing, BackendWrite::Now));
    assert_eq!(p.on_fill("nocache:x", 1, 1, t(0)).l1, None);
    assert_eq!(
        p.on_read("nocache:x", None, None, t(0)),
        ReadDecision::Miss { reason: MissReason::Uncached, loader: Loader::Cache }
    );
}

fn entry(stored: u64, access: u64, hits: u64, size: u64, expires: u64) -> EntryMeta {
    EntryMeta {
        stored_at: t(stored),
        expires_at: t(expires),
        refresh_at: SimTime::NEVER,
        version: 0,
        size_bytes: size,
        last_access: t(access),
        hits,
    }
}

#[test]
fn eviction_orders_expired_first_then_policy() {
    let entries = [
        entry(0, 50, 9, 10, 1000),  // 0: oldest insert, recent, popular
        entry(10, 20, 1, 10, 1000), // 1: least recent, rare
        entry(20, 30, 0, 10, 1000), // 2: least frequent
        entry(30, 40, 5, 10, 60),   // 3: expired at 60
    ];
    let now = t(100);
    let all = 40;
    let order = |p: &str| policy(&format!("evictionPolicy = \"{p}\"")).eviction().choose_victims(&entries, all, now);
    assert_eq!(order("lru"), vec![3, 1, 2, 0]);
    assert_eq!(order("lfu"), vec![3, 2, 1, 0]);
    assert_eq!(order("fifo"), vec![3, 0, 1, 2]);
    // Stops as soon as enough is freed: 15 bytes takes two 10-byte entries.
    let lru = policy("").eviction();
    assert_eq!(lru.choose_victims(&entries, 15, now), vec![3, 1]);
    assert!(lru.choose_victims(&entries, 0, now).is_empty());
}

#[test]
fn memory_thresholds_states_and_amount() {
    let p = policy(
        r#"
[memoryThresholds]
warning = 70
critical = 85
eviction = 90
target = 60
"#,
    );
    let level = |used| p.memory_state(used, 1000).level;
    assert_eq!(
        [level(699), level(700), level(850), level(899), level(900)],
        [
            MemoryLevel::Normal,
            MemoryLevel::Warning,
            MemoryLevel::Critical,
            MemoryLevel::Critical,
            MemoryLevel::Evicting
        ]
    );
    // 950 used, target 60 % of 1000 = 600: free 350.
    assert_eq!(p.memory_state(950, 1000).bytes_to_free, 350);
    let entries: Vec<EntryMeta> = (0..10).map(|i| entry(i, i, 0, 95, 10_000)).collect();
    // Ten 95-byte entries = 950 bytes; 350 to free takes four (380), the four least recent.
    assert_eq!(p.evict(&entries, 950, 1000, t(0)), vec![0, 1, 2, 3]);
    assert!(p.evict(&entries, 899, 1000, t(0)).is_empty());
}

#[test]
fn warming_plan_by_priority_pattern_and_universe_order_within_budget() {
    let p = policy(
        r#"
[warmingConfig]
enabled = true
maxKeys = 4
schedule = "*/30 * * * *"
[[warmingConfig.patterns]]
pattern = "price:*"
priority = 1
[[warmingConfig.patterns]]
pattern = "vm:*"
priority = 5
[[warmingConfig.patterns]]
pattern = "price:aws:*"
priority = 5
"#,
    );
    let universe = ["price:gcp:a", "vm:2", "price:aws:b", "other", "vm:1", "vm:2", "price:azure:c"];
    // Priority 5: vm:* (pattern 1) before price:aws:* (pattern 2); then priority 1 in universe order.
    assert_eq!(p.warming_plan(universe, 100), vec!["vm:2", "vm:1", "price:aws:b", "price:gcp:a"]);
    assert_eq!(p.warming_plan(universe, 2), vec!["vm:2", "vm:1"]);
    assert!(p.warming().schedule().is_some());
    assert!(policy("").warming_plan(universe, 100).is_empty());
}

#[test]
fn invalid_configurations_name_the_field() {
    assert_eq!(
        error("defaultTtl = \"5 minutes\""),
        "defaultTtl: invalid duration \"5 minutes\": expected a number and a unit (ms, s, m, h, d), such as \"90s\", \"15m\", \"2h\" or \"1h30m\""
    );
    assert_eq!(
        error("[[ttlPolicies]]\npattern = \"\"\nttl = \"1s\""),
        "ttlPolicies[0].pattern: a pattern must not be empty (use \"*\" to match every key)"
    );
    assert_eq!(
        error("[[ttlPolicies]]\npattern = \"a\"\nttl = \"1s\"\nrefreshAt = 1.5"),
        "ttlPolicies[0].refreshAt: 1.5 is not a fraction of the TTL in (0, 1), such as 0.8"
    );
    assert_eq!(
        error("[[ttlPolicies]]\npattern = \"a\"\nttl = \"1s\"\n[[ttlPolicies]]\npattern = \"a\"\nttl = \"2s\""),
        "ttlPolicies[1].pattern: pattern \"a\" is already given by ttlPolicies[0]"
    );
    assert_eq!(
        error("[[ttlPolicies]]\npattern = \"a\"\nttl = \"1s\"\nlevel = \"l1\"\nconsistency = \"strong\""),
        "ttlPolicies[0].consistency: consistency \"strong\" needs L2 to check versions against: use level \"l2\" or \"both\""
    );
    assert_eq!(
        error("strategy = \"write-behind\"\n[writeBehind]\nflushDelay = \"0\""),
        "writeBehind.flushDelay: must be above zero (or use write-through)"
    );
    assert_eq!(
        error("[warmingConfig]\nenabled = true"),
        "warmingConfig.patterns: warming is enabled but no pattern says what to warm"
    );
    assert!(error("[warmingConfig]\nschedule = \"61 * * * *\"").starts_with("warmingConfig.schedule: "));
    assert_eq!(
        error("[memoryThresholds]\nwarning = 90\ncritical = 80"),
        "memoryThresholds: thresholds must rise: warning (90) <= critical (80) <= eviction (90)"
    );
    assert_eq!(
        error("[memoryThresholds]\ntarget = 95"),
        "memoryThresholds.target: 95 must be under the eviction threshold (90)"
    );
    // Unknown keys and strategies are refused by serde, naming what is allowed.
    let e = toml::from_str::<CacheConfig>("strategy = \"write-around\"").expect_err("invalid").to_string();
    assert!(e.contains("write-through") && e.contains("cache-aside"), "{e}");
    assert!(toml::from_str::<CacheConfig>("ttl = \"1s\"").is_err());
}

#[test]
fn config_round_trips_through_json() {
    let config: CacheConfig = toml::from_str(RULES).expect("valid");
    let json = serde_json::to_string(&config).expect("valid");
    let back: CacheConfig = serde_json::from_str(&json).expect("valid");
    assert_eq!(back, config);
    assert_eq!(CachePolicy::new(&back).expect("valid"), CachePolicy::new(&config).expect("valid"));
}
