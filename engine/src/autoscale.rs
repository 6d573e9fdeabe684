//! Autoscaling on CPU utilisation, as Kubernetes' HorizontalPodAutoscaler decides it: a pure
//! function of the replicas now, the observed utilisation, the recent recommendations and `now`.
//!
//! - The raw recommendation is `ceil(current × observed / target)`, unless the ratio
//!   `observed / target` is within `tolerance` of 1 (then `current`), or there is no observation
//!   (then `current`), clamped to `[min_replicas, max_replicas]`.
//! - Scaling up follows the recommendation at once.
//! - Scaling down is stabilised: the answer is the highest recommendation of the last
//!   `scale_down_stabilization` (never above `current`), so a dip shorter than the window does
//!   not remove replicas that a recovery would want back (no flapping).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, SimTime};

/// Bounds and target of an autoscaled deployment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalePolicy {
    /// Fewest replicas (>= 1).
    pub min_replicas: u32,
    /// Most replicas (>= `min_replicas`).
    pub max_replicas: u32,
    /// Target mean CPU utilisation, 0..1 (exclusive of 0).
    pub target_cpu: f64,
    /// Ratios within this of 1 do not scale (Kubernetes: 0.1).
    pub tolerance: f64,
    /// How long scaling down looks back (Kubernetes: 300 s).
    pub scale_down_stabilization: SimDuration,
}

impl AutoscalePolicy {
    /// A policy with Kubernetes' tolerance (0.1) and scale-down stabilisation (5 minutes).
    pub fn new(min_replicas: u32, max_replicas: u32, target_cpu: f64) -> Self {
        AutoscalePolicy {
            min_replicas,
            max_replicas,
            target_cpu,
            tolerance: 0.1,
            scale_down_stabilization: SimDuration::from_secs(300),
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_replicas == 0 {
            return Err("min_replicas must be at least 1".into());
        }
        if self.min_replicas > self.max_replicas {
            return Err(format!(
                "min_replicas ({}) must not exceed max_replicas ({})",
                self.min_replicas, self.max_replicas
            ));
        }
        if !(self.target_cpu.is_finite() && self.target_cpu > 0.0 && self.target_cpu <= 1.0) {
            return Err("target_cpu must be a share above 0 and at most 1".into());
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err("tolerance must be a share in [0, 1)".into());
        }
        Ok(())
    }

    fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.min_replicas, self.max_replicas.max(self.min_replicas))
    }
}

/// The recommendations an autoscaler remembers (those of the stabilisation window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Autoscaler {
    recent: VecDeque<(SimTime, u32)>,
}

