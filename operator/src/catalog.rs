//! The engine's [`Catalog`] built from what the cloud provider sells, with the name index the
//! translation and the controller use (region names and aliases, offers by region/zone/type).

use std::collections::BTreeMap;

use engine::{
    Catalog, InstanceType, InstanceTypeId, Offer, OfferId, OfferKind, Provider, Region, RegionId, Resources, Zone,
    ZoneId,
};

use crate::provider::CloudCatalog;
use crate::{Error, Result};

/// The engine's catalog and the names that address it.
#[derive(Clone, Debug)]
pub struct CatalogIndex {
    /// What the engine is given.
    pub catalog: Catalog,
    /// Region by name or alias.
    pub regions: BTreeMap<String, RegionId>,
    /// Offer by (region, zone, instance type) name.
    pub offers: BTreeMap<(String, String, String), OfferId>,
}

impl CatalogIndex {
    /// Builds the catalog: regions in the provider's order, zones numbered across regions, one
    /// offer per zone of each offered type. Latency comes from the regions' coordinates with the
    /// simulator's formula.
    pub fn new(c: &CloudCatalog) -> Result<Self> {
        let bad = |m: String| Error::Catalog(m);
        let mut regions = Vec::new();
        let mut zones = Vec::new();
        let mut names = BTreeMap::new();
        for (i, r) in c.regions.iter().enumerate() {
            let id = RegionId(u16::try_from(i).map_err(|_| bad("more than 65535 regions".into()))?);
            for n in std::iter::once(&r.name).chain(&r.aliases) {
                if names.insert(n.clone(), id).is_some() {
                    return Err(bad(format!("region name {n:?} is used twice")));
                }
            }
            let mut zids = Vec::new();
            let zone_names: Vec<String> = if r.zones.is_empty() { vec!["a".into()] } else { r.zones.clone() };
            for z in zone_names {
                zids.push(ZoneId(u16::try_from(zones.len()).map_err(|_| bad("more than 65535 zones".into()))?));
                zones.push(Zone { name: z, region: id });
            }
            regions.push(Region {
                name: r.name.clone(),
                provider: r.provider,
                zones: zids,
                carbon_g_per_kwh: r.carbon_g_per_kwh,
            });
        }
        let mut types = BTreeMap::new();
        let mut instance_types = Vec::new();
        for (i, t) in c.instance_types.iter().enumerate() {
            let id = InstanceTypeId(u16::try_from(i).map_err(|_| bad("more than 65535 instance types".into()))?);
            types.insert(t.name.clone(), id);
            instance_types.push(InstanceType {
                name: t.name.clone(),
                resources: Resources { vcpu: t.vcpu, memory_mib: gib_to_mib(t.memory_gib), gpu: t.gpu },
            });
        }
        let mut offers = Vec::new();
        let mut offer_names = BTreeMap::new();
        for o in &c.offers {
            let region = *c
                .regions
                .iter()
                .position(|r| r.name == o.region)
                .and_then(|i| names.get(&c.regions[i].name))
                .ok_or_else(|| bad(format!("offer names unknown region {:?}", o.region)))?;
            let zone = regions[region.idx()]
                .zones
                .iter()
                .copied()
                .find(|z| zones[z.idx()].name == o.zone)
                .ok_or_else(|| bad(format!("offer names unknown zone {:?} of {}", o.zone, o.region)))?;
            let itype = *types
                .get(&o.instance_type)
                .ok_or_else(|| bad(format!("offer names unknown instance type {:?}", o.instance_type)))?;
            let id = OfferId(u32::try_from(offers.len()).map_err(|_| bad("too many offers".into()))?);
            offer_names.insert((o.region.clone(), o.zone.clone(), o.instance_type.clone()), id);
            offers.push(Offer {
                id,
                region,
                zone,
                kind: OfferKind::Instance(itype),
                on_demand_per_h: o.on_demand_per_h,
                spot_per_h: o.spot_per_h,
                per_gib_h: 0.0,
                capacity: o.capacity,
            });
        }
        let n = regions.len();
        let mut latency_ms = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                latency_ms[a * n + b] = latency_between(c.regions[a].location, c.regions[b].location);
            }
        }
        let catalog = Catalog::new(regions, zones, instance_types, offers, Vec::new(), latency_ms)
            .map_err(|e| bad(e.to_string()))?;
        Ok(CatalogIndex { catalog, regions: names, offers: offer_names })
    }

    /// Region, zone and instance type names of an offer.
    pub fn offer_names(&self, offer: OfferId) -> Option<(&str, &str, &str)> {
        let o = self.catalog.offers.get(offer.idx())?;
        let region = &self.catalog.regions[o.region.idx()].name;
        let zone = &self.catalog.zones[o.zone.idx()].name;
        let OfferKind::Instance(t) = o.kind else { return None };
        Some((region, zone, &self.catalog.instance_types[t.idx()].name))
    }

    /// Provider of a region.
    pub fn provider(&self, region: RegionId) -> Provider {
        self.catalog.regions[region.idx()].provider
    }

    /// Name of a region.
    pub fn region_name(&self, region: RegionId) -> &str {
        &self.catalog.regions[region.idx()].name
    }

    /// Region names (without aliases), sorted, for messages.
    pub fn region_list(&self) -> String {
        let mut v: Vec<&str> = self.regions.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.join(", ")
    }
}

/// GiB to MiB, rounded; nonsense gives 0 (as the simulator does).
pub fn gib_to_mib(g: f64) -> u64 {
    if g.is_finite() && g > 0.0 { (g * 1024.0).round() as u64 } else { 0 }
}

/// One-way latency between two points, ms: 1 inside a region, else 2 + great-circle km / 100
/// (the simulator's formula, so that both give the engine the same catalog).
pub fn latency_between(a: (f64, f64), b: (f64, f64)) -> f64 {
    if a == b {
        return 1.0;
    }
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    let km = 2.0 * 6371.0 * h.sqrt().min(1.0).asin();
    2.0 + km / 100.0
}
