//! The domain model: providers, regions, zones, instance types, offers, host pools and VM requests.
//!
//! Static facts live in a [`Catalog`], built once and validated by [`Catalog::new`]. Everything is
//! addressed by dense indices ([`RegionId`], [`OfferId`], ...) so the hot path never hashes strings.

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, SimTime};
use crate::{Error, Result};

/// A cloud provider, or the operator's own data centres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
    /// Google Cloud Platform.
    Gcp,
    /// On-premises host pools.
    #[serde(alias = "on-prem")]
    Onprem,
}

impl Provider {
    /// All providers, in a fixed order used for reports and bit sets.
    pub const ALL: [Provider; 4] = [Provider::Aws, Provider::Azure, Provider::Gcp, Provider::Onprem];

    /// Lower-case name, as in scenarios and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
            Provider::Onprem => "onprem",
        }
    }
    /// Position in [`Provider::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);
        impl $name {
            /// The index as `usize`, for slices.
            pub fn idx(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(/// Index of a region in the [`Catalog`].
    RegionId(u16));
id_type!(/// Index of a zone in the [`Catalog`] (zones are numbered across all regions).
    ZoneId(u16));
id_type!(/// Index of an instance type in the [`Catalog`].
    InstanceTypeId(u16));
id_type!(/// Index of an offer in the [`Catalog`].
    OfferId(u32));
id_type!(/// Index of an on-prem host pool in the [`Catalog`].
    PoolId(u16));
id_type!(/// A host inside a pool, numbered from zero.
    HostId(u32));
id_type!(/// A logical VM: one request, however many cloud instances serve it over its life.
    VmId(u64));
id_type!(/// One cloud instance (or on-prem VM) the engine asked for. Allocated by the engine.
    InstanceId(u64));
id_type!(/// A group of VMs spread together (a deployment, a cluster).
    GroupId(u32));

/// Compute resources, of a request or of an instance type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// GPUs.
    pub gpu: u32,
}

impl Resources {
    /// Whether `self` (a request) fits into `other` (a type or free capacity).
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.vcpu <= other.vcpu && self.memory_mib <= other.memory_mib && self.gpu <= other.gpu
    }
}

/// A region: a provider's location, or an on-prem site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Unique name, such as `aws-us-east-1`.
    pub name: String,
    /// Who runs it.
    pub provider: Provider,
    /// Zones of this region, indices into [`Catalog::zones`].
    pub zones: Vec<ZoneId>,
    /// Grid carbon intensity, gCO2e per kWh.
    pub carbon_g_per_kwh: f64,
}

/// An availability zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Zone name, unique within its region (`a`, `b`, `us-east-1a`, ...).
    pub name: String,
    /// The region it belongs to.
    pub region: RegionId,
}

/// A machine shape sold by a cloud.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    /// Provider-specific name such as `m5.large`.
    pub name: String,
    /// What one instance offers.
    pub resources: Resources,
}

/// What an offer sells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OfferKind {
    /// Whole instances of one type; a request is served by one instance whose type covers it.
    Instance(InstanceTypeId),
    /// Request-sized VMs packed onto the hosts of an on-prem pool.
    Pool(PoolId),
}

/// Something that can be bought at a location: an instance type in a zone, or room in a host pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Its own index.
    pub id: OfferId,
    /// Where.
    pub region: RegionId,
    /// Which zone.
    pub zone: ZoneId,
    /// What.
    pub kind: OfferKind,
    /// On-demand price in $/h at the start (instances), or per vCPU-hour (pools).
    pub on_demand_per_h: f64,
    /// Spot price in $/h at the start, if the offer has a spot market.
    pub spot_per_h: Option<f64>,
    /// For pools: price per GiB-hour of memory, added to the vCPU price.
    pub per_gib_h: f64,
    /// How many instances can run at once (for pools: ignored, hosts decide).
    pub capacity: u32,
}

/// How VMs are packed onto the hosts of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// The lowest-numbered host with room.
    #[default]
    FirstFit,
    /// The host with the least free vCPU that still fits (ties: less free memory, lower number).
    BestFit,
    /// The host with the most free vCPU (ties: more free memory, then the higher number).
    WorstFit,
}

