//! Request generation: Poisson, diurnal and bursty arrivals (by thinning a Poisson process at the
//! highest rate), a weighted mix of shapes, lifetimes from a distribution, or a replayed trace.

use engine::{Resources, SimDuration, SimTime, VmId, VmRequest};
use rand::RngExt;
use rand_distr::{Distribution, Exp};

use crate::rng::{SimRng, Streams};
use crate::scenario::{Arrival, Scenario, Shape, Workload};

/// A generated request with the lifetime the simulator will enforce.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The engine's view.
    pub request: VmRequest,
    /// When it arrives.
    pub at: SimTime,
    /// How long its owner wants it (`None`: until the end of the run).
    pub lifetime: Option<SimDuration>,
    /// Index of the shape it was drawn from (`None` for trace records without a template).
    pub shape: Option<usize>,
}

/// Produces requests in arrival order.
pub struct Generator {
    arrivals: SimRng,
    shapes_rng: SimRng,
    lifetimes: SimRng,
    now_s: f64,
    next_id: u64,
    trace_pos: usize,
    cum_weights: Vec<f64>,
    max_rate: f64,
    end: SimTime,
}

impl Generator {
    /// A generator for `scenario`'s workload.
    pub fn new(scenario: &Scenario, streams: &Streams) -> Self {
        let w = &scenario.workload;
        let mut acc = 0.0;
        let cum_weights = w.shapes.iter().map(|s| {
            acc += s.weight;
            acc
        });
        let max_burst = w.bursts.iter().map(|b| b.multiplier).fold(1.0, f64::max);
        let max_rate = match w.arrival {
            Arrival::Poisson { rate_per_s } => rate_per_s * max_burst,
            Arrival::Diurnal { mean_rate_per_s, amplitude, .. } => mean_rate_per_s * (1.0 + amplitude) * max_burst,
            Arrival::Trace { .. } => 0.0,
        };
        Generator {
            arrivals: streams.stream("workload/arrivals"),
            shapes_rng: streams.stream("workload/shapes"),
            lifetimes: streams.stream("workload/lifetimes"),
            now_s: 0.0,
            next_id: 0,
            trace_pos: 0,
            cum_weights: cum_weights.collect(),
            max_rate,
            end: SimTime(scenario.duration.as_millis()),
        }
    }

    /// The next request, or `None` when the workload is exhausted or past the end of the run.
    pub fn next(&mut self, w: &Workload) -> Option<Generated> {
        if w.max_requests.is_some_and(|m| self.next_id >= m) {
            return None;
        }
        let (at, lifetime, resources, shape) = match &w.arrival {
            Arrival::Trace { records, time_scale } => {
                let r = records.get(self.trace_pos)?;
                self.trace_pos += 1;
                let at = SimTime(SimDuration::from_secs_f64(r.arrival_s / time_scale).as_millis());
                let lifetime = r.lifetime_s.map(|l| SimDuration::from_secs_f64(l / time_scale));
                let res = Resources { vcpu: r.vcpu.max(1), memory_mib: r.memory_mib, gpu: 0 };
                (at, lifetime, res, if w.shapes.is_empty() { None } else { Some(0) })
            }
            _ => {
                let (at, in_burst) = self.next_arrival(w)?;
                let idx = self.pick_shape(w, in_burst);
                let s = &w.shapes[idx];
                let vcpu = s.vcpu[self.shapes_rng.random_range(0..s.vcpu.len())];
                let memory_mib = s.memory_mib[self.shapes_rng.random_range(0..s.memory_mib.len())];
                let lifetime = w.lifetime.sample(&mut self.lifetimes);
                (at, Some(lifetime), Resources { vcpu, memory_mib, gpu: s.gpu }, Some(idx))
            }
        };
        if at >= self.end {
            return None;
        }
        let id = VmId(self.next_id);
        self.next_id += 1;
        let mut request = VmRequest::new(id, resources);
        if let Some(s) = shape.map(|i| &w.shapes[i]) {
            apply_shape(&mut request, s, lifetime);
        }
        Some(Generated { request, at, lifetime, shape })
    }

    /// Thinning: candidates at the maximum rate, accepted with probability rate(t) / max.
    fn next_arrival(&mut self, w: &Workload) -> Option<(SimTime, Option<usize>)> {
        let exp = Exp::new(self.max_rate).ok()?;
        loop {
            self.now_s += exp.sample(&mut self.arrivals);
            let at = SimTime(SimDuration::from_secs_f64(self.now_s).as_millis());
            if at >= self.end {
                return Some((at, None));
            }
            let base = match w.arrival {
                Arrival::Poisson { rate_per_s } => rate_per_s,
                Arrival::Diurnal { mean_rate_per_s, amplitude, peak } => {
                    let day = 86_400.0;
                    let phase = (self.now_s - peak.as_secs_f64()) / day * std::f64::consts::TAU;
                    mean_rate_per_s * (1.0 + amplitude * phase.cos())
                }
                Arrival::Trace { .. } => return None,
            };
            let burst = w.bursts.iter().enumerate().find(|(_, b)| at >= b.start && at < b.end);
            let mult = burst.map_or(1.0, |(_, b)| b.multiplier);
            let rate = base * mult;
            let u: f64 = self.arrivals.random();
            if u * self.max_rate <= rate {
                // Within a burst, the extra (m - 1) / m of arrivals are burst traffic.
                let in_burst = burst.and_then(|(i, b)| {
                    let extra: f64 = self.arrivals.random();
                    (b.multiplier > 1.0 && extra < (b.multiplier - 1.0) / b.multiplier).then_some(i)
                });
                return Some((at, in_burst));
            }
        }
    }

    fn pick_shape(&mut self, w: &Workload, burst: Option<usize>) -> usize {
        if let Some(b) = burst.map(|i| &w.bursts[i]).filter(|b| !b.shapes.is_empty()) {
            return b.shapes[self.shapes_rng.random_range(0..b.shapes.len())];
        }
        let total = self.cum_weights.last().copied().unwrap_or(0.0);
        let x = self.shapes_rng.random::<f64>() * total;
        self.cum_weights.iter().position(|&c| x < c).unwrap_or(self.cum_weights.len().saturating_sub(1))
    }
}

fn apply_shape(req: &mut VmRequest, s: &Shape, lifetime: Option<SimDuration>) {
    req.providers = s.providers;
    req.regions = s.regions.clone();
    req.max_price_per_h = s.max_price_per_h;
    req.spot_allowed = s.spot_allowed;
    req.users_near = s.users_near;
    req.group = s.group;
    req.egress_gib_per_h = s.egress_gib_per_h;
    if s.lifetime_hint {
        req.lifetime_hint = lifetime;
    }
}
