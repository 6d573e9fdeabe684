//! The engine's view of the world at one instant: prices, capacity in use, health, host pools,
//! spend and spread. Policies read it (`&Snapshot`); only the [`crate::Engine`] changes it.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};

use crate::cost::{Commitment, CostModel, PriceIntegral};
use crate::hosts::HostPool;
use crate::model::{
    Catalog, Fit, GroupId, HostId, Market, OfferId, OfferKind, Provider, RegionId, Resources, VmRequest, ZoneId,
};
use crate::time::{SimDuration, SimTime};

/// A `HashMap` with a fixed hasher: same inputs, same layout, every run.
pub type DetHashMap<K, V> = HashMap<K, V, BuildHasherDefault<std::hash::DefaultHasher>>;

/// What changes about an offer over time.
#[derive(Clone, Debug)]
pub struct OfferState {
    /// On-demand price (per instance-hour, or per vCPU-hour for pools), with its integral.
    pub on_demand: PriceIntegral,
    /// Spot price, if the offer has a spot market.
    pub spot: Option<PriceIntegral>,
    /// Instances of ours running or starting on this offer (both markets).
    pub in_use: u32,
    /// Until when each market (on-demand, spot) is avoided after a capacity failure or interruption.
    pub avoid_until: [SimTime; 2],
    /// Recent spot interruptions per hour (exponentially weighted).
    pub interruptions_per_h: f64,
    interruptions_at: SimTime,
    /// Billed quantity per market (instances, or vCPUs for pools) of uncovered instances.
    billed_qty: [f64; 2],
}

impl OfferState {
    /// The integral for a market, if the offer sells in it.
    pub fn price(&self, market: Market) -> Option<&PriceIntegral> {
        match market {
            Market::OnDemand => Some(&self.on_demand),
            Market::Spot => self.spot.as_ref(),
        }
    }
    /// Interruption rate decayed to `now`.
    pub fn interruption_rate(&self, now: SimTime, half_life: SimDuration) -> f64 {
        decay(self.interruptions_per_h, now.since(self.interruptions_at), half_life)
    }
}

fn decay(value: f64, dt: SimDuration, half_life: SimDuration) -> f64 {
    if value == 0.0 {
        return 0.0;
    }
    if half_life == SimDuration::ZERO {
        return 0.0;
    }
    value * (-(dt.as_millis() as f64) / half_life.as_millis() as f64 * std::f64::consts::LN_2).exp()
}

fn market_idx(m: Market) -> usize {
    match m {
        Market::OnDemand => 0,
        Market::Spot => 1,
    }
}

/// Counts of instances by provider, region and zone, for spreading.
#[derive(Clone, Debug, Default)]
pub struct SpreadCounts {
    /// By provider, indexed by [`Provider::index`].
    pub by_provider: [u32; 4],
    /// By region.
    pub by_region: BTreeMap<RegionId, u32>,
    /// By zone.
    pub by_zone: BTreeMap<ZoneId, u32>,
    /// Spend of the group's instances: (offer, market) → (billed quantity, fixed $/h).
    spend: BTreeMap<(OfferId, u8), (f64, f64)>,
    /// Instances in the group.
    pub total: u32,
}

impl SpreadCounts {
    fn add(&mut self, provider: Provider, region: RegionId, zone: ZoneId, delta: i32) {
        let bump = |v: &mut u32| *v = v.saturating_add_signed(delta);
        bump(&mut self.by_provider[provider.index()]);
        bump(self.by_region.entry(region).or_default());
        bump(self.by_zone.entry(zone).or_default());
        bump(&mut self.total);
    }
    /// Instances in a zone.
    pub fn zone(&self, z: ZoneId) -> u32 {
        self.by_zone.get(&z).copied().unwrap_or(0)
    }
    /// Instances in a region.
    pub fn region(&self, r: RegionId) -> u32 {
        self.by_region.get(&r).copied().unwrap_or(0)
    }
}

/// The spread of a group with no instance yet.
static NO_SPREAD: SpreadCounts = SpreadCounts {
    by_provider: [0; 4],
    by_region: BTreeMap::new(),
    by_zone: BTreeMap::new(),
    spend: BTreeMap::new(),
    total: 0,
};

