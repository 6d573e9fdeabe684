//! # NovaCron benchmarks
//!
//! An unpublished crate that measures how fast the [`engine`] decides and how fast the [`sim`]ulator
//! plays a scenario, in release builds. It depends on `sim` without its default `parquet` feature,
//! so building it never compiles polars: nothing here writes result files.
//!
//! ## What is measured
//! * `benches/placement.rs` (criterion), three groups:
//!   * `placement`: [`engine::PlacementPolicy::decide`] for `cost-optimized`, `balanced` and
//!     `price-capacity-optimized` over synthetic catalogs of 10, 1 000 and 100 000 offers
//!     ([`synthetic_catalog`]); throughput is decisions per second.
//!   * `binpack`: find a host, allocate, release an older VM, on an [`engine::HostPool`] of
//!     1 000 and 10 000 hosts kept about three-quarters full, for first-, best- and worst-fit;
//!     throughput is such cycles per second.
//!   * `engine_handle`: [`engine::Engine::handle`] for one VM's whole life (request arrives,
//!     instance running, released) over a 100-offer catalog; throughput is lifecycles per second.
//! * `benches/simulator.rs` (criterion): a whole simulation of an inline scenario modelled on
//!   `scenarios/burst.toml` (about 50 000 events); throughput is simulator events per second.
//! * `benches/learned.rs` (criterion): the `learned` placement policy's inference, one decision over
//!   100 candidates for each model kind (tree, forest, linear, logistic, MLP), scoring alone and
//!   the whole `decide`.
//! * `src/bin/scale.rs`: not a criterion bench but a plain binary that loads scenario files, runs
//!   each once and prints wall time, events per second, request counts, availability and peak
//!   resident memory. It is for scenarios too big to repeat (an on-prem pool of thousands of
//!   hosts, a million requests).
//!
//! Every input comes from a fixed seed ([`BENCH_SEED`]), so two runs measure the same work.
//!
//! ## Running
//! ```text
//! cargo bench -p benches                                   # everything
//! cargo bench -p benches --bench placement                 # one file
//! cargo bench -p benches --bench placement -- binpack      # one group (a name filter)
//! cargo bench -p benches -- --warm-up-time 1 --measurement-time 3   # quicker, noisier
//! cargo run --release -p benches --bin scale -- scenarios/burst.toml [MORE.toml ...]
//! ```
//! Criterion keeps its reports under the target directory (`criterion/`) and compares each run
//! with the previous one.

