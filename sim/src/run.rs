//! The driver: one discrete-event loop that feeds the engine what the mock clouds and the workload
//! do, carries out the engine's actions on the clouds, and records what happened.

use engine::{Action, Engine, Event, Market, SimDuration, SimTime, TimerKind, VmId};

use crate::cloud::{Cloud, CloudEvent, Observation};
use crate::queue::EventQueue;
use crate::results::{PricePoint, Recorder, RunResults};
use crate::rng::Streams;
use crate::scenario::{FaultKind, Scenario};
use crate::workload::Generator;

/// Events of the simulation loop.
#[derive(Clone, Debug, PartialEq)]
pub enum SimEvent {
    /// The next generated request arrives.
    Arrival,
    /// A VM's owner releases it.
    Release(VmId),
    /// Something in the clouds.
    Cloud(CloudEvent),
    /// A fault starts (`true`) or ends.
    Fault(usize, bool),
    /// The engine learns of a health change (after a detection delay).
    Detect(usize, bool),
    /// A timer the engine set.
    Timer(TimerKind),
    /// Take a time-series sample.
    Sample,
    /// Create deployment `i` of the scenario.
    Deploy(usize),
    /// Deployment `i` now needs this many replicas.
    Demand(usize, u32),
    /// Look at the deployments (for downtime accounting).
    Probe,
    /// The control plane polls VM state, metrics and health through the modeled cache.
    CachePoll,
}

/// How often deployments are looked at for downtime accounting.
pub const PROBE_INTERVAL: SimDuration = SimDuration::from_secs(5);

/// Options of one run that are not in the scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Seed override.
    pub seed: Option<u64>,
    /// Policy override.
    pub policy: Option<engine::PolicyConfig>,
}

/// Reports progress (simulated fraction done) to whoever watches.
pub trait Progress {
    /// Called now and then with the simulated time reached.
    fn tick(&mut self, now: SimTime, events: u64);
}

impl Progress for () {
    fn tick(&mut self, _: SimTime, _: u64) {}
}

/// Watches the engine being driven, without changing the run: what it is told and what it
/// answers. Datasets for learned policies are recorded through it (the `learn` crate).
pub trait Observer {
    /// Called just before the engine handles `event` at `now` (the engine is as it was before).
    fn before(&mut self, _now: SimTime, _engine: &Engine, _event: &Event) {}
    /// Called with the actions the engine answered an event with.
    fn after(&mut self, _now: SimTime, _engine: &Engine, _actions: &[Action]) {}
}

impl Observer for () {}

/// Runs a scenario to its end.
pub fn run(scenario: &Scenario, opts: &RunOptions, progress: &mut dyn Progress) -> crate::Result<RunResults> {
    run_observed(scenario, opts, progress, &mut ())
}

/// [`run`], telling `observer` every event fed to the engine and the actions it answered.
pub fn run_observed(
    scenario: &Scenario,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    observer: &mut dyn Observer,
) -> crate::Result<RunResults> {
    let mut s = scenario.clone();
    if let Some(seed) = opts.seed {
        s.seed = seed;
    }
    if let Some(p) = &opts.policy {
        s.engine.policy = p.clone();
    }
    Simulation::new(&s, observer)?.run(progress)
}

struct Simulation<'a> {
    s: &'a Scenario,
    observer: &'a mut dyn Observer,
    engine: Engine,
    queue: EventQueue<SimEvent>,
    cloud: Cloud,
    generator: Generator,
    rec: Recorder,
    actions: Vec<Action>,
    observations: Vec<Observation>,
    /// Outages the engine has been told of, by fault index.
    known_down: std::collections::BTreeSet<usize>,
    end: SimTime,
    next_arrival: Option<crate::workload::Generated>,
    /// The modeled cache (scenarios with `[cache]` only).
    cache: Option<crate::cache::CacheModel>,
    /// The first placement of the latest feed with a cache (VM, offer, market).
    last_placement: Option<(VmId, engine::OfferId, Market)>,
}