/// Which commitment, if any, pays for an instance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Coverage {
    /// Billed at the market price.
    None,
    /// A reserved instance (index into the cost model's commitments).
    Reserved(u16),
    /// A savings plan, consuming this many $/h of it.
    SavingsPlan(u16, f64),
}

/// A feasible way to serve a request: an offer, a market, and for pools a host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The offer.
    pub offer: OfferId,
    /// The market.
    pub market: Market,
    /// Its region.
    pub region: RegionId,
    /// Its zone.
    pub zone: ZoneId,
    /// Its provider.
    pub provider: Provider,
    /// List price for this request, $/h.
    pub price_per_h: f64,
    /// What it would add to the bill, $/h: the instance price (zero when a commitment already
    /// pays for it) plus egress.
    pub marginal_per_h: f64,
    /// Egress to the request's users, $/h (included in `marginal_per_h`).
    pub egress_per_h: f64,
    /// For pools: the host the pool's own fit picks.
    pub host: Option<HostId>,
    /// Which commitment would pay.
    pub coverage: Coverage,
    /// Free instance slots left on the offer (for pools: hosts' free vCPU / request vCPU).
    pub free_capacity: u32,
}

/// Why no candidate was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// No offer matches the request's constraints and size at all.
    NoMatchingOffer,
    /// Matching offers exist, but none is healthy with capacity left right now.
    NoCapacity,
    /// Every offer with capacity is above the request's maximum price.
    OverMaxPrice,
    /// Every remaining offer would break the budget cap.
    OverBudget,
    /// Create calls kept failing (API errors, throttling) until the attempts ran out.
    ProvisioningFailed,
}

impl RejectReason {
    /// Kebab-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoMatchingOffer => "no-matching-offer",
            RejectReason::NoCapacity => "no-capacity",
            RejectReason::OverMaxPrice => "over-max-price",
            RejectReason::OverBudget => "over-budget",
            RejectReason::ProvisioningFailed => "provisioning-failed",
        }
    }
}

/// The charges an allocated instance carries until it is released.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Charge {
    /// Offer and market.
    pub offer: OfferId,
    /// Market.
    pub market: Market,
    /// Host for pools.
    pub host: Option<HostId>,
    /// Resources taken.
    pub resources: Resources,
    /// Group, if any.
    pub group: Option<GroupId>,
    /// Commitment paying for it.
    pub coverage: Coverage,
    /// Billed quantity (1 for instances, vCPUs for pools).
    qty: f64,
    /// Fixed part of the rate (pool memory), $/h.
    fixed_per_h: f64,
    /// Egress, $/h, billed whatever the coverage.
    egress_per_h: f64,
    /// Price integral at the start.
    start_accrued: f64,
    /// Billing start.
    pub start: SimTime,
}

/// The engine's mutable view of the world. Read by policies, changed only by the engine.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Static facts.
    pub catalog: Catalog,
    /// Cost rules.
    pub cost: CostModel,
    /// Per-offer dynamic state, indexed like `catalog.offers`.
    pub offers: Vec<OfferState>,
    /// Region health, indexed like `catalog.regions`.
    pub region_healthy: Vec<bool>,
    /// Zone health, indexed like `catalog.zones`.
    pub zone_healthy: Vec<bool>,
    /// Host pools, indexed like `catalog.pools`.
    pub pools: Vec<HostPool>,
    /// Spread of all instances.
    pub spread: SpreadCounts,
    /// Spread and spend per group.
    pub groups: DetHashMap<GroupId, SpreadCounts>,
    /// Hard spend caps per group, $/h.
    pub group_budgets: BTreeMap<GroupId, f64>,
    /// Half-life of the interruption-rate estimate.
    pub interruption_half_life: SimDuration,
    commitment_used: Vec<f64>,
    rate_by_provider: [f64; 4],
}

