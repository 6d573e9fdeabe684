//! Unit tests of the placement policies on a small fixed world.
//!
//! The fixture (see [`catalog`]) has one region per provider plus an on-prem site:
//!
//! | offer | where                  | type  | on demand $/h | spot $/h | capacity |
//! |-------|------------------------|-------|---------------|----------|----------|
//! | O0    | aws us-east-1a   (Z0)  | small | 0.096         | 0.030    | 10       |
//! | O1    | aws us-east-1b   (Z1)  | small | 0.096         | 0.035    | 2        |
//! | O2    | azure westeu-1   (Z2)  | small | 0.099         | 0.040    | 10       |
//! | O3    | azure westeu-2   (Z3)  | small | 0.100         | —        | 10       |
//! | O4    | gcp eu-north1-a  (Z4)  | small | 0.104         | 0.025    | 5        |
//! | O5    | gcp eu-north1-b  (Z5)  | small | 0.106         | 0.028    | 20       |
//! | O6    | aws us-east-1a   (Z0)  | large | 0.192         | 0.060    | 10       |
//! | O7    | gcp eu-north1-a  (Z4)  | large | 0.208         | 0.050    | 10       |
//! | O8    | on-prem fra-dc1  (Z6)  | pool  | 0.02/vCPU-h + 0.005/GiB-h | — | 3 hosts of 8 vCPU, 32 GiB |
//!
//! Grid carbon: aws 400, azure 300, gcp 50, on-prem 200 gCO2e/kWh. A "small" request (2 vCPU,
//! 4 GiB) draws 2 × 4 W + 4 × 0.375 W = 9.5 W, so 3.8 g/h in aws and 0.475 g/h in gcp; on the
//! pool it costs 2 × 0.02 + 4 × 0.005 = $0.06/h.

use super::*;
use crate::cost::{Commitment, CostModel};
use crate::model::{
    Catalog, Fit, GroupId, HostId, InstanceType, InstanceTypeId, Market, Offer, OfferId, OfferKind, PoolId, PoolSpec,
    Provider, Region, RegionId, Resources, VmId, VmRequest, Zone, ZoneId,
};
use crate::snapshot::{Candidate, Coverage, RejectReason, Snapshot};
use crate::time::{SimDuration, SimTime};

pub(crate) const AWS: RegionId = RegionId(0);
pub(crate) const AZURE: RegionId = RegionId(1);
pub(crate) const GCP: RegionId = RegionId(2);
pub(crate) const ONPREM: RegionId = RegionId(3);

pub(crate) const AWS_A_SMALL: OfferId = OfferId(0);
pub(crate) const AWS_B_SMALL: OfferId = OfferId(1);
pub(crate) const AZ_1_SMALL: OfferId = OfferId(2);
pub(crate) const AZ_2_SMALL: OfferId = OfferId(3);
pub(crate) const GCP_A_SMALL: OfferId = OfferId(4);
pub(crate) const GCP_B_SMALL: OfferId = OfferId(5);
pub(crate) const AWS_A_LARGE: OfferId = OfferId(6);
pub(crate) const GCP_A_LARGE: OfferId = OfferId(7);
pub(crate) const POOL: OfferId = OfferId(8);

/// Providers bit set: the three clouds, no on-prem.
pub(crate) const CLOUDS: u8 = 0b0111;

const EPS: f64 = 1e-12;

/// The fixture world described in the module docs.
pub(crate) fn catalog() -> Catalog {
    let region = |name: &str, provider, zones: &[u16], carbon_g_per_kwh| Region {
        name: name.into(),
        provider,
        zones: zones.iter().map(|&z| ZoneId(z)).collect(),
        carbon_g_per_kwh,
    };
    let regions = vec![
        region("aws-us-east-1", Provider::Aws, &[0, 1], 400.0),
        region("azure-westeurope", Provider::Azure, &[2, 3], 300.0),
        region("gcp-europe-north1", Provider::Gcp, &[4, 5], 50.0),
        region("onprem-fra", Provider::Onprem, &[6], 200.0),
    ];
    let zone = |name: &str, region| Zone { name: name.into(), region };
    let zones = vec![
        zone("us-east-1a", AWS),
        zone("us-east-1b", AWS),
        zone("westeurope-1", AZURE),
        zone("westeurope-2", AZURE),
        zone("europe-north1-a", GCP),
        zone("europe-north1-b", GCP),
        zone("fra-dc1", ONPREM),
    ];
    let instance_types = vec![
        InstanceType { name: "small".into(), resources: Resources { vcpu: 2, memory_mib: 4096, gpu: 0 } },
        InstanceType { name: "large".into(), resources: Resources { vcpu: 4, memory_mib: 16384, gpu: 0 } },
    ];
    let (small, large) = (OfferKind::Instance(InstanceTypeId(0)), OfferKind::Instance(InstanceTypeId(1)));
    let offer = |id: u32, region, zone: u16, kind, on_demand_per_h, spot_per_h, capacity| Offer {
        id: OfferId(id),
        region,
        zone: ZoneId(zone),
        kind,
        on_demand_per_h,
        spot_per_h,
        per_gib_h: 0.0,
        capacity,
    };
    let mut offers = vec![
        offer(0, AWS, 0, small.clone(), 0.096, Some(0.030), 10),
        offer(1, AWS, 1, small.clone(), 0.096, Some(0.035), 2),
        offer(2, AZURE, 2, small.clone(), 0.099, Some(0.040), 10),
        offer(3, AZURE, 3, small.clone(), 0.100, None, 10),
        offer(4, GCP, 4, small.clone(), 0.104, Some(0.025), 5),
        offer(5, GCP, 5, small, 0.106, Some(0.028), 20),
        offer(6, AWS, 0, large.clone(), 0.192, Some(0.060), 10),
        offer(7, GCP, 4, large, 0.208, Some(0.050), 10),
        offer(8, ONPREM, 6, OfferKind::Pool(PoolId(0)), 0.02, None, 0),
    ];
    offers[8].per_gib_h = 0.005;
    let pools = vec![PoolSpec {
        name: "fra-rack".into(),
        offer: POOL,
        hosts: 3,
        host: Resources { vcpu: 8, memory_mib: 32768, gpu: 0 },
        fit: Fit::FirstFit,
    }];
    #[rustfmt::skip]
    let latency_ms = vec![
        //  aws  azure  gcp  onprem
        1.0, 80.0, 95.0, 90.0, // aws
        80.0, 1.0, 30.0, 10.0, // azure
        95.0, 30.0, 1.0, 25.0, // gcp
        90.0, 10.0, 25.0, 1.0, // onprem
    ];
    Catalog::new(regions, zones, instance_types, offers, pools, latency_ms).expect("fixture catalog is valid")
}