impl<'a> Simulation<'a> {
    fn new(s: &'a Scenario, observer: &'a mut dyn Observer) -> crate::Result<Self> {
        let streams = Streams::new(s.seed);
        let engine = Engine::new(s.catalog.clone(), s.cost.clone(), s.engine.clone())?;
        let mut queue = EventQueue::default();
        let cloud = Cloud::new(s, &streams, &mut queue);
        let generator = Generator::new(s, &streams);
        queue.push(SimTime::ZERO, SimEvent::Sample);
        for (i, d) in s.deployments.iter().enumerate() {
            queue.push(SimTime::ZERO, SimEvent::Deploy(i));
            for (at, n) in &d.demand {
                queue.push(*at, SimEvent::Demand(i, *n));
            }
        }
        if !s.deployments.is_empty() {
            queue.push(SimTime::ZERO, SimEvent::Probe);
        }
        for (i, f) in s.faults.iter().enumerate() {
            queue.push(f.at, SimEvent::Fault(i, true));
            queue.push(f.end, SimEvent::Fault(i, false));
        }
        // Only with a cache: without one the event sequence stays exactly as it was.
        let cache = s.cache.as_ref().map(|c| crate::cache::CacheModel::new(s, c, &engine));
        if let Some(c) = &cache {
            queue.push(SimTime::ZERO + c.poll_interval(), SimEvent::CachePoll);
        }
        let mut sim = Simulation {
            s,
            observer,
            engine,
            queue,
            cloud,
            generator,
            rec: Recorder::new(),
            actions: Vec::new(),
            observations: Vec::new(),
            known_down: Default::default(),
            end: SimTime(s.duration.as_millis()),
            next_arrival: None,
            cache,
            last_placement: None,
        };
        sim.schedule_next_arrival();
        Ok(sim)
    }

    fn run(mut self, progress: &mut dyn Progress) -> crate::Result<RunResults> {
        let mut events = 0u64;
        while let Some((now, ev)) = self.queue.pop() {
            if now >= self.end {
                break;
            }
            events += 1;
            if events & 0xffff == 0 {
                progress.tick(now, events);
            }
            self.step(now, ev);
        }
        // Close the books at the end of the run.
        let bills = self.engine.bill_open_instances(self.end);
        self.cloud.count_leaks(&bills.iter().map(|b| b.instance).collect());
        self.rec.add_bills(&self.engine.take_bills(), &self.s.catalog);
        self.rec.add_bills(&bills, &self.s.catalog);
        self.rec.probe(self.end, &self.engine);
        self.rec.sample(self.end, &self.engine);
        let mut results = self.rec.finish(self.s, &self.engine, self.end, events, &self.cloud.stats);
        results.summary.cache = self.cache.map(|c| c.finish(self.end));
        Ok(results)
    }

    fn step(&mut self, now: SimTime, ev: SimEvent) {
        // With a cache, the engine sees health as the cache serves it before anything it handles.
        if self.cache.is_some() && !matches!(ev, SimEvent::Sample | SimEvent::Probe | SimEvent::CachePoll) {
            self.refresh_cached_health(now);
        }
        match ev {
            SimEvent::Arrival => {
                if let Some(g) = self.next_arrival.take() {
                    self.arrive(now, g);
                }
                self.schedule_next_arrival();
            }
            SimEvent::Release(vm) => {
                if let Some(c) = &mut self.cache {
                    c.ended(vm, now, false);
                }
                self.rec.released(vm, now);
                self.feed(now, Event::Released { vm });
            }
            SimEvent::Cloud(ce) => {
                match &ce {
                    CloudEvent::Up(i) => {
                        let i = *i;
                        self.cloud_event(now, ce);
                        if let Some(vm) = self.cloud.vm_of(i) {
                            if let Some(c) = &mut self.cache {
                                c.running(vm, now);
                            }
                            self.rec.instance_up(vm, i, now);
                            self.feed(now, Event::InstanceRunning { instance: i });
                        }
                        return;
                    }
                    CloudEvent::CreateFailed(i, cause) => {
                        let (i, cause) = (*i, *cause);
                        if let Some(c) = &mut self.cache {
                            c.gone(i, now);
                        }
                        self.feed(now, Event::InstanceFailed { instance: i, cause });
                        return;
                    }
                    _ => {}
                }
                self.cloud_event(now, ce);
            }
            SimEvent::Fault(i, on) => {
                let f = &self.s.faults[i];
                if let FaultKind::Outage { detect_after, .. } = f.kind {
                    if detect_after == SimDuration::ZERO {
                        // Known at once: the engine hears before the failures arrive.
                        self.detect(now, i, on);
                    } else {
                        self.queue.push(now + detect_after, SimEvent::Detect(i, on));
                    }
                }
                match f.kind {
                    FaultKind::Metrics { deployment, cpu, latency_p99_ms, api_error_rate } => {
                        let ev = if on {
                            Event::DeploymentMetrics { deployment, cpu, latency_p99_ms, api_error_rate }
                        } else {
                            Event::DeploymentMetrics {
                                deployment,
                                cpu: None,
                                latency_p99_ms: None,
                                api_error_rate: None,
                            }
                        };
                        self.feed(now, ev);
                    }
                    FaultKind::ManualFailover { deployment, to } if on => {
                        self.feed(now, Event::ManualFailover { deployment, to })
                    }
                    _ => {}
                }
                let mut obs = std::mem::take(&mut self.observations);
                self.cloud.fault(self.s, i, on, &mut obs);
                self.rec.fault(i, &f.kind, on, now, self.s);
                self.observe(now, &mut obs);
                self.observations = obs;
            }
            SimEvent::Detect(i, on) => self.detect(now, i, on),
            SimEvent::Deploy(i) => {
                let spec = self.s.deployments[i].spec.clone();
                self.rec.deployment(&spec);
                self.feed(now, Event::DeploymentApplied { spec: Box::new(spec) });
            }
            SimEvent::Demand(i, replicas) => {
                let deployment = self.s.deployments[i].spec.id;
                self.feed(now, Event::DeploymentDemand { deployment, replicas });
            }
            SimEvent::Probe => {
                self.rec.probe(now, &self.engine);
                self.queue.push(now + PROBE_INTERVAL, SimEvent::Probe);
            }
            SimEvent::Timer(t) => self.feed(now, Event::TimerFired { timer: t }),
            SimEvent::CachePoll => {
                if let Some(c) = &mut self.cache {
                    c.poll(now);
                    let next = now + c.poll_interval();
                    self.queue.push(next, SimEvent::CachePoll);
                }
                self.refresh_cached_health(now);
            }
            SimEvent::Sample => {
                self.rec.add_bills(&self.engine.take_bills(), &self.s.catalog);
                self.rec.probe(now, &self.engine);
                self.rec.sample(now, &self.engine);
                self.queue.push(now + self.s.sample_interval, SimEvent::Sample);
            }
        }
    }

