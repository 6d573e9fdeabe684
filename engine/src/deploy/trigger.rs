//! Failover triggers: conditions on a deployment's health and metrics that must hold for a
//! duration (hysteresis) before they fire, as in NovaCron's `failoverTriggers`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, SimTime};

/// What a trigger watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TriggerKind {
    /// Time-averaged share of replicas running at the active location falls below `threshold` (0..1)
    /// over the window.
    Availability {
        /// For example 0.95 (the manifests' `"95%"`).
        threshold: f64,
    },
    /// CPU utilisation of the deployment above `threshold` (0..1) for the whole window.
    Cpu {
        /// For example 0.8 (`"cpu:80%"`).
        threshold: f64,
    },
    /// 99th-percentile latency above `threshold_ms` for the whole window.
    Latency {
        /// Bound in milliseconds.
        threshold_ms: f64,
    },
    /// At least `count` spot interruption notices within the window.
    SpotInterruption {
        /// Notices.
        count: u32,
    },
    /// The deployment's spend rate above its cap for the whole window.
    Cost,
    /// Provider API error rate (0..1) above `threshold` for the whole window.
    ApiErrorRate {
        /// For example 0.2.
        threshold: f64,
    },
}

impl TriggerKind {
    /// Kebab-case name, for decisions and reports.
    pub fn name(&self) -> &'static str {
        match self {
            TriggerKind::Availability { .. } => "availability",
            TriggerKind::Cpu { .. } => "cpu",
            TriggerKind::Latency { .. } => "latency",
            TriggerKind::SpotInterruption { .. } => "spot-interruption",
            TriggerKind::Cost => "cost",
            TriggerKind::ApiErrorRate { .. } => "api-error-rate",
        }
    }
}

/// A trigger with its window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// The condition.
    pub kind: TriggerKind,
    /// How long the condition must hold (or the window it is averaged over).
    pub duration: SimDuration,
}

/// What the deployment looks like at one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Observation {
    /// Share of replicas running at the active location(s), 0..1.
    pub availability: f64,
    /// Latest CPU utilisation, 0..1, if reported.
    pub cpu: Option<f64>,
    /// Latest p99 latency, ms, if reported.
    pub latency_p99_ms: Option<f64>,
    /// Latest API error rate, 0..1, if reported.
    pub api_error_rate: Option<f64>,
    /// Spend rate, $/h.
    pub spend_per_h: f64,
    /// The cap, $/h, if any.
    pub cap_per_h: Option<f64>,
}

/// The running state of one trigger.
#[derive(Clone, Debug, Default)]
pub struct TriggerState {
    /// Since when the condition has held without a break.
    since: Option<SimTime>,
    /// Availability samples in the window: (time, value).
    samples: VecDeque<(SimTime, f64)>,
    /// Spot notices in the window.
    notices: VecDeque<SimTime>,
}

impl TriggerState {
    /// Forgets everything (after a failover the new location starts afresh).
    pub fn reset(&mut self) {
        *self = TriggerState::default();
    }

    /// Records a spot interruption notice.
    pub fn notice(&mut self, now: SimTime) {
        self.notices.push_back(now);
    }

    /// Evaluates the trigger at `now`; true when it fires.
    pub fn evaluate(&mut self, t: &Trigger, obs: &Observation, now: SimTime) -> bool {
        let window_start = SimTime(now.as_millis().saturating_sub(t.duration.as_millis()));
        match t.kind {
            TriggerKind::Availability { threshold } => {
                let first = *self.since.get_or_insert(now);
                self.samples.push_back((now, obs.availability));
                while self.samples.front().is_some_and(|(at, _)| *at < window_start) {
                    self.samples.pop_front();
                }
                let avg = self.samples.iter().map(|(_, v)| v).sum::<f64>() / self.samples.len().max(1) as f64;
                // The window must be covered before its average means anything.
                now.since(first) >= t.duration && avg < threshold
            }
            TriggerKind::SpotInterruption { count } => {
                while self.notices.front().is_some_and(|at| *at < window_start) {
                    self.notices.pop_front();
                }
                self.notices.len() as u32 >= count.max(1)
            }
            _ => {
                let holds = match t.kind {
                    TriggerKind::Cpu { threshold } => obs.cpu.is_some_and(|c| c > threshold),
                    TriggerKind::Latency { threshold_ms } => obs.latency_p99_ms.is_some_and(|l| l > threshold_ms),
                    TriggerKind::ApiErrorRate { threshold } => obs.api_error_rate.is_some_and(|r| r > threshold),
                    TriggerKind::Cost => obs.cap_per_h.is_some_and(|cap| obs.spend_per_h > cap + 1e-9),
                    _ => false,
                };
                if !holds {
                    self.since = None;
                    return false;
                }
                let since = *self.since.get_or_insert(now);
                now.since(since) >= t.duration
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> SimTime {
        SimTime(s * 1000)
    }

    #[test]
    fn cpu_must_hold_for_the_whole_window() {
        let t = Trigger { kind: TriggerKind::Cpu { threshold: 0.8 }, duration: SimDuration::from_secs(60) };
        let mut s = TriggerState::default();
        let hot = Observation { cpu: Some(0.9), ..Default::default() };
        let cool = Observation { cpu: Some(0.5), ..Default::default() };
        assert!(!s.evaluate(&t, &hot, secs(0)));
        assert!(!s.evaluate(&t, &hot, secs(30)));
        // A dip resets the clock (hysteresis).
        assert!(!s.evaluate(&t, &cool, secs(40)));
        assert!(!s.evaluate(&t, &hot, secs(50)));
        assert!(!s.evaluate(&t, &hot, secs(100)));
        assert!(s.evaluate(&t, &hot, secs(110)));
    }

    #[test]
    fn availability_averages_over_the_window() {
        let t = Trigger { kind: TriggerKind::Availability { threshold: 0.95 }, duration: SimDuration::from_secs(300) };
        let mut s = TriggerState::default();
        // Healthy for 5 minutes, sampled every 30 s.
        for i in 0..=10 {
            assert!(!s.evaluate(&t, &Observation { availability: 1.0, ..Default::default() }, secs(i * 30)));
        }
        // Then half the replicas are down. The window keeps the 11 samples of the last 300 s: with k
        // of them at 0.5 the average is 1 − k/22, below 0.95 once k > 1.1, so at the second sample.
        let half = Observation { availability: 0.5, ..Default::default() };
        assert!(!s.evaluate(&t, &half, secs(330)));
        assert!(s.evaluate(&t, &half, secs(360)));
    }

    #[test]
    fn spot_notices_are_counted_in_the_window() {
        let t = Trigger { kind: TriggerKind::SpotInterruption { count: 2 }, duration: SimDuration::from_secs(60) };
        let mut s = TriggerState::default();
        s.notice(secs(0));
        assert!(!s.evaluate(&t, &Observation::default(), secs(1)));
        s.notice(secs(70));
        // The first notice left the window at 60 s.
        assert!(!s.evaluate(&t, &Observation::default(), secs(71)));
        s.notice(secs(80));
        assert!(s.evaluate(&t, &Observation::default(), secs(81)));
    }
}
