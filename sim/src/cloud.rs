//! Mock clouds: what really happens to the instances the engine asks for. Capacity that can run
//! out behind the engine's back, provisioning delays, API errors and throttling, spot prices that
//! move, spot interruptions with a two-minute notice, crashes, and region or zone outages.
//!
//! The cloud never calls the engine: it schedules [`CloudEvent`]s, and the driver turns them into
//! engine events, so the engine only knows what a real control plane would tell it.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    FailureCause, InstanceId, Market, OfferId, OfferKind, Placement, RegionId, SimDuration, SimTime, VmId, ZoneId,
};
use rand::RngExt;
use rand_distr::{Distribution, Exp, StandardNormal};

use crate::queue::EventQueue;
use crate::rng::{SimRng, Streams};
use crate::scenario::{FaultKind, Scenario};

/// Spot interruption notice lead time (AWS: two minutes).
pub const INTERRUPTION_NOTICE: SimDuration = SimDuration::from_secs(120);

/// Things the clouds make happen.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudEvent {
    /// An instance finished booting.
    Up(InstanceId),
    /// A create call failed (the instance never existed).
    CreateFailed(InstanceId, FailureCause),
    /// A spot notice for an instance.
    Notice(InstanceId),
    /// The provider reclaims a spot instance.
    Reclaim(InstanceId),
    /// An instance crashes.
    Crash(InstanceId),
    /// A spot market's next step (price and interruptions).
    SpotStep(OfferId),
}

#[derive(Clone, Debug)]
struct CloudInstance {
    vm: VmId,
    offer: OfferId,
    market: Market,
    region: RegionId,
    zone: ZoneId,
    running: bool,
}

#[derive(Clone, Debug)]
struct SpotMarket {
    price: f64,
    /// Log-price state of the random process.
    log_price: f64,
    running: BTreeSet<InstanceId>,
    series_pos: usize,
    rate: f64,
}

/// A change the engine must be told about.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A price moved.
    Price(OfferId, Market, f64),
    /// An instance died.
    Died(InstanceId, FailureCause),
    /// A spot notice.
    Notice(InstanceId, SimTime),
}

/// All mock clouds of a scenario.
pub struct Cloud {
    instances: BTreeMap<InstanceId, CloudInstance>,
    /// Instances the engine deleted.
    deleted: std::collections::BTreeSet<InstanceId>,
    /// Faults under way, by index.
    active: std::collections::BTreeSet<usize>,
    in_use: Vec<u32>,
    capacity_factor: Vec<f64>,
    region_up: Vec<bool>,
    zone_up: Vec<bool>,
    spot: Vec<Option<SpotMarket>>,
    storm_rate: Vec<f64>,
    storm_price: Vec<f64>,
    spike_od: Vec<f64>,
    spike_spot: Vec<f64>,
    region_rng: Vec<SimRng>,
    spot_rng: Vec<SimRng>,
    /// Counters for the summary.
    pub stats: CloudStats,
}

/// What the clouds did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CloudStats {
    /// Create calls.
    pub create_calls: u64,
    /// Create calls failed with an API error.
    pub api_errors: u64,
    /// Create calls throttled.
    pub throttled: u64,
    /// Create calls failed for capacity.
    pub insufficient_capacity: u64,
    /// Spot notices sent.
    pub notices: u64,
    /// Instances crashed.
    pub crashes: u64,
    /// Instances lost to outages.
    pub outage_losses: u64,
    /// Delete calls for an instance already deleted (should be zero: nothing is deleted twice).
    pub double_deletes: u64,
    /// Instances still running at the end that the engine no longer tracks (should be zero:
    /// nothing leaks).
    pub leaked_at_end: u64,
}

