//! The modeled cache between the simulated control plane and the clouds' read APIs.
//!
//! With a `[cache]` section in the scenario, the control plane reads what it decides on through
//! a two-level cache run by the engine's [`engine::cache::CachePolicy`]:
//!
//! * **prices**, `price:<region>/<zone>/<type>:<market>` — every offer's on-demand and spot price,
//!   read at each request arrival, just before the placement decision;
//! * **health**, `health:<region>` and `health:<region>:<zone>` — read before every decision the
//!   engine may place on (an arrival, a failed instance, a retry) and at every poll;
//! * **VM state**, `vm:<instance>` — every live instance, read at every poll (`poll_interval`);
//! * **metrics**, `metrics:<deployment>` — every deployment, read at every poll.
//!
//! A read follows [`CachePolicy::on_read`]: a hit serves the cached value (L1, else L2, copied into
//! L1), a miss or an eager refresh is one API call to the key's provider that returns the truth
//! and fills the cache ([`CachePolicy::on_fill`]). The control plane's own changes (create and
//! delete calls) are writes of `vm:<instance>` through [`CachePolicy::on_write`]. L1 and L2 hold at
//! most `l1_entries` and `l2_entries` entries; over the eviction threshold the policy's victims go.
//!
//! **Truth and belief.** Without a cache the engine is told every price change and every detected
//! health change at once. With one, it is still told prices at once (so bills integrate the true
//! prices), but each placement at an arrival is decided on the *served* prices: the served values
//! are set in the engine's snapshot for the decision and the true ones restored at the same
//! instant (zero time, so no bill changes). Health is believed as served: the engine learns a
//! detected outage (or recovery) only when a read misses the cached value.
//!
//! **What staleness costs.** A *stale price decision* is an arrival whose placement, decided on
//! served prices that differ from the truth, differs from what the same policy decides on the true
//! prices at that instant; its extra cost is the true price difference between the two choices
//! times the VM's requested lifetime (cut at the run's end; negative if the stale choice happened
//! to be cheaper). A *stale health decision* is a provision into a location whose health API
//! already says it is down while the served health said up; the create call fails, and its
//! downtime is the time until that VM is next provisioned, running, given up or released (or
//! the run ends); VMs given up in that state are counted.
//!
//! **API calls and throttling.** Each provider's read API allows `api_rate_limit` calls per
//! second (fixed one-second windows). Calls over the limit are counted as throttled (they are not
//! delayed: the model counts them, it does not retry them). The same reads made without a cache —
//! every read an API call — go through a second, shadow limiter, which gives the calls saved and
//! the throttling avoided in the same run.

use std::collections::BTreeMap;

use engine::cache::{CachePolicy, CacheWrite, EntryMeta, Level, ReadDecision};
use engine::{
    Decision, Engine, Event, InstanceId, Market, OfferKind, PlacementPolicy, RegionId, SimDuration, SimTime, VmId,
    VmRequest, ZoneId,
};
use serde::Serialize;

use crate::results::offer_label;
use crate::scenario::Scenario;

/// A validated `[cache]` section.
#[derive(Clone, Debug)]
pub struct CacheSim {
    /// The engine's cache policy, from `[cache.policy]`.
    pub policy: CachePolicy,
    /// Read-API calls allowed per provider per second.
    pub api_rate_limit: u64,
    /// L1 capacity, entries.
    pub l1_entries: u64,
    /// L2 capacity, entries.
    pub l2_entries: u64,
    /// How often VM state, metrics and health are polled.
    pub poll_interval: SimDuration,
}