/// A fresh snapshot of the fixture world with no commitments and no caps.
pub(crate) fn snapshot() -> Snapshot {
    Snapshot::new(catalog(), CostModel::default())
}

/// A 2 vCPU / 4 GiB request with no constraints (on demand only).
pub(crate) fn small(id: u64) -> VmRequest {
    VmRequest::new(VmId(id), Resources { vcpu: 2, memory_mib: 4096, gpu: 0 })
}

/// `small` restricted to the clouds.
pub(crate) fn small_cloud(id: u64) -> VmRequest {
    VmRequest { providers: CLOUDS, ..small(id) }
}

/// `small_cloud` that may run on spot.
pub(crate) fn small_spot(id: u64) -> VmRequest {
    VmRequest { spot_allowed: true, ..small_cloud(id) }
}

fn policy(name: &str) -> PolicyConfig {
    PolicyConfig::default_for(name).expect("fixture policy name")
}

/// What `cfg` decides, as (candidate, scores); panics on a rejection.
fn choose(cfg: &PolicyConfig, req: &VmRequest, snap: &Snapshot, now: SimTime) -> (Candidate, Scores) {
    match cfg.build().decide(req, snap, now) {
        Decision::Place { candidate, scores } => (candidate, scores),
        Decision::Reject(r) => panic!("{} rejected {:?}: {r:?}", cfg.name(), req.id),
    }
}

/// The (offer, market) `cfg` picks.
fn pick(cfg: &PolicyConfig, req: &VmRequest, snap: &Snapshot, now: SimTime) -> (OfferId, Market) {
    let (c, _) = choose(cfg, req, snap, now);
    (c.offer, c.market)
}

/// Decides and allocates, as the engine does; returns the candidate.
fn place_one(cfg: &PolicyConfig, req: &VmRequest, snap: &mut Snapshot, now: SimTime) -> Candidate {
    let (c, _) = choose(cfg, req, snap, now);
    snap.allocate(req, &c, now);
    c
}

fn reject(cfg: &PolicyConfig, req: &VmRequest, snap: &Snapshot, now: SimTime) -> RejectReason {
    match cfg.build().decide(req, snap, now) {
        Decision::Reject(r) => r,
        Decision::Place { candidate, .. } => panic!("{} placed {:?} on {:?}", cfg.name(), req.id, candidate.offer),
    }
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < EPS, "got {actual}, expected {expected}");
}

const T0: SimTime = SimTime::ZERO;

// ---------------------------------------------------------------------------------------------
// cost-optimized

#[test]
fn cost_optimized_takes_cheapest_spot_including_its_risk() {
    let cfg = policy("cost-optimized");
    let mut snap = snapshot();
    let req = small_spot(1);
    // Defaults: $0.5 per interruption, 0.02 interruptions/h prior → spot costs +$0.01/h.
    // Spot: O0 0.040, O1 0.045, O2 0.050, O4 0.035, O5 0.038, O6 0.070, O7 0.060; cheapest on demand 0.096.
    let (c, s) = choose(&cfg, &req, &snap, T0);
    assert_eq!((c.offer, c.market), (GCP_A_SMALL, Market::Spot));
    assert_close(s.objective, 0.025 + 0.02 * 0.5);
    assert_close(s.cost_per_h, 0.025);

    // O4 has seen interruptions at 1/h: 0.025 + (0.02 + 1.0) × 0.5 = 0.535; O5 at 0.038 now wins.
    snap.offers[GCP_A_SMALL.idx()].interruptions_per_h = 1.0;
    let (c, s) = choose(&cfg, &req, &snap, T0);
    assert_eq!((c.offer, c.market), (GCP_B_SMALL, Market::Spot));
    assert_close(s.objective, 0.028 + 0.01);
}

#[test]
fn cost_optimized_prefers_on_demand_when_interruptions_are_dear() {
    let cfg = PolicyConfig::CostOptimized(CostOptimizedConfig { interruption_cost_usd: 5.0, ..Default::default() });
    // Best spot: O4 0.025 + 0.02 × 5 = 0.125 > on-demand O0 0.096 (O1 ties at 0.096 but comes later).
    assert_eq!(pick(&cfg, &small_spot(1), &snapshot(), T0), (AWS_A_SMALL, Market::OnDemand));
}

