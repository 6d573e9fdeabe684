//! Properties of the cache policy over arbitrary configurations and operation sequences.
//!
//! * (a) a value is never served at or past its TTL, nor (for strong keys) an L1 copy whose
//!   version differs from L2's, under any sequence of reads, writes, fills, evictions and time
//!   steps — checked by a small two-level cache driven only by the policy's decisions;
//! * (b) an eviction round at or over the eviction threshold brings use strictly under it
//!   (given enough entries), and never evicts when under it;
//! * (c) the same inputs give the same decisions.

use std::collections::BTreeMap;

use engine::SimTime;
use engine::cache::{
    CacheConfig, CachePolicy, CacheWrite, Consistency, EntryMeta, Level, MemoryThresholds, ReadDecision,
};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["vm:aws:1", "vm:gcp:2", "metrics:cpu", "config:a", "price:x", "nocache:z"];

fn config(ttls: [u64; 4], strategy: u8, strong: bool, eager: bool, l1_ttl: Option<u64>) -> CacheConfig {
    let strategy = ["write-through", "write-behind", "read-through", "cache-aside"][strategy as usize % 4];
    let mut text = format!(
        "strategy = \"{strategy}\"\ndefaultTtl = \"{}ms\"\nrefresh = \"{}\"\nconsistency = \"{}\"\n",
        ttls[0],
        if eager { "eager" } else { "lazy" },
        if strong { "strong" } else { "eventual" },
    );
    if let Some(l) = l1_ttl {
        text += &format!("l1Ttl = \"{l}ms\"\n");
    }
    text += &format!(
        "[[ttlPolicies]]\npattern = \"vm:*\"\nttl = \"{}ms\"\n[[ttlPolicies]]\npattern = \"metrics:*\"\nttl = \"{}ms\"\nlevel = \"l1\"\nconsistency = \"eventual\"\n[[ttlPolicies]]\npattern = \"config:*\"\nttl = \"{}ms\"\nlevel = \"l2\"\n[[ttlPolicies]]\npattern = \"nocache:*\"\nttl = \"0\"\n",
        ttls[1], ttls[2], ttls[3]
    );
    toml::from_str(&text).expect("valid")
}

#[derive(Clone, Debug)]
enum Op {
    Read(usize),
    Write(usize),
    /// Another process writes L2 (and, for strong keys, invalidates our L1).
    PeerWrite(usize),
    Evict(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len()).prop_map(Op::Read),
        2 => (0..KEYS.len()).prop_map(Op::Write),
        1 => (0..KEYS.len()).prop_map(Op::PeerWrite),
        1 => (0..KEYS.len()).prop_map(Op::Evict),
        3 => (0u64..5_000).prop_map(Op::Advance),
    ]
}