/// The cache's figures in `summary.json` (`cache`, present only with a `[cache]` section).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CacheSummary {
    /// Reads through the cache.
    pub reads: u64,
    /// Reads served from L1.
    pub l1_hits: u64,
    /// Reads served from L2 (after missing L1).
    pub l2_hits: u64,
    /// Reads that went to the API.
    pub misses: u64,
    /// `l1_hits / reads`.
    pub l1_hit_rate: f64,
    /// `l2_hits / (reads - l1_hits)`: how often L2 serves what L1 missed.
    pub l2_hit_rate: f64,
    /// `(l1_hits + l2_hits) / reads`.
    pub hit_rate: f64,
    /// Reads by kind of key (`price`, `health`, `vm`, `metrics`).
    pub reads_by_kind: BTreeMap<String, u64>,
    /// Read-API calls made (misses and eager refreshes).
    pub api_calls: u64,
    /// Of which eager refreshes.
    pub refresh_calls: u64,
    /// Read-API calls the same reads would make without a cache.
    pub api_calls_without_cache: u64,
    /// `api_calls_without_cache - api_calls`.
    pub api_calls_saved: i64,
    /// Calls over the rate limit.
    pub throttled: u64,
    /// Calls over the rate limit without a cache.
    pub throttled_without_cache: u64,
    /// `throttled_without_cache - throttled`.
    pub throttling_avoided: i64,
    /// Hits whose value differed from the truth at that instant.
    pub stale_reads: u64,
    /// Placements at arrival decided on stale prices that differ from the truth-informed choice.
    pub stale_price_decisions: u64,
    /// Their extra cost, $ (true price difference × requested lifetime).
    pub stale_price_extra_cost_usd: f64,
    /// Provisions into a location the health API already reported down.
    pub stale_health_decisions: u64,
    /// VM downtime those caused, s: until the VM was provisioned again, ran, was given up or
    /// released.
    pub stale_health_downtime_s: f64,
    /// VMs given up (rejected) while their last provision had gone to a location known down.
    pub stale_health_rejections: u64,
    /// Entries evicted (both levels).
    pub evictions: u64,
    /// Most L1 entries at once.
    pub l1_peak_entries: u64,
}

/// What a key is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Price,
    Health,
    Vm,
    Metrics,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Price => "price",
            Kind::Health => "health",
            Kind::Vm => "vm",
            Kind::Metrics => "metrics",
        }
    }
}

/// A cached value with its metadata.
#[derive(Clone, Copy, Debug)]
struct Stored {
    meta: EntryMeta,
    value: f64,
}

/// Fixed one-second windows per provider.
#[derive(Default)]
struct Limiter {
    window: u64,
    used: [u64; 4],
    throttled: u64,
    calls: u64,
}

impl Limiter {
    fn call(&mut self, provider: usize, now: SimTime, limit: u64) {
        let w = now.as_millis() / 1000;
        if w != self.window {
            self.window = w;
            self.used = [0; 4];
        }
        self.calls += 1;
        self.used[provider] += 1;
        if self.used[provider] > limit {
            self.throttled += 1;
        }
    }
}

/// A read key with what the model needs about it.
#[derive(Clone, Debug)]
struct Key {
    text: String,
    provider: usize,
    kind: Kind,
}

/// A health key: a region, or one of its zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Region(RegionId),
    Zone(ZoneId),
}

/// The cache, the truth it is compared with, and the counters.
pub struct CacheModel {
    cfg: CacheSim,
    policy: Box<dyn PlacementPolicy>,
    l1: BTreeMap<String, Stored>,
    l2: BTreeMap<String, Stored>,
    /// True value and version of every price and health key.
    truth: BTreeMap<String, (f64, u64)>,
    price_keys: Vec<(Key, engine::OfferId, Market)>,
    health_keys: Vec<(Key, Place)>,
    /// What the engine believes of each place's health.
    believed_healthy: BTreeMap<Place, bool>,
    /// Instance → (key, provider), for polls.
    live: BTreeMap<InstanceId, Key>,
    deployments: Vec<Key>,
    actual: Limiter,
    shadow: Limiter,
    /// VMs provisioned into a down location, since when.
    stale_pending: BTreeMap<VmId, SimTime>,
    sum: CacheSummary,
}