/// An on-prem pool of identical hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// Offer through which the pool is sold.
    pub offer: OfferId,
    /// Number of hosts.
    pub hosts: u32,
    /// Capacity of each host.
    pub host: Resources,
    /// Packing used when a policy that is not itself a bin-packing policy places onto this pool.
    pub fit: Fit,
}

/// The market an instance is bought in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    /// Pay as you go, never interrupted by the provider.
    OnDemand,
    /// Spare capacity at a discount, interruptible with a notice.
    Spot,
}

impl Market {
    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Market::OnDemand => "on-demand",
            Market::Spot => "spot",
        }
    }
}

/// A request for one VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmRequest {
    /// The logical VM.
    pub id: VmId,
    /// What it needs.
    pub resources: Resources,
    /// Allowed providers as a bit set over [`Provider::index`]; `0` means any.
    pub providers: u8,
    /// Allowed regions; empty means any.
    pub regions: Vec<RegionId>,
    /// Allowed zones; empty means any.
    pub zones: Vec<ZoneId>,
    /// Highest acceptable price in $/h.
    pub max_price_per_h: Option<f64>,
    /// Whether a spot instance may serve it.
    pub spot_allowed: bool,
    /// Expected lifetime, if the requester knows it.
    pub lifetime_hint: Option<SimDuration>,
    /// Where its users are, for latency-aware placement.
    pub users_near: Option<RegionId>,
    /// Group for spreading (a deployment); VMs in one group are spread against each other.
    pub group: Option<GroupId>,
    /// Data the VM sends to its users, GiB per hour: billed at the egress price from the VM's
    /// region to `users_near` (or out to the internet when no users' region is given).
    pub egress_gib_per_h: f64,
}

impl VmRequest {
    /// A request for `resources` with no constraints.
    pub fn new(id: VmId, resources: Resources) -> Self {
        VmRequest {
            id,
            resources,
            providers: 0,
            regions: Vec::new(),
            zones: Vec::new(),
            max_price_per_h: None,
            spot_allowed: false,
            lifetime_hint: None,
            users_near: None,
            group: None,
            egress_gib_per_h: 0.0,
        }
    }
    /// Whether the request may run at `region`/`zone` of `provider`.
    pub fn allows(&self, provider: Provider, region: RegionId, zone: ZoneId) -> bool {
        (self.providers == 0 || self.providers & (1 << provider.index()) != 0)
            && (self.regions.is_empty() || self.regions.contains(&region))
            && (self.zones.is_empty() || self.zones.contains(&zone))
    }
}

/// Where an instance was placed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The offer bought.
    pub offer: OfferId,
    /// The market it was bought in.
    pub market: Market,
    /// For pools, the host.
    pub host: Option<HostId>,
    /// The price at decision time, $/h.
    pub price_per_h: f64,
}

/// Life of a logical VM, as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    /// Waiting for a placement (retrying after an error, or queued).
    Pending,
    /// An instance was asked for and is starting.
    Provisioning,
    /// Serving.
    Running,
    /// Lost its instance (failure, outage, interruption) and is being recovered.
    Recovering,
    /// Released by its owner; instances are being deleted.
    Terminated,
    /// Could not be placed.
    Rejected,
}

/// Static facts about the world: validated once, shared read-only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Regions.
    pub regions: Vec<Region>,
    /// Zones across all regions.
    pub zones: Vec<Zone>,
    /// Instance types.
    pub instance_types: Vec<InstanceType>,
    /// Offers, in a fixed order that breaks ties between equal offers.
    pub offers: Vec<Offer>,
    /// On-prem pools.
    pub pools: Vec<PoolSpec>,
    /// One-way latency between regions in milliseconds, `regions.len()`² entries, row-major.
    pub latency_ms: Vec<f64>,
}