impl Autoscaler {
    /// An autoscaler with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The replicas wanted at `now`, given `current` replicas and the mean CPU utilisation
    /// observed over them (`None`: no datapoint), 0..1.
    pub fn desired(&mut self, p: &AutoscalePolicy, current: u32, cpu: Option<f64>, now: SimTime) -> u32 {
        let current = p.clamp(current);
        let raw = match cpu.filter(|c| c.is_finite() && *c >= 0.0) {
            Some(cpu) => {
                let ratio = cpu / p.target_cpu;
                if (ratio - 1.0).abs() <= p.tolerance {
                    current
                } else {
                    // ceil, forgiving the float noise of an exact product.
                    let want = (current as f64 * ratio - 1e-9).ceil();
                    p.clamp(want.clamp(0.0, u32::MAX as f64) as u32)
                }
            }
            None => current,
        };
        while self.recent.front().is_some_and(|(t, _)| now.since(*t) > p.scale_down_stabilization) {
            self.recent.pop_front();
        }
        self.recent.push_back((now, raw));
        if raw >= current {
            return raw;
        }
        let highest = self.recent.iter().map(|(_, n)| *n).max().unwrap_or(raw);
        highest.min(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SimTime = SimTime(1_000_000);

    fn at(s: u64) -> SimTime {
        T + SimDuration::from_secs(s)
    }

    #[test]
    fn the_hpa_formula_within_bounds() {
        let p = AutoscalePolicy::new(2, 10, 0.7);
        let mut a = Autoscaler::new();
        // 3 × 0.95 / 0.7 = 4.07 → 5.
        assert_eq!(a.desired(&p, 3, Some(0.95), at(0)), 5);
        // 5 × 1.0 / 0.7 = 7.14 → 8.
        assert_eq!(a.desired(&p, 5, Some(1.0), at(15)), 8);
        // 8 × 1.0 / 0.7 = 11.4 → 12, clamped to 10.
        assert_eq!(a.desired(&p, 8, Some(1.0), at(30)), 10);
        // 4 × 0.35 / 0.7 = 2 exactly: no float noise makes it 3.
        let mut b = Autoscaler::new();
        let q = AutoscalePolicy { scale_down_stabilization: SimDuration::ZERO, ..p };
        assert_eq!(b.desired(&q, 4, Some(0.35), at(0)), 2);
        // 4 × 0.1 / 0.7 = 0.57 → 1, clamped to 2.
        assert_eq!(b.desired(&q, 4, Some(0.1), at(1)), 2);
    }

    #[test]
    fn within_tolerance_or_without_data_nothing_changes() {
        let p = AutoscalePolicy::new(1, 10, 0.5);
        let mut a = Autoscaler::new();
        // 0.54 / 0.5 = 1.08: within 0.1.
        assert_eq!(a.desired(&p, 4, Some(0.54), at(0)), 4);
        // 0.3 / 0.5 = 0.6: 4 × 0.6 = 2.4 → 3, but scaling down waits for the window (4 was
        // recommended at 0 s).
        assert_eq!(a.desired(&p, 4, Some(0.3), at(10)), 4);
        assert_eq!(a.desired(&p, 4, None, at(20)), 4);
        // Current outside the bounds is brought inside first.
        assert_eq!(a.desired(&p, 12, None, at(30)), 10);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window_scale_up_does_not() {
        let p = AutoscalePolicy::new(1, 20, 0.5);
        let mut a = Autoscaler::new();
        assert_eq!(a.desired(&p, 4, Some(0.5), at(0)), 4);
        // Load halves: the raw recommendation is 2, but 4 was recommended 60 s ago.
        assert_eq!(a.desired(&p, 4, Some(0.25), at(60)), 4);
        // A spike: up at once (4 × 1.0 / 0.5 = 8).
        assert_eq!(a.desired(&p, 4, Some(1.0), at(120)), 8);
        // Back down: 8 was recommended within 300 s, so 8 stays...
        assert_eq!(a.desired(&p, 8, Some(0.25), at(200)), 8);
        assert_eq!(a.desired(&p, 8, Some(0.25), at(420)), 8);
        // ...until it is older than the window: the highest since is 4 (at 200 s and 420 s).
        assert_eq!(a.desired(&p, 8, Some(0.25), at(421)), 4);
        // The same inputs give the same answers.
        let mut b = Autoscaler::new();
        let run = |a: &mut Autoscaler| {
            [(4, 0.5, 0), (4, 0.25, 60), (4, 1.0, 120), (8, 0.25, 200)]
                .map(|(c, u, s)| a.desired(&p, c, Some(u), at(s)))
        };
        assert_eq!(run(&mut b), run(&mut Autoscaler::new()));
    }

    #[test]
    fn bad_bounds_are_refused() {
        assert!(AutoscalePolicy::new(3, 2, 0.5).validate().is_err_and(|e| e.contains("must not exceed")));
        assert!(AutoscalePolicy::new(0, 2, 0.5).validate().is_err());
        assert!(AutoscalePolicy::new(1, 2, 0.0).validate().is_err());
        assert!(AutoscalePolicy::new(1, 2, 1.5).validate().is_err());
        assert!(AutoscalePolicy::new(1, 2, 0.7).validate().is_ok());
    }
}
