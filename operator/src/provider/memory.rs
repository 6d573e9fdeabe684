//! An in-memory cloud: instances live in a map, and a test (or a local run) drives what the
//! cloud does — boots, outages, interruptions, API errors — through its control methods.
//!
//! It behaves like a real control plane where it matters to the operator: create is idempotent on
//! the client token (and refuses a token reused for a different request), delete of an instance
//! already gone succeeds, instances are tagged with their owner and slot, an outage kills the
//! region's instances and fails create calls there, and nothing is reported that a real cloud
//! would not report.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use engine::{FailureCause, Market, Provider};
use futures::future::{BoxFuture, FutureExt};

use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, InstanceState, InstanceTypeInfo,
    OfferInfo, PriceQuote, ProviderError, ProviderResult, RegionInfo,
};

#[derive(Debug, Default)]
struct State {
    catalog: CloudCatalog,
    instances: BTreeMap<String, CloudInstance>,
    tokens: BTreeMap<String, String>,
    next_id: u64,
    down: BTreeSet<String>,
    failures: VecDeque<ProviderError>,
    delete_failures: u32,
    boot_on_list: bool,
    create_calls: u64,
    delete_calls: u64,
    prices: BTreeMap<(String, String, String, bool), f64>,
    metrics: BTreeMap<String, InstanceMetrics>,
    boot_on_get: bool,
    boot_failures: u32,
    id_prefix: String,
}

/// The in-memory cloud. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryCloud {
    state: Mutex<State>,
}

impl MemoryCloud {
    /// Sets what [`CloudProvider::metrics`] reports for instance `id` from now on.
    pub fn set_metrics(&self, id: &str, metrics: InstanceMetrics) {
        self.lock().metrics.insert(id.to_owned(), metrics);
    }

    /// A cloud selling `catalog`; instances stay `Pending` until [`MemoryCloud::boot_all`].
    pub fn new(catalog: CloudCatalog) -> Self {
        MemoryCloud { state: Mutex::new(State { catalog, ..State::default() }) }
    }

