//! Placement decisions, host bin-packing and the engine's event handling.
//!
//! * `placement/<policy>/<offers>`: one [`PlacementPolicy::decide`] on a snapshot of a synthetic
//!   catalog whose fleet is already partly placed. Requests cycle through a fixed list.
//! * `binpack/<fit>/<hosts>`: one find + allocate + release cycle on a [`HostPool`] held at a
//!   steady occupancy.
//! * `engine_handle/lifecycle/100`: [`Engine::handle`] for request arrived → instance running →
//!   released of one VM.

use std::collections::VecDeque;
use std::hint::black_box;

use benches::{BENCH_SEED, synthetic_catalog, synthetic_requests};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::{
    Action, CostModel, Decision, Engine, EngineConfig, Event, Fit, HostId, HostPool, PlacementPolicy, PolicyConfig,
    Resources, SimDuration, SimTime, Snapshot, VmId,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Distinct requests the decisions cycle through.
const REQUESTS: usize = 256;

/// A snapshot of `offers` offers on which a share of the fleet already runs (placed by
/// cost-optimized), so that spread counts, capacity in use and spend are not all zero.
fn warm_snapshot(offers: usize) -> Snapshot {
    let catalog = synthetic_catalog(offers, BENCH_SEED);
    let mut snap = Snapshot::new(catalog, CostModel::default());
    let warm_up = (offers * 2).clamp(20, 2000);
    let placer = PolicyConfig::default().build();
    let requests = synthetic_requests(warm_up, &snap.catalog, BENCH_SEED + 1);
    for (i, req) in requests.iter().enumerate() {
        let now = SimTime(i as u64 * 1000);
        if let Decision::Place { candidate, .. } = placer.decide(req, &snap, now) {
            snap.allocate(req, &candidate, now);
        }
    }
    snap
}

fn placement(c: &mut Criterion) {
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(1));
    for offers in [10usize, 1_000, 100_000] {
        let snap = warm_snapshot(offers);
        let requests = synthetic_requests(REQUESTS, &snap.catalog, BENCH_SEED);
        let now = SimTime(3_600_000);
        for name in ["cost-optimized", "balanced", "price-capacity-optimized"] {
            let Some(config) = PolicyConfig::default_for(name) else { continue };
            let policy: Box<dyn PlacementPolicy> = config.build();
            group.bench_with_input(BenchmarkId::new(name, offers), &offers, |b, _| {
                let mut i = 0usize;
                b.iter(|| {
                    let req = &requests[i % REQUESTS];
                    i += 1;
                    black_box(policy.decide(black_box(req), &snap, now))
                });
            });
        }
    }
    group.finish();
}

/// A pool of `hosts` hosts (32 vCPU, 128 GiB) filled to about 75 % of its vCPU by requests drawn
/// from a fixed seed, with the allocations still live, oldest first.
struct Packing {
    pool: HostPool,
    fit: Fit,
    live: VecDeque<(HostId, Resources)>,
    sizes: Vec<Resources>,
    next: usize,
}

impl Packing {
    fn new(hosts: u32, fit: Fit) -> Self {
        let host = Resources { vcpu: 32, memory_mib: 128 * 1024, gpu: 0 };
        let mut rng = ChaCha8Rng::seed_from_u64(BENCH_SEED);
        let sizes: Vec<Resources> = (0..4096)
            .map(|_| {
                let vcpu = [1, 2, 4, 8][rng.random_range(0..4usize)];
                let gib = vcpu as u64 * [1u64, 2, 4, 8][rng.random_range(0..4usize)];
                Resources { vcpu, memory_mib: gib * 1024, gpu: 0 }
            })
            .collect();
        let mut p = Packing { pool: HostPool::new(hosts, host), fit, live: VecDeque::new(), sizes, next: 0 };
        let target = hosts as u64 * host.vcpu as u64 * 3 / 4;
        while p.pool.used().0 < target {
            if !p.place() {
                break;
            }
        }
        p
    }

    /// Places the next request size; `false` if no host had room.
    fn place(&mut self) -> bool {
        let req = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        match self.pool.find(self.fit, &req) {
            Some(h) => {
                self.pool.allocate(h, &req);
                self.live.push_back((h, req));
                true
            }
            None => false,
        }
    }

    /// Releases the oldest VM and places a new one: occupancy stays where it was.
    fn cycle(&mut self) {
        if let Some((h, req)) = self.live.pop_front() {
            self.pool.release(h, &req);
        }
        self.place();
    }
}

fn binpack(c: &mut Criterion) {
    let mut group = c.benchmark_group("binpack");
    group.throughput(Throughput::Elements(1));
    for hosts in [1_000u32, 10_000] {
        for (name, fit) in [("first-fit", Fit::FirstFit), ("best-fit", Fit::BestFit), ("worst-fit", Fit::WorstFit)] {
            let mut packing = Packing::new(hosts, fit);
            group.bench_with_input(BenchmarkId::new(name, hosts), &hosts, |b, _| b.iter(|| packing.cycle()));
        }
    }
    group.finish();
}

fn engine_handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_handle");
    group.throughput(Throughput::Elements(1));
    let offers = 100;
    let catalog = synthetic_catalog(offers, BENCH_SEED);
    let requests = synthetic_requests(REQUESTS, &catalog, BENCH_SEED);
    let mut engine = match Engine::new(catalog, CostModel::default(), EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => panic!("engine refused the default configuration: {e}"),
    };
    group.bench_with_input(BenchmarkId::new("lifecycle", offers), &offers, |b, _| {
        let mut out: Vec<Action> = Vec::with_capacity(8);
        let mut n = 0u64;
        b.iter(|| {
            let mut request = requests[(n % REQUESTS as u64) as usize].clone();
            let vm = VmId(n);
            request.id = vm;
            // Each life takes 700 s of simulated time, so time never runs backwards.
            let now = SimTime(n * 700_000);
            n += 1;
            out.clear();
            engine.handle(now, Event::RequestArrived { request }, &mut out);
            let instance = out.iter().find_map(|a| match a {
                Action::Provision { instance, .. } => Some(*instance),
                _ => None,
            });
            if let Some(instance) = instance {
                engine.handle(now + SimDuration::from_secs(30), Event::InstanceRunning { instance }, &mut out);
            }
            engine.handle(now + SimDuration::from_secs(600), Event::Released { vm }, &mut out);
            if n.is_multiple_of(1024) {
                black_box(engine.take_bills());
            }
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, placement, binpack, engine_handle);
criterion_main!(benches);