impl Cloud {
    /// Clouds for a scenario; schedules the first spot steps.
    pub fn new(s: &Scenario, streams: &Streams, queue: &mut EventQueue<crate::run::SimEvent>) -> Self {
        let offers = &s.catalog.offers;
        let mut spot = Vec::with_capacity(offers.len());
        for (i, o) in offers.iter().enumerate() {
            let market = s.spot[i].as_ref().map(|sp| {
                let price = o.spot_per_h.unwrap_or(sp.mean_price);
                let rate = sp
                    .series
                    .as_ref()
                    .and_then(|p| p.first())
                    .map_or(sp.interruption_rate_per_h, |p| p.interruption_rate_per_h);
                SpotMarket { price, log_price: price.max(1e-9).ln(), running: BTreeSet::new(), series_pos: 0, rate }
            });
            if let Some(sp) = &s.spot[i] {
                queue.push(
                    SimTime::ZERO + sp.step,
                    crate::run::SimEvent::Cloud(CloudEvent::SpotStep(OfferId(i as u32))),
                );
            }
            spot.push(market);
        }
        let nr = s.catalog.regions.len();
        Cloud {
            instances: BTreeMap::new(),
            deleted: Default::default(),
            active: Default::default(),
            in_use: vec![0; offers.len()],
            capacity_factor: vec![1.0; nr],
            region_up: vec![true; nr],
            zone_up: vec![true; s.catalog.zones.len()],
            spot,
            storm_rate: vec![1.0; nr],
            storm_price: vec![1.0; nr],
            spike_od: vec![1.0; nr],
            spike_spot: vec![1.0; nr],
            region_rng: s.catalog.regions.iter().map(|r| streams.stream(&format!("cloud/{}", r.name))).collect(),
            spot_rng: offers.iter().map(|o| streams.stream(&format!("spot/{}", o.id.0))).collect(),
            stats: CloudStats::default(),
        }
    }

    /// A create call. Schedules `Up` after the region's provisioning delay, or `CreateFailed`.
    pub fn create(
        &mut self,
        s: &Scenario,
        now: SimTime,
        instance: InstanceId,
        vm: VmId,
        p: &Placement,
        queue: &mut EventQueue<crate::run::SimEvent>,
    ) {
        self.stats.create_calls += 1;
        let offer = &s.catalog.offers[p.offer.idx()];
        let (region, zone) = (offer.region, offer.zone);
        let rs = &s.regions[region.idx()];
        let rng = &mut self.region_rng[region.idx()];
        let fail = |queue: &mut EventQueue<crate::run::SimEvent>, after_ms: u64, cause| {
            queue.push(
                now + SimDuration(after_ms),
                crate::run::SimEvent::Cloud(CloudEvent::CreateFailed(instance, cause)),
            );
        };
        if !self.region_up[region.idx()] || !self.zone_up[zone.idx()] {
            self.stats.api_errors += 1;
            return fail(queue, 5_000, FailureCause::ApiError);
        }
        let u: f64 = rng.random();
        if u < rs.throttle_rate {
            self.stats.throttled += 1;
            return fail(queue, 500, FailureCause::Throttled);
        }
        if u < rs.throttle_rate + rs.api_error_rate {
            self.stats.api_errors += 1;
            return fail(queue, 1_000, FailureCause::ApiError);
        }
        if let OfferKind::Instance(_) = offer.kind {
            let cap = (offer.capacity as f64 * self.capacity_factor[region.idx()]).floor() as u32;
            if self.in_use[p.offer.idx()] >= cap {
                self.stats.insufficient_capacity += 1;
                return fail(queue, 1_000, FailureCause::InsufficientCapacity);
            }
        }
        self.in_use[p.offer.idx()] += 1;
        let delay = rs.provision_delay.sample(rng);
        self.instances
            .insert(instance, CloudInstance { vm, offer: p.offer, market: p.market, region, zone, running: false });
        queue.push(now + delay, crate::run::SimEvent::Cloud(CloudEvent::Up(instance)));
        if rs.crash_rate_per_h > 0.0
            && let Ok(exp) = Exp::new(rs.crash_rate_per_h / 3600.0)
        {
            let t = SimDuration::from_secs_f64(exp.sample(rng));
            queue.push(now + delay + t, crate::run::SimEvent::Cloud(CloudEvent::Crash(instance)));
        }
    }

    /// A delete call. Deleting an instance that is already gone is fine (idempotent), but one the
    /// engine deleted before is counted in `double_deletes`.
    pub fn delete(&mut self, instance: InstanceId) {
        if !self.deleted.insert(instance) {
            self.stats.double_deletes += 1;
        }
        self.remove(instance);
    }

    /// The instance is gone (deleted or killed).
    fn remove(&mut self, instance: InstanceId) {
        if let Some(ci) = self.instances.remove(&instance) {
            self.in_use[ci.offer.idx()] = self.in_use[ci.offer.idx()].saturating_sub(1);
            if let Some(m) = self.spot[ci.offer.idx()].as_mut() {
                m.running.remove(&instance);
            }
        }
    }