use engine::{
    Catalog, InstanceType, InstanceTypeId, Offer, OfferId, OfferKind, Provider, Region, RegionId, Resources, VmId,
    VmRequest, Zone, ZoneId,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed of every synthetic input.
pub const BENCH_SEED: u64 = 7;

/// Instance families of the synthetic catalog: provider, name prefix, GiB per vCPU, $ per vCPU-hour.
const FAMILIES: [(Provider, &str, u64, f64); 9] = [
    (Provider::Aws, "m5", 4, 0.048),
    (Provider::Aws, "c5", 2, 0.0425),
    (Provider::Aws, "r5", 8, 0.063),
    (Provider::Azure, "D_v5", 4, 0.048),
    (Provider::Azure, "F_v2", 2, 0.0423),
    (Provider::Azure, "E_v5", 8, 0.063),
    (Provider::Gcp, "n2-standard", 4, 0.0486),
    (Provider::Gcp, "n2-highcpu", 1, 0.0359),
    (Provider::Gcp, "n2-highmem", 8, 0.0655),
];

/// vCPU sizes of every family.
const SIZES: [u32; 5] = [2, 4, 8, 16, 32];

/// Regions per provider in the synthetic catalog.
pub const REGIONS_PER_PROVIDER: usize = 12;
/// Zones per region in the synthetic catalog.
pub const ZONES_PER_REGION: usize = 3;

/// A catalog of `offers` cloud offers drawn from `seed`.
///
/// The world is fixed whatever the size: AWS, Azure and GCP with [`REGIONS_PER_PROVIDER`] regions
/// each, [`ZONES_PER_REGION`] zones per region, and 45 instance types (nine families, five sizes
/// from 2 to 32 vCPU). Each offer is an instance type of the region's provider in a random zone,
/// with an on-demand price of the family's vCPU rate times size times a regional factor of
/// 0.9–1.3; four offers in five also sell spot at 25–70 % of that, and capacities run from 5 to
/// 500 instances. Latency grows with the distance between regions' positions on a line, plus
/// 40 ms between providers. Offers are listed in the order drawn, so ties between them fall the
/// same way every run.
pub fn synthetic_catalog(offers: usize, seed: u64) -> Catalog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut regions = Vec::new();
    let mut zones = Vec::new();
    for provider in [Provider::Aws, Provider::Azure, Provider::Gcp] {
        for r in 0..REGIONS_PER_PROVIDER {
            let region = RegionId(regions.len() as u16);
            let mut zone_ids = Vec::new();
            for z in 0..ZONES_PER_REGION {
                zone_ids.push(ZoneId(zones.len() as u16));
                zones.push(Zone { name: format!("{}", (b'a' + z as u8) as char), region });
            }
            regions.push(Region {
                name: format!("{provider}-region-{r}"),
                provider,
                zones: zone_ids,
                carbon_g_per_kwh: rng.random_range(20.0..700.0),
            });
        }
    }
    let n = regions.len();
    let mut latency_ms = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let (ra, rb) = (a % REGIONS_PER_PROVIDER, b % REGIONS_PER_PROVIDER);
            let cross = if regions[a].provider == regions[b].provider { 0.0 } else { 40.0 };
            latency_ms[a * n + b] = if a == b { 1.0 } else { 2.0 + 15.0 * ra.abs_diff(rb) as f64 + cross };
        }
    }
    let mut instance_types = Vec::new();
    for (_, family, gib_per_vcpu, _) in FAMILIES {
        for vcpu in SIZES {
            instance_types.push(InstanceType {
                name: format!("{family}.{vcpu}"),
                resources: Resources { vcpu, memory_mib: vcpu as u64 * gib_per_vcpu * 1024, gpu: 0 },
            });
        }
    }
    let regional_factor: Vec<f64> = (0..n).map(|_| rng.random_range(0.9..1.3)).collect();
    let mut list = Vec::with_capacity(offers);
    for i in 0..offers {
        let region = rng.random_range(0..n);
        let provider = regions[region].provider;
        let zone = regions[region].zones[rng.random_range(0..ZONES_PER_REGION)];
        // A family of this provider: families are grouped three per provider, in provider order.
        let family = provider.index() * 3 + rng.random_range(0..3usize);
        let size = rng.random_range(0..SIZES.len());
        let on_demand = FAMILIES[family].3 * SIZES[size] as f64 * regional_factor[region];
        let spot = (rng.random::<f64>() < 0.8).then(|| on_demand * rng.random_range(0.25..0.7));
        list.push(Offer {
            id: OfferId(i as u32),
            region: RegionId(region as u16),
            zone,
            kind: OfferKind::Instance(InstanceTypeId((family * SIZES.len() + size) as u16)),
            on_demand_per_h: on_demand,
            spot_per_h: spot,
            per_gib_h: 0.0,
            capacity: rng.random_range(5..=500),
        });
    }
    match Catalog::new(regions, zones, instance_types, list, Vec::new(), latency_ms) {
        Ok(c) => c,
        // The generator builds every index from the lists it has just made.
        Err(e) => unreachable!("synthetic catalog is inconsistent: {e}"),
    }
}

/// `count` requests drawn from `seed`, numbered from zero: 1 to 16 vCPU at 1 to 8 GiB per vCPU,
/// half of them allowing spot, a quarter restricted to one provider, a third with users near a
/// random region (so latency matters to the policies that weigh it).
pub fn synthetic_requests(count: usize, catalog: &Catalog, seed: u64) -> Vec<VmRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let vcpu = [1, 2, 4, 8, 16][rng.random_range(0..5usize)];
            let gib_per_vcpu = [1u64, 2, 4, 8][rng.random_range(0..4usize)];
            let mut req = VmRequest::new(
                VmId(i as u64),
                Resources { vcpu, memory_mib: vcpu as u64 * gib_per_vcpu * 1024, gpu: 0 },
            );
            req.spot_allowed = rng.random::<f64>() < 0.5;
            if rng.random::<f64>() < 0.25 {
                req.providers = 1 << rng.random_range(0..3u8);
            }
            if rng.random::<f64>() < 0.33 && !catalog.regions.is_empty() {
                req.users_near = Some(RegionId(rng.random_range(0..catalog.regions.len()) as u16));
            }
            req
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_deterministic_and_valid() {
        let a = synthetic_catalog(1000, BENCH_SEED);
        let b = synthetic_catalog(1000, BENCH_SEED);
        assert_eq!(a, b);
        assert_eq!(a.offers.len(), 1000);
        assert_eq!(a.regions.len(), 3 * REGIONS_PER_PROVIDER);
        // Every offer sells an instance type of its own region's provider.
        for o in &a.offers {
            let OfferKind::Instance(t) = o.kind else { panic!("pool offer") };
            let provider = a.regions[o.region.idx()].provider;
            assert_eq!(t.idx() / (3 * SIZES.len()), provider.index());
        }
    }

    #[test]
    fn requests_fit_some_offer() {
        let c = synthetic_catalog(1000, BENCH_SEED);
        for r in synthetic_requests(100, &c, BENCH_SEED) {
            assert!(c.offers.iter().any(|o| c.offer_fits(o, &r.resources)), "{r:?}");
        }
    }
}
