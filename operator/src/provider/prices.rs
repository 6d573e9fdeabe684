//! The shipped price tables (`data/prices/`, see `docs/pricing.md`), compiled into the operator,
//! and the catalogs and estimates built from them.
//!
//! The tables are parsed by the engine's [`engine::prices`] (the simulator reads the very same
//! files), so `estimate_cost` answers the same $/h for an instance in the operator and in a
//! simulated cloud, and the providers compare on one source: AWS and Azure by instance type and
//! region, GCE by vCPUs × vCPU price + GiB × GiB price of the machine family.

use std::sync::OnceLock;

use engine::prices::{PriceBook, PriceError, PriceTable, Shape};
use engine::{Market, Provider};

use super::{CloudCatalog, InstanceTypeInfo, OfferInfo, ProviderError, ProviderResult, RegionInfo};

const AWS: &str = include_str!("../../../data/prices/aws.csv");
const AZURE: &str = include_str!("../../../data/prices/azure.csv");
const GCP: &str = include_str!("../../../data/prices/gcp.csv");

/// The committed tables, parsed once.
///
/// The files are checked by the test suite (`sim/tests/it/pricing.rs` and this module's tests),
/// so a failure to parse them is a broken build, not an input error.
pub fn builtin() -> &'static PriceBook {
    static BOOK: OnceLock<PriceBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mut book = PriceBook::default();
        for (provider, name, text) in [
            (Provider::Aws, "data/prices/aws.csv", AWS),
            (Provider::Azure, "data/prices/azure.csv", AZURE),
            (Provider::Gcp, "data/prices/gcp.csv", GCP),
        ] {
            match PriceTable::parse(provider, name, text) {
                Ok(t) => book.insert(t),
                // Invariant: the committed files parse (tested); an empty table answers "missing".
                Err(e) => tracing::error!("built-in price table: {e}"),
            }
        }
        book
    })
}

/// The $/h of one `instance_type` in catalog region `region` (a name or alias) on `market`, from
/// `book`, using the catalog for the region's provider and the type's shape. An offer the tables
/// cannot price is an [`ProviderError::Api`] naming what is missing.
pub fn estimate(
    book: &PriceBook,
    catalog: &CloudCatalog,
    region: &str,
    instance_type: &str,
    market: Market,
) -> ProviderResult<f64> {
    let r = catalog
        .regions
        .iter()
        .find(|r| r.name == region || r.aliases.iter().any(|a| a == region))
        .ok_or_else(|| ProviderError::Api(format!("no region {region:?} in the catalog")))?;
    let shape = catalog.instance_types.iter().find(|t| t.name == instance_type).map(shape_of);
    book.market_price(r.provider, &r.name, instance_type, shape, market)
        .map(|p| p.usd_per_h)
        .map_err(|e| ProviderError::Api(e.to_string()))
}

/// A catalog of one region selling `types` in every zone, priced from `book` (on demand, and spot
/// where the tables have an interruptible price: GCE preemptible, Azure low-priority), each offer
/// holding `capacity` instances. A type the tables cannot price on demand is an error.
pub fn priced_catalog(
    book: &PriceBook,
    region: RegionInfo,
    types: Vec<InstanceTypeInfo>,
    capacity: u32,
) -> Result<CloudCatalog, PriceError> {
    let mut offers = Vec::new();
    for t in &types {
        let shape = Some(shape_of(t));
        let on_demand = book.market_price(region.provider, &region.name, &t.name, shape, Market::OnDemand)?.usd_per_h;
        let spot =
            book.market_price(region.provider, &region.name, &t.name, shape, Market::Spot).ok().map(|p| p.usd_per_h);
        for z in &region.zones {
            offers.push(OfferInfo {
                region: region.name.clone(),
                zone: z.clone(),
                instance_type: t.name.clone(),
                on_demand_per_h: on_demand,
                spot_per_h: spot,
                capacity,
            });
        }
    }
    Ok(CloudCatalog { regions: vec![region], instance_types: types, offers })
}

fn shape_of(t: &InstanceTypeInfo) -> Shape {
    Shape { vcpu: f64::from(t.vcpu), memory_gib: t.memory_gib }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::memory::MemoryCloud;

    #[test]
    fn builtin_tables_price_the_seed_catalog_close_to_its_own_prices() {
        let book = builtin();
        assert_eq!(book.providers().count(), 3);
        let seed = MemoryCloud::seed_catalog();
        let m5 = estimate(book, &seed, "aws-us-east", "m5.large", Market::OnDemand).expect("priced");
        assert_eq!(m5, 0.096);
        // n2-standard-2: 2 × 0.031611 + 8 × 0.004237 = 0.097118 (the seed says 0.0971)
        let n2 = estimate(book, &seed, "gcp-us-central1", "n2-standard-2", Market::OnDemand).expect("priced");
        assert!((n2 - 0.097118).abs() < 1e-12, "{n2}");
        // The seed's D2s_v5 is newer than the source: a clear error, not a price of 0.
        let e = estimate(book, &seed, "azure-eastus", "D2s_v5", Market::OnDemand).expect_err("not in the tables");
        assert!(e.to_string().contains("no on-demand price for D2s_v5 in eastus"), "{e}");
        let e = estimate(book, &seed, "aws-us-east-1", "m5.large", Market::Spot).expect_err("no AWS spot");
        assert!(e.to_string().contains("no spot prices"), "{e}");
    }

    #[test]
    fn priced_catalog_has_an_offer_per_zone_and_type() {
        let region = RegionInfo {
            name: "azure-eastus".into(),
            aliases: vec![],
            provider: Provider::Azure,
            zones: vec!["1".into(), "2".into()],
            location: (37.4, -79.2),
            carbon_g_per_kwh: 400.0,
        };
        let t = |name: &str, vcpu, memory_gib| InstanceTypeInfo { name: name.into(), vcpu, memory_gib, gpu: 0 };
        let c = priced_catalog(builtin(), region.clone(), vec![t("D2s_v4", 2, 8.0), t("D4s_v4", 4, 16.0)], 10)
            .expect("priced");
        assert_eq!(c.offers.len(), 4);
        assert_eq!((c.offers[0].on_demand_per_h, c.offers[0].spot_per_h), (0.096, Some(0.0192)));
        assert_eq!(c.offers[3].on_demand_per_h, 0.192);
        let e = priced_catalog(builtin(), region, vec![t("D2s_v9", 2, 8.0)], 10).expect_err("unknown size");
        assert!(e.to_string().contains("D2s_v9"), "{e}");
    }
}