    /// Counts the instances still running that `tracked` does not hold (at the end of a run).
    pub fn count_leaks(&mut self, tracked: &std::collections::BTreeSet<InstanceId>) {
        self.stats.leaked_at_end = self.instances.keys().filter(|i| !tracked.contains(i)).count() as u64;
    }

    /// The instance's VM, if the instance exists.
    pub fn vm_of(&self, instance: InstanceId) -> Option<VmId> {
        self.instances.get(&instance).map(|c| c.vm)
    }

    /// Handles a cloud event; returns what the engine must hear.
    pub fn on_event(
        &mut self,
        s: &Scenario,
        now: SimTime,
        ev: CloudEvent,
        queue: &mut EventQueue<crate::run::SimEvent>,
        out: &mut Vec<Observation>,
    ) {
        match ev {
            CloudEvent::Up(i) => {
                if let Some(ci) = self.instances.get_mut(&i) {
                    ci.running = true;
                    if ci.market == Market::Spot
                        && let Some(m) = self.spot[ci.offer.idx()].as_mut()
                    {
                        m.running.insert(i);
                    }
                }
            }
            CloudEvent::CreateFailed(..) => {}
            CloudEvent::Notice(i) => {
                if self.instances.contains_key(&i) {
                    self.stats.notices += 1;
                    out.push(Observation::Notice(i, now + INTERRUPTION_NOTICE));
                    queue.push(now + INTERRUPTION_NOTICE, crate::run::SimEvent::Cloud(CloudEvent::Reclaim(i)));
                }
            }
            CloudEvent::Reclaim(i) => {
                if self.instances.contains_key(&i) {
                    self.delete(i);
                    out.push(Observation::Died(i, FailureCause::Interrupted));
                }
            }
            CloudEvent::Crash(i) => {
                if self.instances.get(&i).is_some_and(|c| c.running) {
                    self.stats.crashes += 1;
                    self.delete(i);
                    out.push(Observation::Died(i, FailureCause::Crashed));
                }
            }
            CloudEvent::SpotStep(o) => self.spot_step(s, now, o, queue, out),
        }
    }

    fn spot_step(
        &mut self,
        s: &Scenario,
        now: SimTime,
        o: OfferId,
        queue: &mut EventQueue<crate::run::SimEvent>,
        out: &mut Vec<Observation>,
    ) {
        let Some(sim) = s.spot[o.idx()].as_ref() else { return };
        let region = s.catalog.offers[o.idx()].region.idx();
        let rng = &mut self.spot_rng[o.idx()];
        let Some(m) = self.spot[o.idx()].as_mut() else { return };
        let old = m.price;
        let next_step;
        if let Some(points) = &sim.series {
            while m.series_pos + 1 < points.len() && points[m.series_pos + 1].at <= now {
                m.series_pos += 1;
            }
            let p = points[m.series_pos];
            m.price = p.price_per_h;
            m.rate = p.interruption_rate_per_h;
            next_step = points
                .get(m.series_pos + 1)
                .map_or(now + sim.step, |n| n.at.min(now + sim.step).max(now + SimDuration(1)));
        } else {
            let z: f64 = StandardNormal.sample(rng);
            m.log_price += sim.mean_reversion * (sim.mean_price.max(1e-9).ln() - m.log_price) + sim.volatility * z;
            m.log_price = m.log_price.min(sim.cap.max(1e-9).ln());
            m.price = m.log_price.exp();
            m.rate = sim.interruption_rate_per_h;
            next_step = now + sim.step;
        }
        let effective =
            (m.price * self.storm_price[region] * self.spike_spot[region]).min(sim.cap * self.spike_spot[region]);
        let old_effective =
            (old * self.storm_price[region] * self.spike_spot[region]).min(sim.cap * self.spike_spot[region]);
        if effective != old_effective {
            out.push(Observation::Price(o, Market::Spot, effective));
        }
        // Interruptions over the step just ended.
        let rate = m.rate * self.storm_rate[region];
        let p = 1.0 - (-rate * sim.step.as_hours_f64()).exp();
        if p > 0.0 {
            for &i in &m.running {
                if rng.random::<f64>() < p {
                    queue.push(now, crate::run::SimEvent::Cloud(CloudEvent::Notice(i)));
                }
            }
        }
        queue.push(next_step, crate::run::SimEvent::Cloud(CloudEvent::SpotStep(o)));
    }

