//! The controller's clock. The engine never reads one: the controller asks its [`Clock`] for
//! `now` and passes it in. In production that is the system clock as milliseconds since the Unix
//! epoch (so cron schedules of backups are in UTC); tests use a [`ManualClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{SimDuration, SimTime};

/// Where `now` comes from.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> SimTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SimTime {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        SimTime(ms)
    }
}

/// A clock a test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: SimTime) -> Self {
        ManualClock(AtomicU64::new(at.as_millis()))
    }
    /// Moves it forward.
    pub fn advance(&self, by: SimDuration) {
        self.0.fetch_add(by.as_millis(), Ordering::SeqCst);
    }
    /// Sets it.
    pub fn set(&self, at: SimTime) {
        self.0.store(at.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SimTime {
        SimTime(self.0.load(Ordering::SeqCst))
    }
}

/// RFC 3339 (UTC, whole seconds) of a time in milliseconds since the Unix epoch.
pub fn rfc3339(t: SimTime) -> String {
    let secs = t.as_millis() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(SimTime(0)), "1970-01-01T00:00:00Z");
        // 2026-11-30T15:39:14Z = 1_796_053_154 s.
        assert_eq!(rfc3339(SimTime(1_796_053_154_000)), "2026-11-30T15:39:14Z");
        // A leap day: 2024-02-29T12:00:00Z = 1_709_208_000 s.
        assert_eq!(rfc3339(SimTime(1_709_208_000_999)), "2024-02-29T12:00:00Z");
    }
}