impl CacheModel {
    /// A cold cache for a scenario, with the engine's initial (list) prices as the truth.
    pub fn new(s: &Scenario, cfg: &CacheSim, engine: &Engine) -> Self {
        let c = &s.catalog;
        let provider = |r: RegionId| c.regions[r.idx()].provider.index();
        let mut truth = BTreeMap::new();
        let mut price_keys = Vec::new();
        for (i, o) in c.offers.iter().enumerate() {
            let id = engine::OfferId(i as u32);
            let label = offer_label(c, id);
            for (m, name) in [(Market::OnDemand, "on-demand"), (Market::Spot, "spot")] {
                let Some(p) = engine.snapshot().offers[i].price(m) else { continue };
                let text = format!("price:{label}:{name}");
                truth.insert(text.clone(), (p.price_per_h, 0));
                price_keys.push((Key { text, provider: provider(o.region), kind: Kind::Price }, id, m));
            }
        }
        let mut health_keys = Vec::new();
        let mut believed = BTreeMap::new();
        for (i, r) in c.regions.iter().enumerate() {
            let id = RegionId(i as u16);
            let text = format!("health:{}", r.name);
            truth.insert(text.clone(), (1.0, 0));
            health_keys.push((Key { text, provider: provider(id), kind: Kind::Health }, Place::Region(id)));
            believed.insert(Place::Region(id), true);
        }
        for (i, z) in c.zones.iter().enumerate() {
            let id = ZoneId(i as u16);
            let text = format!("health:{}:{}", c.regions[z.region.idx()].name, z.name);
            truth.insert(text.clone(), (1.0, 0));
            health_keys.push((Key { text, provider: provider(z.region), kind: Kind::Health }, Place::Zone(id)));
            believed.insert(Place::Zone(id), true);
        }
        let deployments = s
            .deployments
            .iter()
            .map(|d| Key {
                text: format!("metrics:{}", d.spec.name),
                // Metrics come from the provider of the template's first allowed region (else AWS's).
                provider: d.spec.template.regions.first().map_or(0, |r| provider(*r)),
                kind: Kind::Metrics,
            })
            .collect();
        CacheModel {
            cfg: cfg.clone(),
            policy: engine.config().policy.build(),
            l1: BTreeMap::new(),
            l2: BTreeMap::new(),
            truth,
            price_keys,
            health_keys,
            believed_healthy: believed,
            live: BTreeMap::new(),
            deployments,
            actual: Limiter::default(),
            shadow: Limiter::default(),
            stale_pending: BTreeMap::new(),
            // Every kind is reported, read or not, so sweep tables have the same columns.
            sum: CacheSummary {
                reads_by_kind: [Kind::Price, Kind::Health, Kind::Vm, Kind::Metrics]
                    .map(|k| (k.name().to_owned(), 0))
                    .into_iter()
                    .collect(),
                ..CacheSummary::default()
            },
        }
    }

    /// How often to poll.
    pub fn poll_interval(&self) -> SimDuration {
        self.cfg.poll_interval
    }

    /// A price changed in the cloud (the engine is told at once, for billing).
    pub fn price_changed(&mut self, s: &Scenario, offer: engine::OfferId, market: Market, price: f64) {
        let name = if market == Market::Spot { "spot" } else { "on-demand" };
        let text = format!("price:{}:{name}", offer_label(&s.catalog, offer));
        if let Some(t) = self.truth.get_mut(&text)
            && t.0 != price
        {
            *t = (price, t.1 + 1);
        }
    }

    /// The health API now reports a region (or zone) up or down (after the detection delay).
    pub fn health_changed(&mut self, region: RegionId, zone: Option<ZoneId>, healthy: bool) {
        let place = match zone {
            Some(z) => Place::Zone(z),
            None => Place::Region(region),
        };
        if let Some((k, _)) = self.health_keys.iter().find(|(_, p)| *p == place) {
            let v = if healthy { 1.0 } else { 0.0 };
            if let Some(t) = self.truth.get_mut(&k.text)
                && t.0 != v
            {
                *t = (v, t.1 + 1);
            }
        }
    }

    /// Whether the health API (not the belief) says the location is up.
    fn truly_up(&self, region: RegionId, zone: ZoneId) -> bool {
        let up = |place: Place| {
            self.health_keys
                .iter()
                .find(|(_, p)| *p == place)
                .and_then(|(k, _)| self.truth.get(&k.text))
                .is_none_or(|t| t.0 > 0.5)
        };
        up(Place::Region(region)) && up(Place::Zone(zone))
    }

