//! The cost of the cache policy's decisions: a read decision (pattern match over `N` TTL rules,
//! then the L1/L2 rules), a fill, and an eviction round over 10,000 entries.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::SimTime;
use engine::cache::{CacheConfig, CachePolicy, EntryMeta, TtlPolicies, TtlRuleConfig};

fn policy(rules: usize) -> CachePolicy {
    let list = (0..rules)
        .map(|i| TtlRuleConfig {
            pattern: format!("ns{i}:*"),
            ttl: "5m".into(),
            refresh: None,
            refresh_at: None,
            level: None,
            consistency: None,
        })
        .collect();
    let config = CacheConfig { ttl_policies: TtlPolicies::List(list), ..CacheConfig::default() };
    match CachePolicy::new(&config) {
        Ok(p) => p,
        Err(e) => panic!("bench policy: {e}"),
    }
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_read_decision");
    g.throughput(Throughput::Elements(1));
    for rules in [4usize, 32, 256] {
        let p = policy(rules);
        // The last rule matches: every rule is tried.
        let key = format!("ns{}:aws:us-east-1:m5.xlarge", rules - 1);
        let fill = p.on_fill(&key, 1, 100, SimTime(0));
        let (l1, l2) = (fill.l1, fill.l2);
        g.bench_with_input(BenchmarkId::new("rules", rules), &rules, |b, _| {
            b.iter(|| p.on_read(std::hint::black_box(&key), l1.as_ref(), l2.as_ref(), SimTime(60_000)))
        });
    }
    g.finish();
}

fn eviction(c: &mut Criterion) {
    let p = policy(4);
    let entries: Vec<EntryMeta> = (0..10_000u64)
        .map(|i| EntryMeta {
            stored_at: SimTime(i),
            expires_at: SimTime(1_000_000 + (i * 7919) % 10_000),
            refresh_at: SimTime::NEVER,
            version: 0,
            size_bytes: 1,
            last_access: SimTime((i * 104_729) % 100_000),
            hits: i % 13,
        })
        .collect();
    c.bench_function("cache_evict_10k_entries_at_95_percent", |b| {
        b.iter(|| p.evict(std::hint::black_box(&entries), 9_500, 10_000, SimTime(500_000)))
    });
}

criterion_group!(benches, decisions, eviction);
criterion_main!(benches);
