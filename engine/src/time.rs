//! Virtual time. The engine never reads a clock: every call that depends on time takes `now`.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since an epoch the caller picks: the simulator's scenario
/// start, or the Unix epoch in the operator (so that cron backup schedules fall on UTC times).
/// Millisecond resolution keeps arithmetic exact in `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(pub u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimDuration(pub u64);

impl SimTime {
    /// The start of a run.
    pub const ZERO: SimTime = SimTime(0);
    /// A time later than any run reaches.
    pub const NEVER: SimTime = SimTime(u64::MAX);

    /// Milliseconds since the start.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// Seconds since the start, as a float (for reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    /// No time.
    pub const ZERO: SimDuration = SimDuration(0);
    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms)
    }
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s * 1000)
    }
    /// From fractional seconds, rounded to the millisecond; negative and NaN give zero.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_nan() || s <= 0.0 {
            SimDuration(0)
        } else if s >= (u64::MAX / 1000) as f64 {
            SimDuration(u64::MAX)
        } else {
            SimDuration((s * 1000.0).round() as u64)
        }
    }
    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// Hours as a float (prices are per hour).
    pub fn as_hours_f64(self) -> f64 {
        self.0 as f64 / 3_600_000.0
    }

    /// Parses a human duration: a number followed by a unit, `ms`, `s`, `m`, `h` or `d`,
    /// optionally repeated (`"1h30m"`). A bare `0` is allowed. Fractions are allowed (`"1.5h"`).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(DurationError(text.to_owned()));
        }
        if s == "0" {
            return Ok(SimDuration::ZERO);
        }
        let mut total = 0.0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_end =
                rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| DurationError(text.to_owned()))?;
            if num_end == 0 {
                return Err(DurationError(text.to_owned()));
            }
            let value: f64 = rest[..num_end].parse().map_err(|_| DurationError(text.to_owned()))?;
            let after = &rest[num_end..];
            let unit_end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
            let factor_ms = match &after[..unit_end] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return Err(DurationError(text.to_owned())),
            };
            total += value * factor_ms;
            rest = &after[unit_end..];
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(DurationError(text.to_owned()));
        }
        Ok(SimDuration(total.round() as u64))
    }
}

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number and a unit (ms, s, m, h, d), such as \"90s\", \"15m\", \"2h\" or \"1h30m\""
)]
pub struct DurationError(pub String);

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}
impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        self.0 = self.0.saturating_add(d.0);
    }
}
impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, other: SimTime) -> SimDuration {
        self.since(other)
    }
}
impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={:.3}s", self.as_secs_f64())
    }
}
impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(SimDuration::parse("90s"), Ok(SimDuration::from_secs(90)));
        assert_eq!(SimDuration::parse("15m"), Ok(SimDuration::from_secs(900)));
        assert_eq!(SimDuration::parse("2h"), Ok(SimDuration::from_secs(7200)));
        assert_eq!(SimDuration::parse("1h30m"), Ok(SimDuration::from_secs(5400)));
        assert_eq!(SimDuration::parse("250ms"), Ok(SimDuration::from_millis(250)));
        assert_eq!(SimDuration::parse("1.5d"), Ok(SimDuration::from_secs(129_600)));
        assert_eq!(SimDuration::parse("0"), Ok(SimDuration::ZERO));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "5", "m", "5 x", "5y", "-5s", "1..2s", "s5"] {
            assert!(SimDuration::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn time_arithmetic_saturates() {
        assert_eq!(SimTime::NEVER + SimDuration::from_secs(1), SimTime::NEVER);
        assert_eq!(SimTime(5) - SimTime(9), SimDuration::ZERO);
    }
}