impl Catalog {
    /// Checks internal consistency: indices in range, prices finite and non-negative,
    /// the latency matrix square.
    pub fn new(
        regions: Vec<Region>,
        zones: Vec<Zone>,
        instance_types: Vec<InstanceType>,
        offers: Vec<Offer>,
        pools: Vec<PoolSpec>,
        latency_ms: Vec<f64>,
    ) -> Result<Self> {
        let bad = |what: String| Err(Error::InvalidCatalog(what));
        if regions.len() > u16::MAX as usize || zones.len() > u16::MAX as usize {
            return bad("too many regions or zones (at most 65535)".into());
        }
        if latency_ms.len() != regions.len() * regions.len() {
            return bad(format!(
                "latency matrix has {} entries, expected {}",
                latency_ms.len(),
                regions.len() * regions.len()
            ));
        }
        for z in &zones {
            if z.region.idx() >= regions.len() {
                return bad(format!("zone {} names region #{} which does not exist", z.name, z.region.0));
            }
        }
        for (i, o) in offers.iter().enumerate() {
            if o.id.idx() != i {
                return bad(format!("offer #{i} carries id {}", o.id.0));
            }
            if o.region.idx() >= regions.len() || o.zone.idx() >= zones.len() || zones[o.zone.idx()].region != o.region
            {
                return bad(format!("offer #{i} names a zone outside its region"));
            }
            let prices_ok = o.on_demand_per_h.is_finite()
                && o.on_demand_per_h >= 0.0
                && o.per_gib_h.is_finite()
                && o.per_gib_h >= 0.0
                && o.spot_per_h.is_none_or(|p| p.is_finite() && p >= 0.0);
            if !prices_ok {
                return bad(format!("offer #{i} has a negative or non-finite price"));
            }
            match o.kind {
                OfferKind::Instance(t) if t.idx() >= instance_types.len() => {
                    return bad(format!("offer #{i} names instance type #{} which does not exist", t.0));
                }
                OfferKind::Pool(p) if p.idx() >= pools.len() || pools[p.idx()].offer != o.id => {
                    return bad(format!("offer #{i} names pool #{} which does not point back to it", p.0));
                }
                _ => {}
            }
        }
        for p in &pools {
            if p.offer.idx() >= offers.len() {
                return bad(format!("pool {} names offer #{} which does not exist", p.name, p.offer.0));
            }
        }
        Ok(Catalog { regions, zones, instance_types, offers, pools, latency_ms })
    }

    /// Provider of an offer.
    pub fn provider_of(&self, offer: OfferId) -> Provider {
        self.regions[self.offers[offer.idx()].region.idx()].provider
    }
    /// Latency between two regions, ms.
    pub fn latency(&self, a: RegionId, b: RegionId) -> f64 {
        self.latency_ms[a.idx() * self.regions.len() + b.idx()]
    }
    /// Region with this name.
    pub fn region_by_name(&self, name: &str) -> Option<RegionId> {
        self.regions.iter().position(|r| r.name == name).map(|i| RegionId(i as u16))
    }
    /// Whether an offer can hold a request's resources at all (type big enough, or host big enough).
    pub fn offer_fits(&self, offer: &Offer, res: &Resources) -> bool {
        match offer.kind {
            OfferKind::Instance(t) => res.fits_in(&self.instance_types[t.idx()].resources),
            OfferKind::Pool(p) => res.fits_in(&self.pools[p.idx()].host),
        }
    }
    /// Price in $/h of serving `res` from `offer` in `market`, given current unit prices.
    pub fn price_for(&self, offer: &Offer, unit_price: f64, res: &Resources) -> f64 {
        match offer.kind {
            OfferKind::Instance(_) => unit_price,
            OfferKind::Pool(_) => unit_price * res.vcpu as f64 + offer.per_gib_h * res.memory_mib as f64 / 1024.0,
        }
    }
}

/// When a timer set by the engine fires, this says why it was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// Try to place a pending VM again.
    Retry(VmId),
    /// Evaluate a deployment (triggers, strategy, reconciliation).
    Deployment(GroupId),
    /// A VM's data transfer is done: a migration's copy (cut over, or provision a cold target)
    /// or a restore from backup (provision the replacement).
    Transfer(VmId),
    /// A deployment's backup is due to start or to end.
    Backup(GroupId),
}

/// A timer that the caller must fire back at [`crate::Event::TimerFired`] at time `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// When.
    pub at: SimTime,
    /// Why.
    pub kind: TimerKind,
}