    /// One read through the cache; returns the value served.
    fn read(&mut self, key: &Key, now: SimTime) -> f64 {
        let limit = self.cfg.api_rate_limit;
        self.sum.reads += 1;
        *self.sum.reads_by_kind.entry(key.kind.name().to_owned()).or_default() += 1;
        self.shadow.call(key.provider, now, limit);
        let (truth, version) = self.truth.get(&key.text).copied().unwrap_or((0.0, 0));
        let d = self.cfg.policy.on_read(
            &key.text,
            self.l1.get(&key.text).map(|s| &s.meta),
            self.l2.get(&key.text).map(|s| &s.meta),
            now,
        );
        match d {
            ReadDecision::Hit { level, promote, refresh, .. } => {
                let map = if level == Level::L1 { &mut self.l1 } else { &mut self.l2 };
                let Some(stored) = map.get_mut(&key.text) else { return truth };
                stored.meta.last_access = now;
                stored.meta.hits += 1;
                let served = *stored;
                if level == Level::L1 {
                    self.sum.l1_hits += 1;
                } else {
                    self.sum.l2_hits += 1;
                }
                if served.value != truth {
                    self.sum.stale_reads += 1;
                }
                if promote {
                    let meta = self.cfg.policy.promote(&key.text, &served.meta, now);
                    self.insert(Level::L1, &key.text, Stored { meta, value: served.value }, now);
                }
                if refresh {
                    // Eager refresh: a background call, whose answer replaces the entry.
                    self.sum.refresh_calls += 1;
                    self.actual.call(key.provider, now, limit);
                    self.fill(&key.text, truth, version, now);
                }
                served.value
            }
            ReadDecision::Miss { .. } => {
                self.sum.misses += 1;
                self.actual.call(key.provider, now, limit);
                self.fill(&key.text, truth, version, now);
                truth
            }
        }
    }

    fn fill(&mut self, key: &str, value: f64, version: u64, now: SimTime) {
        let f = self.cfg.policy.on_fill(key, version, 1, now);
        if let Some(meta) = f.l2 {
            self.insert(Level::L2, key, Stored { meta, value }, now);
        }
        if let Some(meta) = f.l1 {
            self.insert(Level::L1, key, Stored { meta, value }, now);
        }
    }

    /// Stores an entry and evicts per the policy if the level is over its eviction threshold.
    fn insert(&mut self, level: Level, key: &str, s: Stored, now: SimTime) {
        let (map, capacity) = match level {
            Level::L1 => (&mut self.l1, self.cfg.l1_entries),
            Level::L2 => (&mut self.l2, self.cfg.l2_entries),
        };
        map.insert(key.to_owned(), s);
        let used = map.len() as u64;
        if self.cfg.policy.memory_state(used, capacity).bytes_to_free > 0 {
            let keys: Vec<&String> = map.keys().collect();
            let metas: Vec<EntryMeta> = map.values().map(|s| s.meta).collect();
            let victims: Vec<String> =
                self.cfg.policy.evict(&metas, used, capacity, now).into_iter().map(|i| keys[i].clone()).collect();
            self.sum.evictions += victims.len() as u64;
            for k in victims {
                map.remove(&k);
            }
        }
        if level == Level::L1 {
            self.sum.l1_peak_entries = self.sum.l1_peak_entries.max(self.l1.len() as u64);
        }
    }

    /// Reads every health key; returns the health events that tell the engine what the served
    /// values changed.
    pub fn refresh_health(&mut self, now: SimTime) -> Vec<Event> {
        let keys = self.health_keys.clone();
        let mut events = Vec::new();
        for (k, place) in keys {
            let up = self.read(&k, now) > 0.5;
            if self.believed_healthy.insert(place, up) != Some(up) {
                events.push(match place {
                    Place::Region(region) => Event::RegionHealth { region, healthy: up },
                    Place::Zone(zone) => Event::ZoneHealth { zone, healthy: up },
                });
            }
        }
        events
    }

    /// Reads every price; returns the served prices that differ from the truth.
    pub fn read_prices(&mut self, now: SimTime) -> Vec<(engine::OfferId, Market, f64, f64)> {
        let keys = self.price_keys.clone();
        let mut stale = Vec::new();
        for (k, offer, market) in keys {
            let served = self.read(&k, now);
            let truth = self.truth.get(&k.text).map_or(served, |t| t.0);
            if served != truth {
                stale.push((offer, market, served, truth));
            }
        }
        stale
    }

    /// What the policy decides on the engine's current (true) snapshot.
    pub fn truth_decision(&self, req: &VmRequest, engine: &Engine, now: SimTime) -> Option<(engine::OfferId, Market)> {
        match self.policy.decide(req, engine.snapshot(), now) {
            Decision::Place { candidate, .. } => Some((candidate.offer, candidate.market)),
            Decision::Reject(_) => None,
        }
    }