impl Snapshot {
    /// A fresh world: list prices from the catalog, everything healthy, nothing running.
    pub fn new(catalog: Catalog, cost: CostModel) -> Self {
        let offers = catalog
            .offers
            .iter()
            .map(|o| OfferState {
                on_demand: PriceIntegral::new(o.on_demand_per_h),
                spot: o.spot_per_h.map(PriceIntegral::new),
                in_use: 0,
                avoid_until: [SimTime::ZERO; 2],
                interruptions_per_h: 0.0,
                interruptions_at: SimTime::ZERO,
                billed_qty: [0.0; 2],
            })
            .collect();
        let pools = catalog.pools.iter().map(|p| HostPool::new(p.hosts, p.host)).collect();
        let mut snap = Snapshot {
            region_healthy: vec![true; catalog.regions.len()],
            zone_healthy: vec![true; catalog.zones.len()],
            offers,
            pools,
            spread: SpreadCounts::default(),
            groups: DetHashMap::default(),
            group_budgets: BTreeMap::new(),
            interruption_half_life: SimDuration::from_secs(3600),
            commitment_used: vec![0.0; cost.commitments.len()],
            rate_by_provider: [0.0; 4],
            catalog,
            cost,
        };
        for (i, p) in snap.catalog.pools.iter().enumerate() {
            snap.pools[i].prepare(p.fit);
        }
        snap
    }

    /// The fleet's spend rate in $/h, commitment fees included.
    pub fn spend_rate(&self) -> f64 {
        self.cost.commitment_fees_per_h() + self.rate_by_provider.iter().sum::<f64>()
    }
    /// Uncovered spend rate by provider, $/h (commitment fees not included).
    pub fn spend_rate_by_provider(&self) -> [f64; 4] {
        self.rate_by_provider.map(|r| r.max(0.0))
    }
    /// A group's spend rate, $/h, at current prices.
    pub fn group_spend_rate(&self, g: GroupId) -> f64 {
        let Some(counts) = self.groups.get(&g) else { return 0.0 };
        counts
            .spend
            .iter()
            .map(|(&(o, m), &(qty, fixed))| {
                let st = &self.offers[o.idx()];
                let p = if m == 0 { st.on_demand.price_per_h } else { st.spot.map_or(0.0, |s| s.price_per_h) };
                qty * p + fixed
            })
            .sum()
    }
    /// The counts a request is spread against: its group's (empty while the group has no instance),
    /// or the whole fleet's when it names no group.
    pub(crate) fn spread_for(&self, group: Option<GroupId>) -> &SpreadCounts {
        match group {
            Some(g) => self.groups.get(&g).unwrap_or(&NO_SPREAD),
            None => &self.spread,
        }
    }
    /// Whether a zone and its region are healthy.
    pub fn location_healthy(&self, region: RegionId, zone: ZoneId) -> bool {
        self.region_healthy[region.idx()] && self.zone_healthy[zone.idx()]
    }

    /// Every feasible candidate for `req` at `now`, in catalog order (on-demand before spot),
    /// or the reason there is none. Feasible means: allowed by the request, big enough, healthy,
    /// not avoided after a recent failure, with capacity, within the request's max price and
    /// within the fleet's and the group's budget caps.
    pub fn candidates(&self, req: &VmRequest, now: SimTime) -> Result<Vec<Candidate>, RejectReason> {
        let mut out = Vec::new();
        self.for_each_candidate(req, now, |c| out.push(*c))?;
        Ok(out)
    }