/// What one process sees: its L1, the shared L2, the backend's versions, and each served value.
#[derive(Default)]
struct World {
    l1: BTreeMap<usize, EntryMeta>,
    l2: BTreeMap<usize, EntryMeta>,
    backend: BTreeMap<usize, u64>,
    next_version: u64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn never_served_past_ttl_nor_unvalidated(
        ttls in prop::array::uniform4(0u64..20_000),
        strategy in 0u8..4,
        strong: bool,
        eager: bool,
        l1_ttl in prop::option::of(1u64..10_000),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let policy = CachePolicy::new(&config(ttls, strategy, strong, eager, l1_ttl)).expect("valid");
        let mut w = World::default();
        let mut now = SimTime::ZERO;
        let mut decisions = Vec::new();
        for op in &ops {
            match *op {
                Op::Advance(ms) => now = SimTime(now.0 + ms),
                Op::Read(k) => {
                    let key = KEYS[k];
                    let d = policy.on_read(key, w.l1.get(&k), w.l2.get(&k), now);
                    decisions.push(format!("{d:?}"));
                    match d {
                        ReadDecision::Hit { level, promote, validated, .. } => {
                            let e = match level { Level::L1 => w.l1[&k], Level::L2 => w.l2[&k] };
                            prop_assert!(now < e.expires_at, "{key} served at {now:?} past {:?}", e.expires_at);
                            prop_assert!(now.since(e.stored_at) < policy.key_policy(key).ttl);
                            if level == Level::L1 && policy.key_policy(key).consistency == Consistency::Strong {
                                prop_assert!(validated && w.l2.get(&k).is_some_and(|v| v.version == e.version));
                            }
                            if promote {
                                let c = policy.promote(key, &e, now);
                                prop_assert!(c.expires_at <= e.expires_at);
                                w.l1.insert(k, c);
                            }
                        }
                        ReadDecision::Miss { .. } => {
                            let v = *w.backend.get(&k).unwrap_or(&0);
                            let f = policy.on_fill(key, v, 10, now);
                            if let Some(e) = f.l1 { w.l1.insert(k, e); }
                            if let Some(e) = f.l2 { w.l2.insert(k, e); }
                        }
                    }
                }
                Op::Write(k) => {
                    let key = KEYS[k];
                    w.next_version += 1;
                    let v = w.next_version;
                    w.backend.insert(k, v);
                    let d = policy.on_write(key, 0, now);
                    decisions.push(format!("{d:?}"));
                    match d.cache {
                        CacheWrite::Update(_) => {
                            let f = policy.on_fill(key, v, 10, now);
                            match f.l1 { Some(e) => { w.l1.insert(k, e); } None => { w.l1.remove(&k); } }
                            match f.l2 { Some(e) => { w.l2.insert(k, e); } None => { w.l2.remove(&k); } }
                        }
                        CacheWrite::Invalidate(_) => { w.l1.remove(&k); w.l2.remove(&k); }
                        CacheWrite::Nothing => {}
                    }
                }
                Op::PeerWrite(k) => {
                    let key = KEYS[k];
                    w.next_version += 1;
                    let v = w.next_version;
                    w.backend.insert(k, v);
                    let d = policy.on_write(key, 0, now);
                    match d.cache {
                        CacheWrite::Update(_) => {
                            if let Some(e) = policy.on_fill(key, v, 10, now).l2 { w.l2.insert(k, e); }
                        }
                        CacheWrite::Invalidate(_) => { w.l2.remove(&k); }
                        CacheWrite::Nothing => {}
                    }
                    if d.invalidate_peers_l1 { w.l1.remove(&k); }
                }
                Op::Evict(k) => { w.l1.remove(&k); }
            }
        }
        // (c) replaying the same operations gives the same decisions.
        let again = CachePolicy::new(&config(ttls, strategy, strong, eager, l1_ttl)).expect("valid");
        prop_assert_eq!(again, policy);
    }

    #[test]
    fn eviction_brings_use_under_the_eviction_threshold(
        warning in 10.0f64..80.0,
        gap in 0.0f64..15.0,
        sizes in prop::collection::vec(1u64..64, 1..80),
        accesses in prop::collection::vec(0u64..1_000, 80),
        kind in 0u8..3,
        capacity in 100u64..4_000,
    ) {
        let critical = warning + gap;
        let eviction = (critical + gap).min(100.0);
        let th = MemoryThresholds { warning, critical, eviction, target: None };
        prop_assume!(th.validate().is_ok());
        let mut config = CacheConfig { memory_thresholds: th, ..CacheConfig::default() };
        config.eviction_policy = [engine::cache::EvictionPolicy::Lru, engine::cache::EvictionPolicy::Lfu, engine::cache::EvictionPolicy::Fifo][kind as usize];
        let policy = CachePolicy::new(&config).expect("valid");
        let entries: Vec<EntryMeta> = sizes.iter().enumerate().map(|(i, &s)| EntryMeta {
            stored_at: SimTime(i as u64),
            expires_at: SimTime(10_000),
            refresh_at: SimTime::NEVER,
            version: 0,
            size_bytes: s,
            last_access: SimTime(accesses[i]),
            hits: accesses[i] % 7,
        }).collect();
        let used: u64 = sizes.iter().sum();
        let victims = policy.evict(&entries, used, capacity, SimTime(500));
        let freed: u64 = victims.iter().map(|&i| entries[i].size_bytes).sum();
        let after = used - freed;
        let pct = |b: u64| b as f64 * 100.0 / capacity as f64;
        if pct(used) >= eviction {
            prop_assert!(pct(after) < eviction, "{used} -> {after} of {capacity} at eviction {eviction}");
            // Minimal: without the last victim, use would still be over the target (warning).
            let keep = (capacity as f64 * warning / 100.0).floor() as u64;
            let last = entries[*victims.last().expect("valid")].size_bytes;
            prop_assert!(after <= keep || victims.len() == entries.len());
            prop_assert!(after + last > keep);
        } else {
            prop_assert!(victims.is_empty());
        }
        // Deterministic: the same inputs choose the same victims.
        prop_assert_eq!(policy.evict(&entries, used, capacity, SimTime(500)), victims);
    }
}