    /// Compares the placement made on stale prices with the truth-informed one.
    #[allow(clippy::too_many_arguments)]
    pub fn judge_price_decision(
        &mut self,
        s: &Scenario,
        engine: &Engine,
        req: &VmRequest,
        truth_choice: Option<(engine::OfferId, Market)>,
        actual: Option<(engine::OfferId, Market)>,
        lifetime: Option<SimDuration>,
        now: SimTime,
        end: SimTime,
    ) {
        if truth_choice == actual {
            return;
        }
        self.sum.stale_price_decisions += 1;
        let (Some(t), Some(a)) = (truth_choice, actual) else { return };
        let price = |(o, m): (engine::OfferId, Market)| {
            let qty = match s.catalog.offers[o.idx()].kind {
                OfferKind::Instance(_) => 1.0,
                OfferKind::Pool(_) => req.resources.vcpu as f64,
            };
            engine.snapshot().offers[o.idx()].price(m).map_or(0.0, |p| p.price_per_h) * qty
        };
        let until = lifetime.map_or(end, |l| SimTime(now.0.saturating_add(l.as_millis())).min(end));
        let hours = until.since(now).as_hours_f64();
        self.sum.stale_price_extra_cost_usd += (price(a) - price(t)) * hours;
    }

    /// The engine asked for an instance: track it, write its state, and judge its location.
    pub fn provisioned(&mut self, now: SimTime, vm: VmId, instance: InstanceId, s: &Scenario, offer: engine::OfferId) {
        self.close_pending(vm, now);
        let o = &s.catalog.offers[offer.idx()];
        if !self.truly_up(o.region, o.zone) {
            self.sum.stale_health_decisions += 1;
            self.stale_pending.insert(vm, now);
        }
        let key = Key {
            text: format!("vm:{}", instance.0),
            provider: s.catalog.regions[o.region.idx()].provider.index(),
            kind: Kind::Vm,
        };
        self.write(&key.text, now);
        self.live.insert(instance, key);
    }

    /// An instance of a VM is running.
    pub fn running(&mut self, vm: VmId, now: SimTime) {
        self.close_pending(vm, now);
    }

    /// An instance is gone (deleted, failed or dead).
    pub fn gone(&mut self, instance: InstanceId, now: SimTime) {
        if let Some(k) = self.live.remove(&instance) {
            self.write(&k.text, now);
        }
    }

    /// A VM is no longer wanted (released) or given up (`rejected`).
    pub fn ended(&mut self, vm: VmId, now: SimTime, rejected: bool) {
        if rejected && self.stale_pending.contains_key(&vm) {
            self.sum.stale_health_rejections += 1;
        }
        self.close_pending(vm, now);
    }

    fn close_pending(&mut self, vm: VmId, now: SimTime) {
        if let Some(t) = self.stale_pending.remove(&vm) {
            self.sum.stale_health_downtime_s += now.since(t).as_secs_f64();
        }
    }

    /// A write of our own (create or delete) per the write strategy.
    fn write(&mut self, key: &str, now: SimTime) {
        let d = self.cfg.policy.on_write(key, 0, now);
        match d.cache {
            CacheWrite::Update(_) => {
                let version = self.truth.get(key).map_or(0, |t| t.1) + 1;
                self.truth.insert(key.to_owned(), (0.0, version));
                self.fill(key, 0.0, version, now);
            }
            CacheWrite::Invalidate(_) => {
                self.l1.remove(key);
                self.l2.remove(key);
            }
            CacheWrite::Nothing => {}
        }
    }

    /// Polls VM state and deployment metrics.
    pub fn poll(&mut self, now: SimTime) {
        let keys: Vec<Key> = self.live.values().cloned().chain(self.deployments.iter().cloned()).collect();
        for k in keys {
            self.read(&k, now);
        }
    }

    /// The summary at the end of the run.
    pub fn finish(mut self, end: SimTime) -> CacheSummary {
        let pending: Vec<VmId> = self.stale_pending.keys().copied().collect();
        for vm in pending {
            self.close_pending(vm, end);
        }
        let mut s = self.sum;
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        s.l1_hit_rate = ratio(s.l1_hits, s.reads);
        s.l2_hit_rate = ratio(s.l2_hits, s.reads - s.l1_hits);
        s.hit_rate = ratio(s.l1_hits + s.l2_hits, s.reads);
        s.api_calls = self.actual.calls;
        s.api_calls_without_cache = self.shadow.calls;
        s.api_calls_saved = s.api_calls_without_cache as i64 - s.api_calls as i64;
        s.throttled = self.actual.throttled;
        s.throttled_without_cache = self.shadow.throttled;
        s.throttling_avoided = s.throttled_without_cache as i64 - s.throttled as i64;
        s
    }
}