    /// The engine learns of an outage's start or end; overlapping outages of one place keep it
    /// down until the last of them is over.
    fn detect(&mut self, now: SimTime, i: usize, on: bool) {
        if on {
            self.known_down.insert(i);
        } else {
            self.known_down.remove(&i);
        }
        if let FaultKind::Outage { region, zone, .. } = self.s.faults[i].kind {
            let down = self.known_down.iter().any(|j| {
                matches!(self.s.faults[*j].kind, FaultKind::Outage { region: r, zone: z, .. } if r == region && z == zone)
            });
            if let Some(c) = &mut self.cache {
                // The health API says so now; the engine hears it through the cache.
                c.health_changed(region, zone, !down);
                return;
            }
            let ev = match zone {
                Some(z) => Event::ZoneHealth { zone: z, healthy: !down },
                None => Event::RegionHealth { region, healthy: !down },
            };
            self.feed(now, ev);
        }
    }

    fn arrive(&mut self, now: SimTime, g: crate::workload::Generated) {
        let vm = g.request.id;
        if let Some(l) = g.lifetime {
            let end = now + l;
            if end < self.end {
                self.queue.push(end, SimEvent::Release(vm));
            }
        }
        self.rec.arrived(&g, now);
        if self.cache.is_some() {
            self.arrive_through_cache(now, g.request, g.lifetime);
        } else {
            self.feed(now, Event::RequestArrived { request: g.request });
        }
    }

    /// Reads health through the cache and tells the engine what the served values changed.
    fn refresh_cached_health(&mut self, now: SimTime) {
        let Some(c) = &mut self.cache else { return };
        for ev in c.refresh_health(now) {
            self.feed(now, ev);
        }
    }

    /// An arrival decided on what the cache serves: health as believed, prices as served (set
    /// for the decision and restored at the same instant, so bills keep the true prices), and
    /// judged against the decision the true prices give.
    fn arrive_through_cache(&mut self, now: SimTime, request: engine::VmRequest, lifetime: Option<SimDuration>) {
        let Some(c) = &mut self.cache else { return };
        let stale = c.read_prices(now);
        if stale.is_empty() {
            self.feed(now, Event::RequestArrived { request });
            return;
        }
        let truth_choice = c.truth_decision(&request, &self.engine, now);
        let mut sink = Vec::new();
        for &(offer, market, served, _) in &stale {
            self.engine.handle(now, Event::PriceChanged { offer, market, price_per_h: served }, &mut sink);
        }
        let vm = request.id;
        let req = request.clone();
        self.last_placement = None;
        self.feed(now, Event::RequestArrived { request });
        for &(offer, market, _, truth) in &stale {
            self.engine.handle(now, Event::PriceChanged { offer, market, price_per_h: truth }, &mut sink);
        }
        let actual = self.last_placement.take().filter(|(v, _, _)| *v == vm).map(|(_, o, m)| (o, m));
        if let Some(c) = &mut self.cache {
            c.judge_price_decision(self.s, &self.engine, &req, truth_choice, actual, lifetime, now, self.end);
        }
    }

