//! The world every integration test runs in, and a small harness around [`Engine`].
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
//! A small request (2 vCPU, 4 GiB) costs $0.06/h on the pool (2 × 0.02 + 4 × 0.005).

use engine::{
    Action, Catalog, CostModel, Engine, EngineConfig, Event, Fit, InstanceId, InstanceType, InstanceTypeId, Offer,
    OfferId, OfferKind, Placement, PolicyConfig, PoolId, PoolSpec, Provider, ProvisionReason, Region, RegionId,
    Resources, SimDuration, SimTime, VmId, VmRequest, Zone, ZoneId,
};

pub const AWS: RegionId = RegionId(0);
pub const AZURE: RegionId = RegionId(1);
pub const GCP: RegionId = RegionId(2);
pub const ONPREM: RegionId = RegionId(3);

pub const AWS_A_SMALL: OfferId = OfferId(0);
pub const AWS_B_SMALL: OfferId = OfferId(1);
pub const AZ_1_SMALL: OfferId = OfferId(2);
pub const GCP_A_SMALL: OfferId = OfferId(4);
pub const GCP_B_SMALL: OfferId = OfferId(5);
pub const AWS_A_LARGE: OfferId = OfferId(6);
pub const POOL: OfferId = OfferId(8);

/// Providers bit set: the three clouds, no on-prem.
pub const CLOUDS: u8 = 0b0111;

/// The fixture world described in the module docs.
pub fn catalog() -> Catalog {
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
        1.0, 80.0, 95.0, 90.0,
        80.0, 1.0, 30.0, 10.0,
        95.0, 30.0, 1.0, 25.0,
        90.0, 10.0, 25.0, 1.0,
    ];
    Catalog::new(regions, zones, instance_types, offers, pools, latency_ms).expect("fixture catalog is valid")
}

/// A 2 vCPU / 4 GiB request with no constraints (on demand only).
pub fn small(id: u64) -> VmRequest {
    VmRequest::new(VmId(id), Resources { vcpu: 2, memory_mib: 4096, gpu: 0 })
}

/// `small` restricted to the clouds.
pub fn small_cloud(id: u64) -> VmRequest {
    VmRequest { providers: CLOUDS, ..small(id) }
}

/// `small` restricted to aws.
pub fn small_aws(id: u64) -> VmRequest {
    VmRequest { providers: 1 << Provider::Aws.index(), ..small(id) }
}

/// `small_cloud` that may run on spot.
pub fn small_spot(id: u64) -> VmRequest {
    VmRequest { spot_allowed: true, ..small_cloud(id) }
}

/// Engine settings with the named policy.
pub fn config(policy: &str) -> EngineConfig {
    EngineConfig { policy: PolicyConfig::default_for(policy).expect("fixture policy name"), ..EngineConfig::default() }
}

/// Seconds as a time.
pub fn secs(s: u64) -> SimTime {
    SimTime::ZERO + SimDuration::from_secs(s)
}

/// An engine over the fixture world, fed one event at a time.
pub struct Run {
    pub engine: Engine,
}

impl Run {
    pub fn new(config: EngineConfig) -> Self {
        Run::with_cost(CostModel::default(), config)
    }

    pub fn with_cost(cost: CostModel, config: EngineConfig) -> Self {
        Run { engine: Engine::new(catalog(), cost, config).expect("fixture engine settings are valid") }
    }

    /// Handles `event` at `now` and returns the actions.
    pub fn at(&mut self, now: SimTime, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.engine.handle(now, event, &mut out);
        out
    }

    pub fn request(&mut self, now: SimTime, request: VmRequest) -> Vec<Action> {
        self.at(now, Event::RequestArrived { request })
    }

    pub fn running(&mut self, now: SimTime, instance: u64) -> Vec<Action> {
        self.at(now, Event::InstanceRunning { instance: InstanceId(instance) })
    }
}

/// The one provision in `actions`: (instance, vm, placement, reason). Panics otherwise.
pub fn provision(actions: &[Action]) -> (InstanceId, VmId, Placement, ProvisionReason) {
    match actions {
        [Action::Provision { instance, vm, placement, reason, .. }] => (*instance, *vm, *placement, *reason),
        other => panic!("expected one provision, got {other:?}"),
    }
}

/// The one provision in `actions` as (instance number, offer, market, reason).
pub fn provisioned(actions: &[Action]) -> (u64, OfferId, engine::Market, ProvisionReason) {
    let (i, _, p, r) = provision(actions);
    (i.0, p.offer, p.market, r)
}

pub fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "got {actual}, expected {expected}");
}