#[test]
fn cost_optimized_on_demand_includes_the_pool() {
    let cfg = policy("cost-optimized");
    // Pool: 2 vCPU × 0.02 + 4 GiB × 0.005 = 0.06 < O0 0.096. First fit puts it on host 0.
    let (c, s) = choose(&cfg, &small(1), &snapshot(), T0);
    assert_eq!((c.offer, c.market, c.host), (POOL, Market::OnDemand, Some(HostId(0))));
    assert_close(s.cost_per_h, 0.06);
    assert_close(c.price_per_h, 0.06);
}

// ---------------------------------------------------------------------------------------------
// availability

#[test]
fn availability_spreads_a_group_over_providers_then_zones() {
    let cfg = policy("availability");
    let mut snap = snapshot();
    let group = |id| VmRequest { group: Some(GroupId(7)), ..small_cloud(id) };
    // Key: (group VMs in provider, in region, in zone, $/h). Nothing placed: cheapest, O0 0.096.
    // Then providers with 0 VMs: azure O2 0.099 < gcp O4 0.104. Then gcp O4. Then every provider
    // and region holds 1: empty zones Z1 (O1 0.096), Z3 (O3 0.100), Z5 (O5 0.106) → O1.
    let placed: Vec<OfferId> = (1..=4).map(|i| place_one(&cfg, &group(i), &mut snap, T0).offer).collect();
    assert_eq!(placed, [AWS_A_SMALL, AZ_1_SMALL, GCP_A_SMALL, AWS_B_SMALL]);
    let counts = &snap.groups[&GroupId(7)];
    assert_eq!(counts.by_provider, [2, 1, 1, 0]);

    // Another group starts from scratch: cheapest again, although the fleet already uses O0.
    let other = VmRequest { group: Some(GroupId(8)), ..small_cloud(9) };
    assert_eq!(pick(&cfg, &other, &snap, T0), (AWS_A_SMALL, Market::OnDemand));
    // A request with no group spreads against the fleet: aws holds 2, azure and gcp 1 each, their
    // regions 1 each; empty zones Z3 (O3 0.100) and Z5 (O5 0.106) → O3.
    assert_eq!(pick(&cfg, &small_cloud(10), &snap, T0), (AZ_2_SMALL, Market::OnDemand));
}

/// Regression: a group with no instance yet was spread against the whole fleet (the fallback for
/// requests with no group), so its first VM avoided busy locations, and paid more, for nothing.
#[test]
fn regression_a_new_group_is_not_spread_against_the_fleet() {
    let mut snap = snapshot();
    // An ungrouped spot VM on O7 (europe-north1-a, Z4).
    let fleet_vm = small_spot(1);
    let cands = snap.candidates(&fleet_vm, T0).expect("candidates");
    let on_o7 = cands.iter().find(|c| (c.offer, c.market) == (GCP_A_LARGE, Market::Spot)).expect("O7 spot candidate");
    snap.allocate(&fleet_vm, on_o7, T0);
    let first_of_group = VmRequest { group: Some(GroupId(5)), ..small_spot(2) };
    // Diversified: group 5 holds nothing, so every zone counts 0; O4 (Z4, none of ours on it) at
    // 0.025 is the cheapest. Spread against the fleet, Z4 would count 1 and O5 would win.
    let (c, s) = choose(&policy("diversified"), &first_of_group, &snap, T0);
    assert_eq!((c.offer, c.market), (GCP_A_SMALL, Market::Spot));
    // Its spread score: 0 of the group's 0 instances in Z4, not the fleet's 1 of 1 (0.5).
    assert_eq!(s.spread, 0.0);
    assert_eq!(s.objective, 0.0);
}

#[test]
fn availability_ignores_spot_unless_allowed() {
    // Default allow_spot = false: even with spot allowed by the request, on demand O0.
    assert_eq!(pick(&policy("availability"), &small_spot(1), &snapshot(), T0), (AWS_A_SMALL, Market::OnDemand));
    let cfg = PolicyConfig::Availability(AvailabilityConfig { allow_spot: true });
    // With spot: all counts 0, cheapest is O4 spot 0.025.
    assert_eq!(pick(&cfg, &small_spot(1), &snapshot(), T0), (GCP_A_SMALL, Market::Spot));
}

// ---------------------------------------------------------------------------------------------
// performance

#[test]
fn performance_picks_lowest_latency_to_users() {
    let cfg = policy("performance");
    let snap = snapshot();
    // Users in azure: azure offers are 1 ms away; O2 0.099 beats O3 0.100.
    let near_azure = VmRequest { users_near: Some(AZURE), ..small(1) };
    let (c, s) = choose(&cfg, &near_azure, &snap, T0);
    assert_eq!(c.offer, AZ_1_SMALL);
    assert_close(s.latency_ms, 1.0);

    // Users in gcp, gcp excluded: aws 95, azure 30, on-prem 25 ms → the pool.
    let near_gcp = VmRequest { users_near: Some(GCP), providers: 0b1011, ..small(2) };
    let (c, s) = choose(&cfg, &near_gcp, &snap, T0);
    assert_eq!(c.offer, POOL);
    assert_close(s.latency_ms, 25.0);

    // Users on-prem, on-prem excluded: latency beats price, azure O2 (10 ms, 0.099) over aws O0 (90 ms, 0.096).
    let near_onprem = VmRequest { users_near: Some(ONPREM), ..small_cloud(3) };
    let (c, s) = choose(&cfg, &near_onprem, &snap, T0);
    assert_eq!(c.offer, AZ_1_SMALL);
    assert_close(s.latency_ms, 10.0);
}

