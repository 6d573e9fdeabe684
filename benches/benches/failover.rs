//! The cost of evaluating a deployment with 1,000 replicas: a steady-state evaluation (triggers
//! checked, nothing to move), and an evaluation that fails the whole deployment over (1,000
//! replacements planned and provisioned).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::deploy::{ActivePassiveConfig, SpotRecovery, Strategy, Trigger, TriggerKind};
use engine::{
    Action, Catalog, CostModel, DeploymentSpec, Engine, EngineConfig, Event, GroupId, InstanceType, InstanceTypeId,
    Offer, OfferId, OfferKind, Provider, Region, RegionId, Resources, SimDuration, SimTime, TimerKind, VmId, VmRequest,
    Zone, ZoneId,
};

const REPLICAS: u32 = 1_000;

fn catalog() -> Catalog {
    let providers = [Provider::Aws, Provider::Azure, Provider::Gcp];
    let regions = providers
        .iter()
        .enumerate()
        .map(|(i, p)| Region {
            name: format!("r{i}"),
            provider: *p,
            zones: vec![ZoneId(i as u16)],
            carbon_g_per_kwh: 400.0,
        })
        .collect();
    let zones = (0..3).map(|i| Zone { name: "a".into(), region: RegionId(i) }).collect();
    let types = vec![InstanceType { name: "small".into(), resources: Resources { vcpu: 2, memory_mib: 4096, gpu: 0 } }];
    let offers = (0..3)
        .map(|i| Offer {
            id: OfferId(i),
            region: RegionId(i as u16),
            zone: ZoneId(i as u16),
            kind: OfferKind::Instance(InstanceTypeId(0)),
            on_demand_per_h: 0.1,
            spot_per_h: None,
            per_gib_h: 0.0,
            capacity: 2 * REPLICAS,
        })
        .collect();
    match Catalog::new(regions, zones, types, offers, vec![], vec![1.0; 9]) {
        Ok(c) => c,
        Err(e) => panic!("bench catalog: {e}"),
    }
}

/// An engine with a 1,000-replica active-passive deployment, all running in region 0.
fn steady() -> (Engine, SimTime) {
    let mut engine = match Engine::new(catalog(), CostModel::default(), EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => panic!("bench engine: {e}"),
    };
    let spec = DeploymentSpec {
        id: GroupId(1),
        name: "bench".into(),
        replicas: REPLICAS,
        template: VmRequest::new(VmId(0), Resources { vcpu: 2, memory_mib: 2048, gpu: 0 }),
        strategy: Strategy::ActivePassive(ActivePassiveConfig {
            primary: RegionId(0),
            secondary: vec![RegionId(1), RegionId(2)],
            failback: false,
            hold_down: SimDuration::from_secs(900),
        }),
        triggers: vec![Trigger {
            kind: TriggerKind::Availability { threshold: 0.95 },
            duration: SimDuration::from_secs(300),
        }],
        cooldown: SimDuration::from_secs(600),
        evaluate_every: SimDuration::from_secs(30),
        max_cost_per_h: None,
        spot: SpotRecovery::default(),
        migration: None,
        disaster_recovery: None,
        rollout: None,
    };
    let mut out = Vec::new();
    engine.handle(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(spec) }, &mut out);
    let now = SimTime(60_000);
    let mut more = Vec::new();
    for a in &out {
        if let Action::Provision { instance, .. } = a {
            engine.handle(now, Event::InstanceRunning { instance: *instance }, &mut more);
        }
    }
    (engine, now)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("failover_evaluation");
    g.throughput(Throughput::Elements(REPLICAS as u64));
    let tick = Event::TimerFired { timer: TimerKind::Deployment(GroupId(1)) };
    g.bench_function(BenchmarkId::new("steady", REPLICAS), |b| {
        let (mut engine, mut now) = steady();
        let mut out = Vec::new();
        b.iter(|| {
            now += SimDuration::from_secs(30);
            out.clear();
            engine.handle(now, tick.clone(), &mut out);
            out.len()
        });
    });
    g.bench_function(BenchmarkId::new("fail_over", REPLICAS), |b| {
        b.iter_batched(
            || {
                let (mut engine, now) = steady();
                let mut out = Vec::new();
                engine.handle(now, Event::RegionHealth { region: RegionId(0), healthy: false }, &mut out);
                (engine, now)
            },
            |(mut engine, now)| {
                let mut out = Vec::new();
                engine.handle(now + SimDuration::from_secs(30), tick.clone(), &mut out);
                assert!(out.iter().any(|a| matches!(a, Action::FailOver { .. })));
                out.len()
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