    /// Calls `f` on every feasible candidate, as [`Snapshot::candidates`] lists them, without
    /// allocating. Returns the reason there was none if `f` was never called.
    pub fn for_each_candidate(
        &self,
        req: &VmRequest,
        now: SimTime,
        mut f: impl FnMut(&Candidate),
    ) -> Result<(), RejectReason> {
        let mut found = false;
        let mut seen = RejectReason::NoMatchingOffer;
        let fleet_rate = self.spend_rate();
        let fleet_cap = self.cost.max_per_h;
        let group_cap = req.group.and_then(|g| self.group_budgets.get(&g).copied());
        let group_rate = match (group_cap, req.group) {
            (Some(_), Some(g)) => self.group_spend_rate(g),
            _ => 0.0,
        };
        let escalate = |seen: &mut RejectReason, r: RejectReason| {
            let rank = |r: RejectReason| match r {
                RejectReason::NoMatchingOffer => 0,
                RejectReason::NoCapacity => 1,
                RejectReason::OverMaxPrice => 2,
                RejectReason::OverBudget => 3,
                RejectReason::ProvisioningFailed => 4,
            };
            if rank(r) > rank(*seen) {
                *seen = r;
            }
        };
        for offer in &self.catalog.offers {
            let region = &self.catalog.regions[offer.region.idx()];
            if !req.allows(region.provider, offer.region, offer.zone) || !self.catalog.offer_fits(offer, &req.resources)
            {
                continue;
            }
            let st = &self.offers[offer.id.idx()];
            escalate(&mut seen, RejectReason::NoCapacity);
            if !self.location_healthy(offer.region, offer.zone) {
                continue;
            }
            let (host, free_capacity) = match offer.kind {
                OfferKind::Instance(_) => {
                    if st.in_use >= offer.capacity {
                        continue;
                    }
                    (None, offer.capacity - st.in_use)
                }
                OfferKind::Pool(p) => {
                    let pool = &self.pools[p.idx()];
                    let Some(h) = pool.find_shared(self.catalog.pools[p.idx()].fit, &req.resources) else { continue };
                    let (used_cpu, _) = pool.used();
                    let total_cpu = pool.len() as u64 * pool.host_capacity().vcpu as u64;
                    let free = (total_cpu - used_cpu.min(total_cpu)) / req.resources.vcpu.max(1) as u64;
                    (Some(h), free.min(u32::MAX as u64) as u32)
                }
            };
            for market in [Market::OnDemand, Market::Spot] {
                if market == Market::Spot && !req.spot_allowed {
                    continue;
                }
                let Some(price) = st.price(market) else { continue };
                if st.avoid_until[market_idx(market)] > now {
                    continue;
                }
                let price_per_h = self.catalog.price_for(offer, price.price_per_h, &req.resources);
                if req.max_price_per_h.is_some_and(|max| price_per_h > max) {
                    escalate(&mut seen, RejectReason::OverMaxPrice);
                    continue;
                }
                let coverage = if market == Market::OnDemand {
                    self.coverage_for(offer.id, region.provider, price_per_h)
                } else {
                    Coverage::None
                };
                let egress_per_h = if req.egress_gib_per_h > 0.0 {
                    let per_gib = match req.users_near {
                        Some(u) => self.cost.egress.per_gib(&self.catalog, offer.region, u, false),
                        None => self.cost.egress.inter_cloud_per_gib,
                    };
                    req.egress_gib_per_h * per_gib
                } else {
                    0.0
                };
                let marginal_per_h = if coverage == Coverage::None { price_per_h } else { 0.0 } + egress_per_h;
                let over_fleet = fleet_cap.is_some_and(|cap| fleet_rate + marginal_per_h > cap + 1e-9);
                let over_group = group_cap.is_some_and(|cap| group_rate + marginal_per_h > cap + 1e-9);
                if over_fleet || over_group {
                    escalate(&mut seen, RejectReason::OverBudget);
                    continue;
                }
                found = true;
                f(&Candidate {
                    offer: offer.id,
                    market,
                    region: offer.region,
                    zone: offer.zone,
                    provider: region.provider,
                    price_per_h,
                    marginal_per_h,
                    egress_per_h,
                    host,
                    coverage,
                    free_capacity,
                });
            }
        }
        if found { Ok(()) } else { Err(seen) }
    }

    fn coverage_for(&self, offer: OfferId, provider: Provider, price_per_h: f64) -> Coverage {
        for (i, c) in self.cost.commitments.iter().enumerate() {
            match *c {
                Commitment::Reserved { offer: o, count, .. }
                    if o == offer && self.commitment_used[i] < count as f64 =>
                {
                    return Coverage::Reserved(i as u16);
                }
                Commitment::SavingsPlan { provider: p, committed_per_h, discount } if p == provider => {
                    let need = price_per_h * (1.0 - discount);
                    if self.commitment_used[i] + need <= committed_per_h + 1e-12 {
                        return Coverage::SavingsPlan(i as u16, need);
                    }
                }
                _ => {}
            }
        }
        Coverage::None
    }