// ---------------------------------------------------------------------------------------------
// balanced

fn balanced(cost: f64, performance: f64, availability: f64, energy: f64) -> PolicyConfig {
    PolicyConfig::Balanced(BalancedConfig {
        weights: Weights { cost, performance, availability, energy },
        ..Default::default()
    })
}

#[test]
fn balanced_all_energy_picks_the_low_carbon_region() {
    // gcp (50 g/kWh) is cleanest; every gcp candidate scores 0 and the first listed, O4 on demand, wins.
    let (c, s) = choose(&balanced(0.0, 0.0, 0.0, 1.0), &small_spot(1), &snapshot(), T0);
    assert_eq!((c.offer, c.market), (GCP_A_SMALL, Market::OnDemand));
    assert_close(s.carbon_g_per_h, 50.0 * 9.5 / 1000.0);
    assert_close(s.objective, 0.0);
    // All weight on cost: the cheapest with risk, O4 spot (0.035), as cost-optimized.
    assert_eq!(pick(&balanced(1.0, 0.0, 0.0, 0.0), &small_spot(1), &snapshot(), T0), (GCP_A_SMALL, Market::Spot));
    // All weight on performance with users in azure: O2.
    let near_azure = VmRequest { users_near: Some(AZURE), ..small_spot(2) };
    assert_eq!(pick(&balanced(0.0, 1.0, 0.0, 0.0), &near_azure, &snapshot(), T0), (AZ_1_SMALL, Market::OnDemand));
}

#[test]
fn balanced_weights_trade_cost_against_carbon() {
    let snap = snapshot();
    // aws and gcp, on demand: cost spans 0.096 (O0) .. 0.208 (O7) = 0.112; carbon spans 0.475 (gcp)
    // .. 3.8 (aws) g/h. O0: cost 0, carbon 1. O4: cost (0.104 - 0.096) / 0.112 = 1/14, carbon 0.
    let req = VmRequest { providers: 0b0101, ..small(1) };
    // Half and half: O0 = 0.5, O4 = 0.5/14 ≈ 0.0357 → O4.
    let (c, s) = choose(&balanced(0.5, 0.0, 0.0, 0.5), &req, &snap, T0);
    assert_eq!(c.offer, GCP_A_SMALL);
    assert!((s.objective - 0.5 / 14.0).abs() < 1e-9, "{}", s.objective);
    // 19:1 for cost (weights are normalised): O0 = 0.05, O4 = 0.95/14 ≈ 0.0679 → O0.
    let (c, s) = choose(&balanced(19.0, 0.0, 0.0, 1.0), &req, &snap, T0);
    assert_eq!(c.offer, AWS_A_SMALL);
    assert!((s.objective - 0.05).abs() < 1e-9, "{}", s.objective);
}

// ---------------------------------------------------------------------------------------------
// Spot fleet strategies

#[test]
fn lowest_price_takes_cheapest_spot_whatever_its_risk() {
    let cfg = policy("lowest-price");
    let mut snap = snapshot();
    assert_eq!(pick(&cfg, &small_spot(1), &snap, T0), (GCP_A_SMALL, Market::Spot));
    // Unlike cost-optimized, the interruption rate does not matter.
    snap.offers[GCP_A_SMALL.idx()].interruptions_per_h = 5.0;
    assert_eq!(pick(&cfg, &small_spot(1), &snap, T0), (GCP_A_SMALL, Market::Spot));
    // No spot allowed: cheapest on demand, O0 0.096 (clouds) or the pool 0.06 (anywhere).
    assert_eq!(pick(&cfg, &small_cloud(2), &snap, T0), (AWS_A_SMALL, Market::OnDemand));
    assert_eq!(pick(&cfg, &small(3), &snap, T0), (POOL, Market::OnDemand));
}

#[test]
fn capacity_optimized_takes_the_deepest_spot_pool() {
    let cfg = policy("capacity-optimized");
    let mut snap = snapshot();
    // Free slots / (1 + rate): O0 10, O1 2, O2 10, O4 5, O5 20, O6 10, O7 10 → O5.
    let (c, s) = choose(&cfg, &small_spot(1), &snap, T0);
    assert_eq!((c.offer, c.market), (GCP_B_SMALL, Market::Spot));
    assert_close(s.objective, 20.0);
    // O5 interrupted at 3/h: 20 / 4 = 5. Four pools tie at 10; the cheapest of them, O0 at 0.030, wins.
    snap.offers[GCP_B_SMALL.idx()].interruptions_per_h = 3.0;
    let (c, s) = choose(&cfg, &small_spot(1), &snap, T0);
    assert_eq!((c.offer, c.market), (AWS_A_SMALL, Market::Spot));
    assert_close(s.objective, 10.0);
}