    /// The three regions of the seed manifest (`aws-us-east-1` alias `aws-us-east`,
    /// `azure-eastus`, `gcp-us-central1` alias `gcp-us-central`), two zones each, one 2 vCPU /
    /// 8 GiB type per cloud at the prices of `scenarios/seed-manifest.toml`.
    pub fn seed_catalog() -> CloudCatalog {
        let region = |name: &str, alias: &[&str], provider, zones: [&str; 2], location| RegionInfo {
            name: name.into(),
            aliases: alias.iter().map(|a| (*a).to_owned()).collect(),
            provider,
            zones: zones.iter().map(|z| (*z).to_owned()).collect(),
            location,
            carbon_g_per_kwh: 400.0,
        };
        let regions = vec![
            region("aws-us-east-1", &["aws-us-east"], Provider::Aws, ["us-east-1a", "us-east-1b"], (38.9, -77.4)),
            region("azure-eastus", &[], Provider::Azure, ["1", "2"], (37.4, -79.2)),
            region("gcp-us-central1", &["gcp-us-central"], Provider::Gcp, ["a", "b"], (41.3, -95.9)),
        ];
        let itype = |name: &str| InstanceTypeInfo { name: name.into(), vcpu: 2, memory_gib: 8.0, gpu: 0 };
        let instance_types = vec![itype("m5.large"), itype("D2s_v5"), itype("n2-standard-2")];
        let mut offers = Vec::new();
        for (r, t, od, spot) in [
            (&regions[0], "m5.large", 0.096, 0.038),
            (&regions[1], "D2s_v5", 0.096, 0.042),
            (&regions[2], "n2-standard-2", 0.0971, 0.0235),
        ] {
            for z in &r.zones {
                offers.push(OfferInfo {
                    region: r.name.clone(),
                    zone: z.clone(),
                    instance_type: t.into(),
                    on_demand_per_h: od,
                    spot_per_h: Some(spot),
                    capacity: 40,
                });
            }
        }
        CloudCatalog { regions, instance_types, offers }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock poisons it; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every instance that is still pending run now.
    pub fn boot_all(&self) {
        let mut s = self.lock();
        let State { instances, boot_failures, .. } = &mut *s;
        for i in instances.values_mut() {
            boot(i, boot_failures);
        }
    }

    /// When on, pending instances run as soon as they are listed (a local run without a script).
    pub fn set_boot_on_list(&self, on: bool) {
        self.lock().boot_on_list = on;
    }

    /// Instance ids start with `prefix` from now on (`aws-i-00000001`), so that the ids of
    /// several in-memory clouds behind one router never collide.
    pub fn set_id_prefix(&self, prefix: &str) {
        self.lock().id_prefix = prefix.to_owned();
    }

    /// When on, a pending instance runs when [`CloudProvider::get`] reads it (a caller polling
    /// an instance until it is healthy, as a migration does).
    pub fn set_boot_on_get(&self, on: bool) {
        self.lock().boot_on_get = on;
    }

    /// The next `n` instances that would boot crash instead (`Lost(Crashed)`), whichever way they
    /// boot ([`MemoryCloud::boot_all`], boot on list, boot on get).
    pub fn fail_next_boots(&self, n: u32) {
        self.lock().boot_failures += n;
    }

    /// A region goes down: its instances are lost (`Outage`) and create calls there fail.
    pub fn fail_region(&self, region: &str) {
        let mut s = self.lock();
        s.down.insert(region.to_owned());
        for i in s.instances.values_mut() {
            if i.region == region && i.is_live() {
                i.state = InstanceState::Lost(FailureCause::Outage);
            }
        }
    }

    /// A region comes back (its lost instances stay lost).
    pub fn restore_region(&self, region: &str) {
        self.lock().down.remove(region);
    }

    /// The next create calls fail with these errors, in order.
    pub fn fail_next_creates(&self, errors: impl IntoIterator<Item = ProviderError>) {
        self.lock().failures.extend(errors);
    }

    /// The next `n` delete calls fail with an API error.
    pub fn fail_next_deletes(&self, n: u32) {
        self.lock().delete_failures += n;
    }

    /// Every offer in a region can hold `capacity` instances (per zone and type) from now on.
    pub fn set_capacity(&self, region: &str, capacity: u32) {
        for o in self.lock().catalog.offers.iter_mut().filter(|o| o.region == region) {
            o.capacity = capacity;
        }
    }

    /// An instance dies on its own.
    pub fn crash(&self, id: &str) {
        if let Some(i) = self.lock().instances.get_mut(id) {
            i.state = InstanceState::Lost(FailureCause::Crashed);
        }
    }

    /// A spot instance gets its interruption notice.
    pub fn interrupt(&self, id: &str, at_ms: u64) {
        if let Some(i) = self.lock().instances.get_mut(id) {
            i.state = InstanceState::Interrupting { at_ms };
        }
    }

    /// Sets the current price of an offer's market.
    pub fn set_price(&self, region: &str, zone: &str, instance_type: &str, market: Market, price_per_h: f64) {
        let key = (region.to_owned(), zone.to_owned(), instance_type.to_owned(), market == Market::Spot);
        self.lock().prices.insert(key, price_per_h);
    }

    /// Instances not terminated (lost ones included: a real cloud may still bill them).
    pub fn live_instances(&self) -> Vec<CloudInstance> {
        self.lock().instances.values().filter(|i| i.is_live()).cloned().collect()
    }

    /// Every instance ever created, terminated ones included.
    pub fn all_instances(&self) -> Vec<CloudInstance> {
        self.lock().instances.values().cloned().collect()
    }

    /// Create calls received (including failed and idempotent ones).
    pub fn create_calls(&self) -> u64 {
        self.lock().create_calls
    }

    /// Delete calls received.
    pub fn delete_calls(&self) -> u64 {
        self.lock().delete_calls
    }

    fn do_create(&self, r: CreateRequest) -> ProviderResult<CloudInstance> {
        let mut s = self.lock();
        s.create_calls += 1;
        if let Some(id) = s.tokens.get(&r.client_token).cloned() {
            let existing = s.instances.get(&id).cloned();
            return match existing {
                Some(i)
                    if i.region == r.region
                        && i.zone == r.zone
                        && i.instance_type == r.instance_type
                        && i.market == r.market
                        && i.owner_uid == r.owner_uid
                        && i.slot == r.slot =>
                {
                    Ok(i)
                }
                _ => Err(ProviderError::TokenMismatch(r.client_token)),
            };
        }
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        if s.down.contains(&r.region) {
            return Err(ProviderError::Api(format!("region {} is unavailable", r.region)));
        }
        let offer = s
            .catalog
            .offers
            .iter()
            .find(|o| o.region == r.region && o.zone == r.zone && o.instance_type == r.instance_type);
        let Some(offer) = offer else {
            return Err(ProviderError::Api(format!("no offer of {} in {}/{}", r.instance_type, r.region, r.zone)));
        };
        if r.market == Market::Spot && offer.spot_per_h.is_none() {
            return Err(ProviderError::Api(format!("no spot market for {} in {}", r.instance_type, r.zone)));
        }
        let capacity = offer.capacity as usize;
        let used = s
            .instances
            .values()
            .filter(|i| i.is_live() && i.region == r.region && i.zone == r.zone && i.instance_type == r.instance_type)
            .count();
        if used >= capacity {
            return Err(ProviderError::InsufficientCapacity(format!("{} in {}", r.instance_type, r.zone)));
        }
        s.next_id += 1;
        let id = format!("{}i-{:08x}", s.id_prefix, s.next_id);
        let inst = CloudInstance {
            id: id.clone(),
            client_token: r.client_token.clone(),
            owner_uid: r.owner_uid,
            slot: r.slot,
            region: r.region,
            zone: r.zone,
            instance_type: r.instance_type,
            market: r.market,
            state: InstanceState::Pending,
        };
        s.tokens.insert(r.client_token, id.clone());
        s.instances.insert(id, inst.clone());
        Ok(inst)
    }
}

/// A pending instance runs, or crashes while failures are scripted.
fn boot(i: &mut CloudInstance, failures: &mut u32) {
    if i.state == InstanceState::Pending {
        if *failures > 0 {
            *failures -= 1;
            i.state = InstanceState::Lost(FailureCause::Crashed);
        } else {
            i.state = InstanceState::Running;
        }
    }
}

impl CloudProvider for MemoryCloud {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        let c = self.lock().catalog.clone();
        async move { Ok(c) }.boxed()
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        let r = self.do_create(request);
        async move { r }.boxed()
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        let mut s = self.lock();
        let boot_on_get = s.boot_on_get;
        let State { instances, boot_failures, .. } = &mut *s;
        let i = instances.get_mut(id).map(|i| {
            if boot_on_get {
                boot(i, boot_failures);
            }
            i.clone()
        });
        async move { Ok(i) }.boxed()
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        let mut s = self.lock();
        s.delete_calls += 1;
        if s.delete_failures > 0 {
            s.delete_failures -= 1;
            let e = ProviderError::Api(format!("delete {id} failed"));
            return async move { Err(e) }.boxed();
        }
        if let Some(i) = s.instances.get_mut(id) {
            i.state = InstanceState::Terminated;
        }
        async move { Ok(()) }.boxed()
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        let mut s = self.lock();
        if s.boot_on_list {
            let State { instances, boot_failures, .. } = &mut *s;
            for i in instances.values_mut() {
                boot(i, boot_failures);
            }
        }
        let v: Vec<CloudInstance> = s.instances.values().filter(|i| i.owner_uid == owner_uid).cloned().collect();
        async move { Ok(v) }.boxed()
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        let s = self.lock();
        let mut out = Vec::new();
        for o in &s.catalog.offers {
            let markets = [(Market::OnDemand, Some(o.on_demand_per_h)), (Market::Spot, o.spot_per_h)];
            for (market, base) in markets {
                let Some(base) = base else { continue };
                let key = (o.region.clone(), o.zone.clone(), o.instance_type.clone(), market == Market::Spot);
                out.push(PriceQuote {
                    region: o.region.clone(),
                    zone: o.zone.clone(),
                    instance_type: o.instance_type.clone(),
                    market,
                    price_per_h: s.prices.get(&key).copied().unwrap_or(base),
                });
            }
        }
        async move { Ok(out) }.boxed()
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        let v = self.lock().down.iter().cloned().collect();
        async move { Ok(v) }.boxed()
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        let s = self.lock();
        let r = match s.instances.get(id) {
            Some(_) => {
                Ok(s.metrics.get(id).cloned().unwrap_or(InstanceMetrics { window_s: 300, ..Default::default() }))
            }
            None => Err(ProviderError::Api(format!("no instance {id}"))),
        };
        async move { r }.boxed()
    }
}