    /// Takes the resources, capacity, budget and commitment a candidate needs. The caller has just
    /// obtained `cand` from [`Snapshot::candidates`] (or a policy built on it) at `now`.
    pub fn allocate(&mut self, req: &VmRequest, cand: &Candidate, now: SimTime) -> Charge {
        let offer = &self.catalog.offers[cand.offer.idx()];
        let (qty, fixed_per_h) = match offer.kind {
            OfferKind::Instance(_) => (1.0, 0.0),
            OfferKind::Pool(_) => {
                (req.resources.vcpu as f64, offer.per_gib_h * req.resources.memory_mib as f64 / 1024.0)
            }
        };
        if let OfferKind::Pool(p) = offer.kind
            && let Some(h) = cand.host
        {
            self.pools[p.idx()].allocate(h, &req.resources);
        }
        let st = &mut self.offers[cand.offer.idx()];
        st.in_use = st.in_use.saturating_add(1);
        let start_accrued = st.price(cand.market).map_or(0.0, |p| p.at(now));
        match cand.coverage {
            Coverage::None => {
                st.billed_qty[market_idx(cand.market)] += qty;
                let unit = st.price(cand.market).map_or(0.0, |p| p.price_per_h);
                self.rate_by_provider[cand.provider.index()] += qty * unit + fixed_per_h;
            }
            Coverage::Reserved(i) => self.commitment_used[i as usize] += 1.0,
            Coverage::SavingsPlan(i, amount) => self.commitment_used[i as usize] += amount,
        }
        self.rate_by_provider[cand.provider.index()] += cand.egress_per_h;
        self.spread.add(cand.provider, cand.region, cand.zone, 1);
        if let Some(g) = req.group {
            let counts = self.groups.entry(g).or_default();
            counts.add(cand.provider, cand.region, cand.zone, 1);
            let (q, f) = if cand.coverage == Coverage::None { (qty, fixed_per_h) } else { (0.0, 0.0) };
            if q > 0.0 || f + cand.egress_per_h > 0.0 {
                let e = counts.spend.entry((cand.offer, market_idx(cand.market) as u8)).or_default();
                e.0 += q;
                e.1 += f + cand.egress_per_h;
            }
        }
        Charge {
            offer: cand.offer,
            market: cand.market,
            host: cand.host,
            resources: req.resources,
            group: req.group,
            coverage: cand.coverage,
            qty,
            fixed_per_h,
            egress_per_h: cand.egress_per_h,
            start_accrued,
            start: now,
        }
    }

    /// Gives back what [`Snapshot::allocate`] took and returns the bill for `[start, now)`,
    /// after billing granularity and minimum charge. Covered instances cost nothing here
    /// (their commitment's fee is charged for the whole run).
    pub fn release(&mut self, charge: &Charge, now: SimTime) -> f64 {
        let bill = self.bill(charge, now);
        let offer = &self.catalog.offers[charge.offer.idx()];
        let provider = self.catalog.regions[offer.region.idx()].provider;
        let (region, zone) = (offer.region, offer.zone);
        if let (OfferKind::Pool(p), Some(h)) = (&offer.kind, charge.host) {
            self.pools[p.idx()].release(h, &charge.resources);
        }
        let st = &mut self.offers[charge.offer.idx()];
        st.in_use = st.in_use.saturating_sub(1);
        match charge.coverage {
            Coverage::None => {
                let m = market_idx(charge.market);
                st.billed_qty[m] = (st.billed_qty[m] - charge.qty).max(0.0);
                let unit = st.price(charge.market).map_or(0.0, |p| p.price_per_h);
                let r = &mut self.rate_by_provider[provider.index()];
                *r = (*r - (charge.qty * unit + charge.fixed_per_h)).max(0.0);
            }
            Coverage::Reserved(i) => {
                let u = &mut self.commitment_used[i as usize];
                *u = (*u - 1.0).max(0.0);
            }
            Coverage::SavingsPlan(i, amount) => {
                let u = &mut self.commitment_used[i as usize];
                *u = (*u - amount).max(0.0);
            }
        }
        let r = &mut self.rate_by_provider[provider.index()];
        *r = (*r - charge.egress_per_h).max(0.0);
        self.spread.add(provider, region, zone, -1);
        if let Some(g) = charge.group
            && let Some(counts) = self.groups.get_mut(&g)
        {
            counts.add(provider, region, zone, -1);
            let (q, f) = if charge.coverage == Coverage::None { (charge.qty, charge.fixed_per_h) } else { (0.0, 0.0) };
            let key = (charge.offer, market_idx(charge.market) as u8);
            if let Some(e) = counts.spend.get_mut(&key) {
                e.0 -= q;
                e.1 -= f + charge.egress_per_h;
                if e.0 <= 1e-9 && e.1 <= 1e-9 {
                    counts.spend.remove(&key);
                }
            }
            if counts.total == 0 {
                self.groups.remove(&g);
            }
        }
        bill
    }