#[test]
fn price_capacity_optimized_takes_cheapest_of_the_deep_pools() {
    let pco =
        |capacity_tolerance| PolicyConfig::PriceCapacityOptimized(PriceCapacityOptimizedConfig { capacity_tolerance });
    let snap = snapshot();
    let req = small_spot(1);
    // Default tolerance 0.5: best score 20 (O5), floor 10 keeps O0, O2, O5, O6, O7; cheapest O5 0.028.
    // (O4 at 0.025 has only 5 free slots.)
    assert_eq!(pick(&policy("price-capacity-optimized"), &req, &snap, T0), (GCP_B_SMALL, Market::Spot));
    // Tolerance 0.8: floor 4 also keeps O4 (5) → O4 0.025.
    assert_eq!(pick(&pco(0.8), &req, &snap, T0), (GCP_A_SMALL, Market::Spot));
    // Tolerance 0: only the best score, O5.
    assert_eq!(pick(&pco(0.0), &req, &snap, T0), (GCP_B_SMALL, Market::Spot));
    // No spot allowed: cheapest on demand.
    assert_eq!(pick(&pco(0.8), &small_cloud(2), &snap, T0), (AWS_A_SMALL, Market::OnDemand));
}

#[test]
fn diversified_spreads_spot_over_pools() {
    let cfg = policy("diversified");
    let mut snap = snapshot();
    let group = |id| VmRequest { group: Some(GroupId(3)), ..small_spot(id) };
    // Key: (group VMs in zone, our instances on the offer, $/h), spot only.
    // 1: all empty → O4 0.025 (Z4). 2: Z4 taken → O5 0.028 (Z5). 3: O0 0.030 (Z0). 4: O1 0.035 (Z1).
    // 5: O2 0.040 (Z2). 6: every spot zone holds 1; unused offers O6 (Z0, 0.060) and O7 (Z4, 0.050) → O7.
    let placed: Vec<(OfferId, Market)> = (1..=6)
        .map(|i| {
            let c = place_one(&cfg, &group(i), &mut snap, T0);
            (c.offer, c.market)
        })
        .collect();
    let spot = |o| (o, Market::Spot);
    assert_eq!(
        placed,
        [
            spot(GCP_A_SMALL),
            spot(GCP_B_SMALL),
            spot(AWS_A_SMALL),
            spot(AWS_B_SMALL),
            spot(AZ_1_SMALL),
            spot(GCP_A_LARGE)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Bin packing

/// The pool with host 0 holding 4 vCPU (4 free), host 1 holding 6 (2 free), host 2 empty (8 free).
fn packed_pool(fit: Fit) -> Snapshot {
    let mut snap = snapshot();
    snap.prepare_fit(fit);
    assert!(snap.pools[0].allocate(HostId(0), &Resources { vcpu: 4, memory_mib: 4096, gpu: 0 }));
    assert!(snap.pools[0].allocate(HostId(1), &Resources { vcpu: 6, memory_mib: 4096, gpu: 0 }));
    snap
}

#[test]
fn bin_packing_first_best_worst_fit() {
    // A 2 vCPU request: first fit → host 0 (lowest with room); best fit → host 1 (2 free, least);
    // worst fit → host 2 (8 free, most). The objective is the chosen host's free vCPU.
    for (name, fit, host, free) in
        [("first-fit", Fit::FirstFit, 0, 4.0), ("best-fit", Fit::BestFit, 1, 2.0), ("worst-fit", Fit::WorstFit, 2, 8.0)]
    {
        let snap = packed_pool(fit);
        // Any provider and spot allowed: bin packing still only looks at pools.
        let req = VmRequest { spot_allowed: true, ..small(1) };
        let (c, s) = choose(&policy(name), &req, &snap, T0);
        assert_eq!((c.offer, c.host), (POOL, Some(HostId(host))), "{name}");
        assert_close(s.objective, free);
    }
}

#[test]
fn bin_packing_allocates_on_the_chosen_host() {
    let cfg = policy("best-fit");
    let mut snap = packed_pool(Fit::BestFit);
    // Best fit: host 1 (2 free) takes the first; it is then full, so host 0 (4 free) takes the second.
    let first = place_one(&cfg, &small(1), &mut snap, T0);
    let second = place_one(&cfg, &small(2), &mut snap, T0);
    assert_eq!((first.host, second.host), (Some(HostId(1)), Some(HostId(0))));
    assert_eq!(snap.pools[0].free(HostId(1)).vcpu, 0);
    assert_eq!(snap.pools[0].free(HostId(0)).vcpu, 2);
}

#[test]
fn bin_packing_full_pool_is_no_capacity_or_overflows() {
    let full = |fit| {
        let mut snap = snapshot();
        snap.prepare_fit(fit);
        for h in 0..3 {
            assert!(snap.pools[0].allocate(HostId(h), &Resources { vcpu: 8, memory_mib: 1024, gpu: 0 }));
        }
        snap
    };
    for name in ["first-fit", "best-fit", "worst-fit"] {
        let snap = full(PolicyConfig::default_for(name).and_then(|p| p.fit()).expect("bin-packing policy"));
        // The pool matches the request but is full: no capacity, whether or not clouds could take it.
        assert_eq!(reject(&policy(name), &small(1), &snap, T0), RejectReason::NoCapacity, "{name}");
        let onprem_only = VmRequest { providers: 1 << Provider::Onprem.index(), ..small(2) };
        assert_eq!(reject(&policy(name), &onprem_only, &snap, T0), RejectReason::NoCapacity, "{name}");
    }
    // A request no pool could ever hold (bigger than a host) matches no pool offer.
    let huge = VmRequest::new(VmId(3), Resources { vcpu: 16, memory_mib: 1024, gpu: 0 });
    assert_eq!(reject(&policy("first-fit"), &huge, &snapshot(), T0), RejectReason::NoMatchingOffer);
    // With overflow, the cheapest cloud on demand takes it: O0 at 0.096.
    let overflow = PolicyConfig::FirstFit(BinPackingConfig { overflow_to_cloud: true });
    assert_eq!(pick(&overflow, &small(4), &full(Fit::FirstFit), T0), (AWS_A_SMALL, Market::OnDemand));
}

// ---------------------------------------------------------------------------------------------
// Feasibility: avoidance, health, price and budget caps, commitments

#[test]
fn avoided_market_is_skipped_until_the_backoff_passes() {
    let cfg = policy("lowest-price");
    let mut snap = snapshot();
    // O4's spot market failed for capacity at t=0 with a 300 s backoff.
    let until = SimTime::ZERO + SimDuration::from_secs(300);
    snap.avoid(GCP_A_SMALL, Market::Spot, until);
    assert_eq!(pick(&cfg, &small_spot(1), &snap, T0), (GCP_B_SMALL, Market::Spot));
    assert_eq!(pick(&cfg, &small_spot(1), &snap, SimTime(299_999)), (GCP_B_SMALL, Market::Spot));
    // At 300 s the backoff is over.
    assert_eq!(pick(&cfg, &small_spot(1), &snap, until), (GCP_A_SMALL, Market::Spot));
    // Only the failed market is avoided: O4 on demand is still a candidate meanwhile.
    let cands = snap.candidates(&small_spot(1), T0).expect("candidates");
    assert!(cands.iter().any(|c| c.offer == GCP_A_SMALL && c.market == Market::OnDemand));
    assert!(!cands.iter().any(|c| c.offer == GCP_A_SMALL && c.market == Market::Spot));
}

#[test]
fn unhealthy_locations_and_impossible_requests() {
    let cfg = policy("cost-optimized");
    let mut snap = snapshot();
    // gcp region down: O4 and O5 spot are gone, next cheapest spot with risk is O0 (0.030 + 0.01).
    snap.region_healthy[GCP.idx()] = false;
    assert_eq!(pick(&cfg, &small_spot(1), &snap, T0), (AWS_A_SMALL, Market::Spot));
    // Zone us-east-1a down too: O1 spot (0.035 + 0.01) beats azure O2 (0.040 + 0.01).
    snap.zone_healthy[0] = false;
    assert_eq!(pick(&cfg, &small_spot(1), &snap, T0), (AWS_B_SMALL, Market::Spot));
    // Only aws allowed and both aws zones down: offers match, none is healthy.
    snap.zone_healthy[1] = false;
    let aws_only = VmRequest { providers: 1 << Provider::Aws.index(), ..small(2) };
    assert_eq!(reject(&cfg, &aws_only, &snap, T0), RejectReason::NoCapacity);
    // Nothing sells GPUs.
    let gpu = VmRequest::new(VmId(3), Resources { vcpu: 2, memory_mib: 4096, gpu: 1 });
    assert_eq!(reject(&cfg, &gpu, &snap, T0), RejectReason::NoMatchingOffer);
}

#[test]
fn max_price_is_respected() {
    let cfg = policy("cost-optimized");
    let snap = snapshot();
    // On demand in the clouds starts at 0.096 > 0.05.
    let capped = VmRequest { max_price_per_h: Some(0.05), ..small_cloud(1) };
    assert_eq!(reject(&cfg, &capped, &snap, T0), RejectReason::OverMaxPrice);
    // With spot: only spot markets at or under 0.05 remain (O0, O1, O2, O4, O5, O7).
    let capped_spot = VmRequest { spot_allowed: true, ..capped.clone() };
    let cands = snap.candidates(&capped_spot, T0).expect("candidates");
    let offers: Vec<OfferId> = cands.iter().map(|c| c.offer).collect();
    assert!(cands.iter().all(|c| c.market == Market::Spot && c.price_per_h <= 0.05));
    assert_eq!(offers, [AWS_A_SMALL, AWS_B_SMALL, AZ_1_SMALL, GCP_A_SMALL, GCP_B_SMALL, GCP_A_LARGE]);
    // The max price applies to the list price, not to the risk-adjusted one: O4 (0.025) still wins.
    assert_eq!(pick(&cfg, &capped_spot, &snap, T0), (GCP_A_SMALL, Market::Spot));
    // The pool at 0.06 is over a 0.05 cap as well.
    let anywhere = VmRequest { max_price_per_h: Some(0.05), ..small(2) };
    assert_eq!(reject(&cfg, &anywhere, &snap, T0), RejectReason::OverMaxPrice);
    // Exactly at the cap is allowed.
    let at_cap = VmRequest { max_price_per_h: Some(0.06), ..small(3) };
    assert_eq!(pick(&cfg, &at_cap, &snap, T0), (POOL, Market::OnDemand));
}

#[test]
fn fleet_cap_is_respected() {
    let cfg = policy("cost-optimized");
    let cost = CostModel { max_per_h: Some(0.13), ..CostModel::default() };
    let mut snap = Snapshot::new(catalog(), cost);
    let first = place_one(&cfg, &small_cloud(1), &mut snap, T0);
    assert_eq!(first.offer, AWS_A_SMALL);
    assert_close(snap.spend_rate(), 0.096);
    // 0.096 + x <= 0.13 leaves x <= 0.034: spot O0 (0.030), O4 (0.025), O5 (0.028); not O1 (0.035).
    let cands = snap.candidates(&small_spot(2), T0).expect("candidates");
    let offers: Vec<(OfferId, Market)> = cands.iter().map(|c| (c.offer, c.market)).collect();
    assert_eq!(offers, [(AWS_A_SMALL, Market::Spot), (GCP_A_SMALL, Market::Spot), (GCP_B_SMALL, Market::Spot)]);
    // On demand cannot fit under the cap at all.
    assert_eq!(reject(&cfg, &small_cloud(3), &snap, T0), RejectReason::OverBudget);
    assert_eq!(reject(&cfg, &small(4), &snap, T0), RejectReason::OverBudget);
    // OverBudget outranks OverMaxPrice when both apply.
    let capped = VmRequest { max_price_per_h: Some(0.097), ..small_cloud(5) };
    assert_eq!(reject(&cfg, &capped, &snap, T0), RejectReason::OverBudget);
    // A cap of exactly the pool's 0.06 admits it.
    let pool = Snapshot::new(catalog(), CostModel { max_per_h: Some(0.06), ..CostModel::default() });
    assert_eq!(pick(&cfg, &small(6), &pool, T0), (POOL, Market::OnDemand));
}

#[test]
fn group_budget_is_respected() {
    let cfg = policy("cost-optimized");
    let mut snap = snapshot();
    snap.group_budgets.insert(GroupId(1), 0.2);
    let in_group = |id, g| VmRequest { group: Some(GroupId(g)), ..small_cloud(id) };
    // Two on O0: 2 × 0.096 = 0.192 <= 0.2.
    let a = place_one(&cfg, &in_group(1, 1), &mut snap, T0);
    let b = place_one(&cfg, &in_group(2, 1), &mut snap, T0);
    assert_eq!((a.offer, b.offer), (AWS_A_SMALL, AWS_A_SMALL));
    assert_close(snap.group_spend_rate(GroupId(1)), 0.192);
    // A third would make 0.288; even the cheapest spot (0.025) would make 0.217 > 0.2.
    assert_eq!(reject(&cfg, &in_group(3, 1), &snap, T0), RejectReason::OverBudget);
    let spot = VmRequest { spot_allowed: true, ..in_group(4, 1) };
    assert_eq!(reject(&cfg, &spot, &snap, T0), RejectReason::OverBudget);
    // Other groups and ungrouped requests are not bound by group 1's budget.
    assert_eq!(pick(&cfg, &in_group(5, 2), &snap, T0), (AWS_A_SMALL, Market::OnDemand));
    assert_eq!(pick(&cfg, &small_cloud(6), &snap, T0), (AWS_A_SMALL, Market::OnDemand));
    // The group's spend follows price changes: O0 at 0.05 → 0.1, room for a third.
    snap.set_price(AWS_A_SMALL, Market::OnDemand, 0.05, SimTime(1000));
    assert_close(snap.group_spend_rate(GroupId(1)), 0.1);
    assert_eq!(pick(&cfg, &in_group(7, 1), &snap, SimTime(1000)), (AWS_A_SMALL, Market::OnDemand));
}

#[test]
fn reserved_instance_has_zero_marginal_cost() {
    let cfg = policy("cost-optimized");
    let reserved = Commitment::Reserved { offer: AWS_A_LARGE, count: 1, fee_per_h: 0.12 };
    let mut snap = Snapshot::new(catalog(), CostModel { commitments: vec![reserved], ..CostModel::default() });
    // O6 lists at 0.192 but the reservation pays: marginal 0 beats the pool's 0.06.
    let (c, s) = choose(&cfg, &small(1), &snap, T0);
    assert_eq!((c.offer, c.market, c.coverage), (AWS_A_LARGE, Market::OnDemand, Coverage::Reserved(0)));
    assert_close(c.price_per_h, 0.192);
    assert_eq!(c.marginal_per_h, 0.0);
    assert_eq!(s.cost_per_h, 0.0);
    let charge = snap.allocate(&small(1), &c, T0);
    // The fleet pays the fee only; the instance's own bill is zero however long it runs.
    assert_close(snap.spend_rate(), 0.12);
    assert_eq!(snap.bill(&charge, SimTime(7_200_000)), 0.0);
    // The one reservation is used: the next request pays list prices and takes the pool.
    assert_eq!(pick(&cfg, &small(2), &snap, T0), (POOL, Market::OnDemand));
    // Released, it covers again.
    assert_eq!(snap.release(&charge, SimTime(7_200_000)), 0.0);
    assert_eq!(pick(&cfg, &small(3), &snap, T0), (AWS_A_LARGE, Market::OnDemand));
}

#[test]
fn savings_plan_covers_until_the_commitment_is_used() {
    let cfg = policy("cost-optimized");
    let plan = Commitment::SavingsPlan { provider: Provider::Aws, committed_per_h: 0.1, discount: 0.3 };
    let mut snap = Snapshot::new(catalog(), CostModel { commitments: vec![plan], ..CostModel::default() });
    let aws = |id| VmRequest { providers: 1 << Provider::Aws.index(), ..small(id) };
    // O0 at 0.096 × 0.7 = 0.0672 fits in 0.1: covered, marginal 0.
    let a = place_one(&cfg, &aws(1), &mut snap, T0);
    assert_eq!(a.offer, AWS_A_SMALL);
    assert!(matches!(a.coverage, Coverage::SavingsPlan(0, x) if (x - 0.0672).abs() < EPS), "{:?}", a.coverage);
    assert_eq!(a.marginal_per_h, 0.0);
    // A second would use 0.1344 > 0.1: uncovered, O0 at 0.096 (O1 ties, listed later).
    let b = place_one(&cfg, &aws(2), &mut snap, T0);
    assert_eq!((b.offer, b.coverage), (AWS_A_SMALL, Coverage::None));
    assert_close(b.marginal_per_h, 0.096);
    // Fleet rate: the plan's 0.1 plus the uncovered 0.096.
    assert_close(snap.spend_rate(), 0.196);
}

// ---------------------------------------------------------------------------------------------
// Every policy respects the shared feasibility rules

#[test]
fn every_policy_rejects_what_no_candidate_can_serve() {
    let gpu = VmRequest::new(VmId(1), Resources { vcpu: 2, memory_mib: 4096, gpu: 1 });
    let mut snap = snapshot();
    for name in PolicyConfig::NAMES {
        assert_eq!(reject(&policy(name), &gpu, &snap, T0), RejectReason::NoMatchingOffer, "{name}");
    }
    for h in snap.region_healthy.iter_mut() {
        *h = false;
    }
    for name in PolicyConfig::NAMES {
        let req = VmRequest { spot_allowed: true, ..small(2) };
        assert_eq!(reject(&policy(name), &req, &snap, T0), RejectReason::NoCapacity, "{name}");
    }
}

#[test]
fn every_policy_never_places_on_an_avoided_or_unhealthy_offer() {
    let mut snap = snapshot();
    snap.zone_healthy[4] = false; // europe-north1-a: O4, O7
    snap.avoid(GCP_B_SMALL, Market::Spot, SimTime(1_000));
    snap.avoid(AWS_A_SMALL, Market::OnDemand, SimTime(1_000));
    for name in PolicyConfig::NAMES {
        let req = VmRequest { spot_allowed: true, users_near: Some(GCP), group: Some(GroupId(1)), ..small(1) };
        let (c, _) = choose(&policy(name), &req, &snap, SimTime(999));
        assert_ne!(c.zone, ZoneId(4), "{name}");
        assert_ne!((c.offer, c.market), (GCP_B_SMALL, Market::Spot), "{name}");
        assert_ne!((c.offer, c.market), (AWS_A_SMALL, Market::OnDemand), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn every_name_round_trips() {
    for name in PolicyConfig::NAMES {
        let cfg = PolicyConfig::default_for(name).expect("every listed name has a default");
        assert_eq!(cfg.name(), name);
        assert_eq!(cfg.validate(), Ok(()), "{name}");

        let json = serde_json::to_value(&cfg).expect("serialises to JSON");
        assert_eq!(json["kind"], name);
        let back: PolicyConfig = serde_json::from_value(json).expect("deserialises from JSON");
        assert_eq!(back, cfg, "{name} via JSON");

        let text = toml::to_string(&cfg).expect("serialises to TOML");
        let back: PolicyConfig = toml::from_str(&text).expect("deserialises from TOML");
        assert_eq!(back, cfg, "{name} via TOML:\n{text}");

        // A bare `kind` gives the defaults.
        let bare: PolicyConfig = toml::from_str(&format!("kind = {name:?}")).expect("bare kind");
        assert_eq!(bare, cfg, "{name} from a bare kind");
    }
    assert_eq!(PolicyConfig::default_for("round-robin"), None);
    assert!(toml::from_str::<PolicyConfig>("kind = \"round-robin\"").is_err());
    assert_eq!(PolicyConfig::default().name(), "cost-optimized");
}

#[test]
fn unknown_keys_in_a_policy_table_are_rejected() {
    for name in PolicyConfig::NAMES {
        let text = format!("kind = {name:?}\nno_such_key = 1\n");
        let err = toml::from_str::<PolicyConfig>(&text).expect_err(name);
        assert!(err.to_string().contains("no_such_key"), "{name}: {err}");
    }
    // Nested tables too.
    let text = "kind = \"balanced\"\n[weights]\ncost = 1.0\ncarbon = 1.0\n";
    assert!(toml::from_str::<PolicyConfig>(text).is_err());
}

#[test]
fn policy_parameters_parse_and_validate() {
    let text = "kind = \"balanced\"\ninterruption_cost_usd = 2.0\n[weights]\ncost = 0.0\nperformance = 0.0\navailability = 0.0\nenergy = 1.0\n";
    let cfg: PolicyConfig = toml::from_str(text).expect("valid balanced table");
    assert_eq!(cfg, balanced_with(Weights { cost: 0.0, performance: 0.0, availability: 0.0, energy: 1.0 }, 2.0));
    assert_eq!(cfg.validate(), Ok(()));

    let bad = [
        balanced(0.0, 0.0, 0.0, 0.0),
        balanced(-1.0, 0.0, 0.0, 2.0),
        balanced(f64::NAN, 0.0, 0.0, 1.0),
        PolicyConfig::CostOptimized(CostOptimizedConfig { interruption_cost_usd: -0.1, ..Default::default() }),
        PolicyConfig::CostOptimized(CostOptimizedConfig {
            prior_interruptions_per_h: f64::INFINITY,
            ..Default::default()
        }),
        PolicyConfig::PriceCapacityOptimized(PriceCapacityOptimizedConfig { capacity_tolerance: 1.5 }),
        PolicyConfig::PriceCapacityOptimized(PriceCapacityOptimizedConfig { capacity_tolerance: f64::NAN }),
    ];
    for cfg in bad {
        assert!(cfg.validate().is_err(), "{cfg:?} should be invalid");
    }
}

fn balanced_with(weights: Weights, interruption_cost_usd: f64) -> PolicyConfig {
    PolicyConfig::Balanced(BalancedConfig { weights, interruption_cost_usd, ..Default::default() })
}