    /// Arrivals are generated one at a time, just before they are due.
    fn schedule_next_arrival(&mut self) {
        self.next_arrival = self.generator.next(&self.s.workload);
        if let Some(g) = &self.next_arrival {
            self.queue.push(g.at, SimEvent::Arrival);
        }
    }

    fn cloud_event(&mut self, now: SimTime, ce: CloudEvent) {
        let mut obs = std::mem::take(&mut self.observations);
        self.cloud.on_event(self.s, now, ce, &mut self.queue, &mut obs);
        self.observe(now, &mut obs);
        self.observations = obs;
    }

    fn observe(&mut self, now: SimTime, obs: &mut Vec<Observation>) {
        for o in obs.drain(..) {
            match o {
                Observation::Price(offer, market, price) => {
                    if let Some(c) = &mut self.cache {
                        c.price_changed(self.s, offer, market, price);
                    }
                    if market == Market::Spot {
                        self.rec.price(PricePoint { time_s: now.as_secs_f64(), offer, price_per_h: price });
                    }
                    self.feed(now, Event::PriceChanged { offer, market, price_per_h: price });
                }
                Observation::Died(i, cause) => {
                    if let Some(c) = &mut self.cache {
                        c.gone(i, now);
                    }
                    self.refresh_cached_health(now);
                    self.rec.instance_lost(i, now);
                    self.feed(now, Event::InstanceFailed { instance: i, cause });
                }
                Observation::Notice(i, at) => {
                    self.rec.notice(i);
                    self.feed(now, Event::InterruptionNotice { instance: i, at });
                }
            }
        }
    }

    /// Feeds one event to the engine and carries out its actions.
    fn feed(&mut self, now: SimTime, ev: Event) {
        let mut actions = std::mem::take(&mut self.actions);
        self.observer.before(now, &self.engine, &ev);
        self.engine.handle(now, ev, &mut actions);
        self.observer.after(now, &self.engine, &actions);
        for a in actions.drain(..) {
            match a {
                Action::Provision { instance, vm, placement, .. } => {
                    if let Some(c) = &mut self.cache {
                        c.provisioned(now, vm, instance, self.s, placement.offer);
                        if self.last_placement.is_none() {
                            self.last_placement = Some((vm, placement.offer, placement.market));
                        }
                    }
                    self.rec.provisioned(vm, instance, &placement);
                    self.cloud.create(self.s, now, instance, vm, &placement, &mut self.queue);
                }
                Action::Terminate { instance, vm } => {
                    if let Some(c) = &mut self.cache {
                        c.gone(instance, now);
                    }
                    self.rec.terminated(vm, instance, now);
                    self.cloud.delete(instance);
                }
                Action::SetTimer { timer } => self.queue.push(timer.at, SimEvent::Timer(timer.kind)),
                Action::Reject { vm, reason } => {
                    if let Some(c) = &mut self.cache {
                        c.ended(vm, now, true);
                    }
                    self.rec.rejected(vm, reason, now)
                }
                Action::FailOver { deployment, from, to, reason } => {
                    self.rec.failover(deployment, from, to, reason, now, &self.s.catalog)
                }
                Action::Migrated {
                    deployment,
                    vm,
                    kind,
                    from,
                    to,
                    started,
                    downtime,
                    transferred_gib,
                    egress_usd,
                    overlap,
                } => self.rec.migrated(
                    deployment,
                    vm,
                    kind,
                    from,
                    to,
                    started,
                    downtime,
                    transferred_gib,
                    egress_usd,
                    overlap,
                    now,
                    &self.s.catalog,
                ),
                Action::Restoring { deployment, vm, from, recovery_point, restore_time } => {
                    self.rec.restoring(deployment, vm, from, recovery_point, restore_time, now, &self.s.catalog)
                }
                Action::BackupCompleted { deployment, .. } => self.rec.backup_completed(deployment),
                // A checked scenario's deployments are valid: the engine has nothing to refuse.
                Action::DeploymentRejected { .. } => {}
            }
        }
        self.actions = actions;
    }
}