    /// The current spot price the engine sees for an offer, with storms and spikes applied.
    pub fn spot_price(&self, s: &Scenario, o: OfferId) -> Option<f64> {
        let region = s.catalog.offers[o.idx()].region.idx();
        let m = self.spot[o.idx()].as_ref()?;
        let cap = s.spot[o.idx()].as_ref().map_or(f64::INFINITY, |sp| sp.cap);
        Some((m.price * self.storm_price[region] * self.spike_spot[region]).min(cap * self.spike_spot[region]))
    }

    /// Starts (`on = true`) or ends fault `i`; instances it kills are reported in `out`.
    /// Overlapping faults compose: a region is down while any outage covers it, multipliers of
    /// storms and spikes multiply, and the smallest capacity fraction applies.
    pub fn fault(&mut self, s: &Scenario, i: usize, on: bool, out: &mut Vec<Observation>) {
        if on {
            self.active.insert(i);
        } else {
            self.active.remove(&i);
        }
        let nr = s.catalog.regions.len();
        self.region_up = vec![true; nr];
        self.zone_up = vec![true; s.catalog.zones.len()];
        self.capacity_factor = vec![1.0; nr];
        self.storm_rate = vec![1.0; nr];
        self.storm_price = vec![1.0; nr];
        self.spike_od = vec![1.0; nr];
        self.spike_spot = vec![1.0; nr];
        for &j in &self.active {
            match &s.faults[j].kind {
                FaultKind::Outage { region, zone, .. } => match zone {
                    Some(z) => self.zone_up[z.idx()] = false,
                    None => self.region_up[region.idx()] = false,
                },
                FaultKind::SpotStorm { regions, interruption_multiplier, price_multiplier } => {
                    for r in regions {
                        self.storm_rate[r.idx()] *= interruption_multiplier;
                        self.storm_price[r.idx()] *= price_multiplier;
                    }
                }
                FaultKind::PriceSpike { region, multiplier, market } => {
                    if market.is_none_or(|mk| mk == Market::OnDemand) {
                        self.spike_od[region.idx()] *= multiplier;
                    }
                    if market.is_none_or(|mk| mk == Market::Spot) {
                        self.spike_spot[region.idx()] *= multiplier;
                    }
                }
                FaultKind::CapacityCrunch { region, fraction } => {
                    let f = &mut self.capacity_factor[region.idx()];
                    *f = f.min(*fraction);
                }
                FaultKind::Metrics { .. } | FaultKind::ManualFailover { .. } => {}
            }
        }
        match &s.faults[i].kind {
            FaultKind::Outage { region, zone, .. } if on => {
                let doomed: Vec<InstanceId> = self
                    .instances
                    .iter()
                    .filter(|(_, c)| c.region == *region && zone.is_none_or(|z| c.zone == z))
                    .map(|(i, _)| *i)
                    .collect();
                for i in doomed {
                    self.stats.outage_losses += 1;
                    self.remove(i);
                    out.push(Observation::Died(i, FailureCause::Outage));
                }
            }
            FaultKind::SpotStorm { regions, .. } => {
                for r in regions {
                    self.announce_spot(s, *r, out);
                }
            }
            FaultKind::PriceSpike { region, market, .. } => {
                if market.is_none_or(|mk| mk == Market::OnDemand) {
                    let m = self.spike_od[region.idx()];
                    for o in s.catalog.offers.iter().filter(|o| o.region == *region) {
                        out.push(Observation::Price(o.id, Market::OnDemand, o.on_demand_per_h * m));
                    }
                }
                if market.is_none_or(|mk| mk == Market::Spot) {
                    self.announce_spot(s, *region, out);
                }
            }
            _ => {}
        }
    }

    fn announce_spot(&self, s: &Scenario, region: RegionId, out: &mut Vec<Observation>) {
        for o in s.catalog.offers.iter().filter(|o| o.region == region) {
            if let Some(p) = self.spot_price(s, o.id) {
                out.push(Observation::Price(o.id, Market::Spot, p));
            }
        }
    }
}