    /// What an instance costs for `[start, now)`: the integral of its price, rounded up to the
    /// billing granularity, at least the minimum charge (zero when a commitment pays for it),
    /// plus its egress for the time used.
    pub fn bill(&self, charge: &Charge, now: SimTime) -> f64 {
        let used = now.since(charge.start);
        // Egress is billed on use, whoever pays for the instance.
        let egress = charge.egress_per_h * used.as_hours_f64();
        if charge.coverage != Coverage::None {
            return egress;
        }
        let st = &self.offers[charge.offer.idx()];
        let (unit, accrued) = st.price(charge.market).map_or((0.0, 0.0), |p| (p.price_per_h, p.at(now)));
        let billed = self.cost.billing.billed_duration(used);
        let extra_h = billed.as_hours_f64() - used.as_hours_f64();
        charge.qty * (accrued - charge.start_accrued)
            + charge.fixed_per_h * used.as_hours_f64()
            + (charge.qty * unit + charge.fixed_per_h) * extra_h
            + egress
    }

    /// A new price for one market of an offer, from `now` on.
    pub fn set_price(&mut self, offer: OfferId, market: Market, price_per_h: f64, now: SimTime) {
        let Some(o) = self.catalog.offers.get(offer.idx()) else { return };
        let provider = self.catalog.regions[o.region.idx()].provider;
        let st = &mut self.offers[offer.idx()];
        let qty = st.billed_qty[market_idx(market)];
        let slot = match market {
            Market::OnDemand => Some(&mut st.on_demand),
            Market::Spot => st.spot.as_mut(),
        };
        if let Some(p) = slot {
            let old = p.price_per_h;
            p.set(now, price_per_h);
            let r = &mut self.rate_by_provider[provider.index()];
            *r = (*r + qty * (price_per_h - old)).max(0.0);
        }
    }

    /// Records a spot interruption on an offer and blocks its spot market until `block_until`.
    pub fn record_interruption(&mut self, offer: OfferId, now: SimTime, block_until: SimTime) {
        let half_life = self.interruption_half_life;
        if let Some(st) = self.offers.get_mut(offer.idx()) {
            let hl_h = half_life.as_hours_f64().max(1e-9);
            st.interruptions_per_h = decay(st.interruptions_per_h, now.since(st.interruptions_at), half_life)
                + std::f64::consts::LN_2 / hl_h;
            st.interruptions_at = now;
            st.avoid_until[1] = st.avoid_until[1].max(block_until);
        }
    }

    /// Avoids one market of an offer until `until` (after a capacity failure).
    pub fn avoid(&mut self, offer: OfferId, market: Market, until: SimTime) {
        if let Some(st) = self.offers.get_mut(offer.idx()) {
            let slot = &mut st.avoid_until[market_idx(market)];
            *slot = (*slot).max(until);
        }
    }

    /// Makes the pools' indices ready for a bin-packing policy's fit.
    pub fn prepare_fit(&mut self, fit: Fit) {
        for p in &mut self.pools {
            p.prepare(fit);
        }
    }
}
