//! Disaster-recovery accounting: backup schedules, a ledger of completed backups under a
//! retention limit, and what a loss would cost — the recovery point actually achieved (RPO) and
//! the time to copy the restore chain back (part of the RTO).
//!
//! Backups are full or incremental. An incremental holds what changed since the backup before
//! it, so restoring it needs its whole chain: the full backup it descends from and every
//! incremental in between. Retention keeps the newest `retention` backups by count and drops the
//! oldest; dropping a full backup therefore makes the incrementals that followed it useless until
//! the next full one — [`BackupLedger`] models that honestly rather than hiding it, so a policy
//! whose `retention` is shorter than its `full_every` shows the gap in its achieved RPO.
//!
//! Achieved RTO is the caller's sum: detection delay + [`BackupLedger::restore_time`] + boot.
//!
//! Like the rest of the engine this is pure: no clock, time comes in as [`SimTime`].

use serde::{Deserialize, Serialize};

use crate::migration::{MAX_GIB, MAX_RATE_GIB_PER_S, MIN_RATE_GIB_PER_S, clamp_gib, transfer_time};
use crate::model::RegionId;
use crate::time::{SimDuration, SimTime};

const MS_PER_MIN: u64 = 60_000;
const MIN_PER_DAY: u64 = 1_440;
const DAYS_PER_YEAR: u64 = 365;
/// The calendar (day of year, day of week) repeats every 365 × 7 days.
const CYCLE_DAYS: u64 = DAYS_PER_YEAR * 7;
/// Days in each month of the model's year (never a leap year).
const MONTH_DAYS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// One cron field: its name and the values it allows.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59 },
    Field { name: "hour", min: 0, max: 23 },
    Field { name: "day-of-month", min: 1, max: 31 },
    Field { name: "month", min: 1, max: 12 },
    Field { name: "day-of-week", min: 0, max: 7 },
];

/// When backups run: a 5-field cron expression, `minute hour day-of-month month day-of-week`,
/// such as `"*/15 * * * *"`, `"0 */6 * * *"` or `"30 2 * * *"`.
///
/// Each field is a comma-separated list of items; an item is `*`, a number, a range `a-b`, or
/// one of those with a step: `*/n`, `a-b/n`, or `a/n` (from `a` to the field's maximum, as Vixie
/// cron reads it). Minutes are 0–59, hours 0–23, days of the month 1–31, months 1–12, days of the
/// week 0–7 with both 0 and 7 meaning Sunday. Names (`MON`, `JAN`) and `@daily`-style macros are
/// not accepted. As in Vixie cron, when both day fields are restricted (neither starts with `*`)
/// a day matches if *either* does; otherwise both must.
///
/// The model's calendar: [`SimTime`] 0 is midnight at the start of day 0, a Monday, the 1st of
/// January; every year has 365 days (months of 28, 30 and 31 days as in a non-leap year), so
/// February 29th never comes, and weekdays run on without a break across years.
///
/// Hand-written rather than taken from a crate: it is small, and the engine's dependency list
/// stays short and its calendar synthetic (no time zones, no wall clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    /// The expression as written, for display and serialization.
    text: String,
    /// Bit m set: minute m matches.
    minutes: u64,
    /// Bit h set: hour h matches.
    hours: u64,
    /// Bit d set (1..=31): day of month d matches.
    days_of_month: u64,
    /// Bit m set (1..=12): month m matches.
    months: u64,
    /// Bit w set (0..=6, 0 = Sunday): weekday w matches.
    days_of_week: u64,
    /// The day-of-month field starts with `*`.
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
}

impl Schedule {
    /// Parses a cron expression; the error names the field and what it allows.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "invalid cron expression {text:?}: expected 5 fields (minute hour day-of-month month day-of-week) \
                 separated by spaces, got {}",
                parts.len()
            ));
        }
        let mut masks = [0u64; 5];
        for ((mask, part), field) in masks.iter_mut().zip(&parts).zip(&FIELDS) {
            *mask = parse_field(part, field).map_err(|problem| {
                format!(
                    "invalid cron expression {text:?}: {} field {part:?}: {problem}; allowed: `*`, numbers {}-{}, \
                     lists `a,b`, ranges `a-b`, steps `*/n` or `a-b/n`",
                    field.name, field.min, field.max
                )
            })?;
        }
        let [minutes, hours, days_of_month, months, mut days_of_week] = masks;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Schedule {
            text: text.to_owned(),
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star: parts[2].starts_with('*'),
            dow_star: parts[4].starts_with('*'),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first whole minute strictly after `t` that the schedule matches, or `None` if it
    /// matches no day at all (such as `0 0 30 2 *`, February 30th) or the answer would not fit in
    /// a [`SimTime`]. Looks at most one calendar cycle (365 × 7 days) ahead.
    pub fn next_after(&self, t: SimTime) -> Option<SimTime> {
        let first = t.as_millis() / MS_PER_MIN + 1;
        let start_day = first / MIN_PER_DAY;
        let mut from = first % MIN_PER_DAY;
        for day in start_day..=start_day.saturating_add(CYCLE_DAYS) {
            if self.day_matches(day)
                && let Some(minute_of_day) = self.first_in_day(from)
            {
                let minute = day.checked_mul(MIN_PER_DAY)?.checked_add(minute_of_day)?;
                return minute.checked_mul(MS_PER_MIN).map(SimTime);
            }
            from = 0;
        }
        None
    }

    /// Whether the schedule fires at `t`: a whole minute that matches every field.
    pub fn matches(&self, t: SimTime) -> bool {
        let ms = t.as_millis();
        if !ms.is_multiple_of(MS_PER_MIN) {
            return false;
        }
        let minute = ms / MS_PER_MIN;
        let of_day = minute % MIN_PER_DAY;
        self.day_matches(minute / MIN_PER_DAY) && bit(self.hours, of_day / 60) && bit(self.minutes, of_day % 60)
    }

    fn day_matches(&self, day: u64) -> bool {
        let (month, dom) = month_and_day(day % DAYS_PER_YEAR);
        // Day 0 is a Monday, cron's 1.
        let dow = (day % 7 + 1) % 7;
        if !bit(self.months, month) {
            return false;
        }
        let (dom_ok, dow_ok) = (bit(self.days_of_month, dom), bit(self.days_of_week, dow));
        if self.dom_star || self.dow_star { dom_ok && dow_ok } else { dom_ok || dow_ok }
    }

    /// The first matching minute of a day at or after minute-of-day `from`.
    fn first_in_day(&self, from: u64) -> Option<u64> {
        let (start_hour, start_minute) = (from / 60, from % 60);
        (start_hour..24).filter(|&h| bit(self.hours, h)).find_map(|h| {
            let lowest = if h == start_hour { start_minute } else { 0 };
            let candidates = self.minutes & (u64::MAX << lowest);
            (candidates != 0).then(|| h * 60 + u64::from(candidates.trailing_zeros()))
        })
    }
}

fn bit(mask: u64, i: u64) -> bool {
    i < 64 && (mask >> i) & 1 == 1
}

/// Month (1–12) and day of month (1–31) of day-of-year `d` (0–364).
fn month_and_day(mut d: u64) -> (u64, u64) {
    for (i, len) in MONTH_DAYS.iter().enumerate() {
        if d < *len {
            return (i as u64 + 1, d + 1);
        }
        d -= len;
    }
    (12, 31)
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty list item".into());
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_number(step, "step")?)),
            None => (item, None),
        };
        if step == Some(0) {
            return Err("a step must be at least 1".into());
        }
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_number(a, "range start")?, parse_number(b, "range end")?)
        } else {
            let a = parse_number(range, "value")?;
            (a, if step.is_some() { field.max } else { a })
        };
        for v in [lo, hi] {
            if v < field.min || v > field.max {
                return Err(format!("{v} is out of range"));
            }
        }
        if lo > hi {
            return Err(format!("range {lo}-{hi} goes backwards"));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(mask)
}

fn parse_number(text: &str, what: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {text:?} is not a number"));
    }
    text.parse().map_err(|_| format!("{what} {text} is out of range"))
}

impl TryFrom<String> for Schedule {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Schedule::parse(&text)
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.text
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// All the data.
    Full,
    /// What changed since the previous backup, of either kind.
    Incremental,
}

/// How a workload is backed up, and what recovery it promises.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    /// When backups run.
    pub schedule: Schedule,
    /// Every Nth backup is full, the others incremental (1: all full). See [`BackupLedger::next_kind`].
    pub full_every: u32,
    /// How many backups are kept, newest first; older ones are deleted.
    pub retention: u32,
    /// Where the backups are stored.
    pub target_region: RegionId,
    /// Size of the data set (and of a full backup), GiB.
    pub data_gib: f64,
    /// How fast the data changes, GiB/h (an incremental holds this times its interval).
    pub change_rate_gib_per_h: f64,
    /// Throughput to and from the backup region, GiB/s.
    pub bandwidth_gib_per_s: f64,
    /// The recovery point objective: most data loss, as time, the policy promises.
    pub rpo_target: SimDuration,
    /// The recovery time objective: longest outage the policy promises.
    pub rto_target: SimDuration,
}

impl BackupPolicy {
    /// Checks the figures; the message names the field and what is allowed. A `retention`
    /// shorter than `full_every` is allowed, though it means stretches with nothing restorable.
    pub fn validate(&self) -> Result<(), String> {
        let fail =
            |name: &str, allowed: &str, got: String| Err(format!("backup policy {name} must be {allowed}, got {got}"));
        if self.full_every == 0 {
            return fail("full_every", "a whole number >= 1", "0".into());
        }
        if self.retention == 0 {
            return fail("retention", "a whole number of backups >= 1", "0".into());
        }
        if !(0.0..=MAX_GIB).contains(&self.data_gib) {
            return fail("data_gib", "a number of GiB >= 0 and at most 1e9", self.data_gib.to_string());
        }
        if !(0.0..=MAX_RATE_GIB_PER_S).contains(&self.change_rate_gib_per_h) {
            let got = self.change_rate_gib_per_h.to_string();
            return fail("change_rate_gib_per_h", "a rate in GiB/h >= 0 and at most 1e9", got);
        }
        if !(MIN_RATE_GIB_PER_S..=MAX_RATE_GIB_PER_S).contains(&self.bandwidth_gib_per_s) {
            let got = self.bandwidth_gib_per_s.to_string();
            return fail("bandwidth_gib_per_s", "a rate in GiB/s between 1e-9 and 1e9", got);
        }
        Ok(())
    }

    /// Size of an incremental covering `interval`: change rate × interval, at most the whole data
    /// set. Nonsense figures count as zero (see [`clamp_gib`]).
    fn incremental_gib(&self, interval: SimDuration) -> f64 {
        let data = clamp_gib(self.data_gib);
        clamp_gib(self.change_rate_gib_per_h * interval.as_hours_f64()).min(data)
    }
}

/// A completed backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Its restore point: the moment whose data it holds.
    pub at: SimTime,
    /// Full or incremental.
    pub kind: BackupKind,
}

/// The backups that exist now, oldest first, under a retention limit.
///
/// Record backups in time order with [`BackupLedger::complete`]; one recorded out of order is
/// filed by its time (after any with the same time), but [`BackupLedger::next_kind`] counts in
/// the order of the calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupLedger {
    retention: u32,
    backups: Vec<Backup>,
    /// The newest restore point ever recorded, kept even once retention dropped it.
    newest: Option<SimTime>,
    /// Incrementals recorded since the last full one; `None` before any full one.
    since_full: Option<u32>,
}

impl BackupLedger {
    /// An empty ledger keeping at most `retention` backups (0 keeps none).
    pub fn new(retention: u32) -> Self {
        BackupLedger { retention, ..BackupLedger::default() }
    }

    /// The retention limit.
    pub fn retention(&self) -> u32 {
        self.retention
    }

    /// The backups kept, oldest first.
    pub fn backups(&self) -> &[Backup] {
        &self.backups
    }

    /// The kind the next backup should be so that every `full_every`th one is full: full when
    /// there has been none yet or `full_every - 1` incrementals followed the last one (a
    /// `full_every` of 0 counts as 1: all full).
    pub fn next_kind(&self, full_every: u32) -> BackupKind {
        match self.since_full {
            Some(n) if n.saturating_add(1) < full_every => BackupKind::Incremental,
            _ => BackupKind::Full,
        }
    }

    /// Records a backup whose restore point is `at`, then drops the oldest beyond the retention limit.
    pub fn complete(&mut self, at: SimTime, kind: BackupKind) {
        let i = self.backups.partition_point(|b| b.at <= at);
        self.backups.insert(i, Backup { at, kind });
        let excess = self.backups.len().saturating_sub(self.retention as usize);
        self.backups.drain(..excess);
        self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
        self.since_full = match kind {
            BackupKind::Full => Some(0),
            BackupKind::Incremental => self.since_full.map(|n| n.saturating_add(1)),
        };
    }

    /// The chain to restore the newest restorable backup at or before `t`: indices of its full
    /// backup and of the backup itself. A backup is restorable when a full backup at or before it
    /// is still kept (retention drops oldest first, so everything between is kept too).
    fn chain_before(&self, t: SimTime) -> Option<(usize, usize)> {
        let mut full = None;
        let mut found = None;
        for (i, b) in self.backups.iter().enumerate().take_while(|(_, b)| b.at <= t) {
            if b.kind == BackupKind::Full {
                full = Some(i);
            }
            if let Some(f) = full {
                found = Some((f, i));
            }
        }
        found
    }

    /// The restore point of the newest restorable backup completed at or before `t`; an
    /// incremental counts only if its chain back to a full backup is kept.
    pub fn last_restorable_before(&self, t: SimTime) -> Option<SimTime> {
        self.chain_before(t).map(|(_, i)| self.backups[i].at)
    }

    /// The recovery point achieved for a loss at `loss_at`: the data lost, as time since the
    /// last restorable backup. `None` when nothing is restorable (all data is lost).
    pub fn achieved_rpo(&self, loss_at: SimTime) -> Option<SimDuration> {
        self.last_restorable_before(loss_at).map(|at| loss_at - at)
    }

    /// Time to copy back the chain of the newest restorable backup at or before `t`: the full
    /// backup (`data_gib`) plus each incremental in the chain (change rate × its interval, at most
    /// `data_gib`), at `bandwidth_gib_per_s`. `None` when nothing is restorable.
    pub fn restore_time_before(&self, t: SimTime, policy: &BackupPolicy) -> Option<SimDuration> {
        let (full, last) = self.chain_before(t)?;
        let chain = &self.backups[full..=last];
        let incrementals: f64 = chain.windows(2).map(|w| policy.incremental_gib(w[1].at - w[0].at)).sum();
        Some(transfer_time(clamp_gib(policy.data_gib) + incrementals, policy.bandwidth_gib_per_s))
    }

    /// Time to copy back the chain of the newest restorable backup (see
    /// [`BackupLedger::restore_time_before`]); zero when nothing is restorable — check
    /// [`BackupLedger::last_restorable_before`] first, as there is then nothing to restore.
    pub fn restore_time(&self, policy: &BackupPolicy) -> SimDuration {
        self.restore_time_before(SimTime::NEVER, policy).unwrap_or(SimDuration::ZERO)
    }

    /// How long a backup of `kind` taken at `at` runs: its size over `bandwidth_gib_per_s`. A full
    /// backup holds `data_gib`; an incremental holds change rate × the interval since the newest
    /// backup recorded (at most `data_gib`), or `data_gib` if there is none before `at`.
    pub fn backup_duration(&self, kind: BackupKind, at: SimTime, policy: &BackupPolicy) -> SimDuration {
        let gib = match (kind, self.newest) {
            (BackupKind::Incremental, Some(prev)) if prev <= at => policy.incremental_gib(at - prev),
            _ => clamp_gib(policy.data_gib),
        };
        transfer_time(gib, policy.bandwidth_gib_per_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 86_400_000;

    fn cron(text: &str) -> Schedule {
        Schedule::parse(text).expect("valid cron expression")
    }

    fn next(text: &str, t: u64) -> Option<u64> {
        cron(text).next_after(SimTime(t)).map(|t| t.0)
    }

    #[test]
    fn every_fifteen_minutes() {
        // Strictly after: 0 itself matches but is not "after 0".
        assert_eq!(next("*/15 * * * *", 0), Some(15 * MIN));
        assert_eq!(next("*/15 * * * *", 15 * MIN - 1), Some(15 * MIN));
        assert_eq!(next("*/15 * * * *", 15 * MIN), Some(30 * MIN));
        // 00:59:30 → 01:00, across the hour.
        assert_eq!(next("*/15 * * * *", 59 * MIN + 30_000), Some(HOUR));
        // 23:50 → next day 00:00.
        assert_eq!(next("*/15 * * * *", 23 * HOUR + 50 * MIN), Some(DAY));
    }

    #[test]
    fn every_six_hours_and_nightly() {
        assert_eq!(next("0 */6 * * *", 0), Some(6 * HOUR));
        // 23:30 on day 0 → 00:00 on day 1.
        assert_eq!(next("0 */6 * * *", 23 * HOUR + 30 * MIN), Some(DAY));
        // 02:30 daily: 9 000 000 ms after midnight, then the same a day later.
        assert_eq!(next("30 2 * * *", 0), Some(2 * HOUR + 30 * MIN));
        assert_eq!(next("30 2 * * *", 2 * HOUR + 30 * MIN), Some(DAY + 2 * HOUR + 30 * MIN));
    }

    #[test]
    fn lists_and_ranges() {
        let s = "0,30 9-17 * * *";
        assert_eq!(next(s, 0), Some(9 * HOUR));
        assert_eq!(next(s, 9 * HOUR), Some(9 * HOUR + 30 * MIN));
        // 17:30 is the last of the day; the next is 09:00 on day 1.
        assert_eq!(next(s, 17 * HOUR + 30 * MIN), Some(DAY + 9 * HOUR));
        // A stepped range: 10, 25, 40 past the hour (10-50/15: 10, 25, 40; 55 > 50).
        assert_eq!(next("10-50/15 * * * *", 40 * MIN), Some(HOUR + 10 * MIN));
        // `a/n` runs to the field's end: 45/5 = 45, 50, 55.
        assert_eq!(next("45/5 * * * *", 55 * MIN), Some(HOUR + 45 * MIN));
        assert_eq!(next(" 5  4  *  *  * ", 0), Some(4 * HOUR + 5 * MIN));
    }

    #[test]
    fn days_of_week_and_month() {
        // Day 0 is Monday: Friday is day 4, 09:00 → 4 d + 9 h = 378 000 000 ms.
        assert_eq!(next("0 9 * * 5", 0), Some(378_000_000));
        // Sunday (day 6), as 0 or as 7; weekdays 1-5 skip the weekend from Friday 23:00.
        assert_eq!(next("0 0 * * 0", 0), Some(6 * DAY));
        assert_eq!(next("0 0 * * 7", 0), Some(6 * DAY));
        assert_eq!(next("0 0 * * 1-5", 4 * DAY + 23 * HOUR), Some(7 * DAY));
        // Monthly on the 1st: Feb 1st is day 31, Mar 1st day 59 (28-day February).
        assert_eq!(next("0 0 1 * *", 0), Some(31 * DAY));
        assert_eq!(next("0 0 1 * *", 31 * DAY), Some(59 * DAY));
        // March only: day 59.
        assert_eq!(next("0 0 * 3 *", 0), Some(59 * DAY));
        // Jan 1st yearly: t = 0 is Jan 1st 00:00 itself, so the next is day 365.
        assert_eq!(next("0 0 1 1 *", 0), Some(365 * DAY));
        // Both day fields restricted: the 13th OR a Friday. Fridays are days 4, 11, 18;
        // Jan 13th is day 12.
        let s = "0 0 13 * 5";
        assert_eq!(next(s, 0), Some(4 * DAY));
        assert_eq!(next(s, 4 * DAY), Some(11 * DAY));
        assert_eq!(next(s, 11 * DAY), Some(12 * DAY));
        assert_eq!(next(s, 12 * DAY), Some(18 * DAY));
        // A starred day-of-month with a step ANDs (Vixie): odd days that are Mondays. Day 0 is
        // Monday Jan 1st (odd); Monday Jan 8th is even; Monday Jan 15th (day 14) is odd.
        assert_eq!(next("0 0 */2 * 1", 0), Some(14 * DAY));
    }

    #[test]
    fn impossible_dates_never_come() {
        assert_eq!(next("0 0 30 2 *", 0), None);
        assert_eq!(next("0 0 31 4 *", 0), None);
        assert_eq!(next("0 0 29 2 *", 0), None);
        // The answer would not fit in u64 milliseconds.
        assert_eq!(cron("* * * * *").next_after(SimTime::NEVER), None);
    }

    #[test]
    fn parse_errors_name_the_field() {
        let cases = [
            ("* * * *", "expected 5 fields"),
            ("* * * * * *", "got 6"),
            ("60 * * * *", "minute field \"60\": 60 is out of range"),
            ("*/0 * * * *", "minute field \"*/0\": a step must be at least 1"),
            ("5-3 * * * *", "range 5-3 goes backwards"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field \"0\""),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("a * * * *", "value \"a\" is not a number"),
            ("1,,2 * * * *", "empty list item"),
            ("*/ * * * *", "step \"\" is not a number"),
            ("1-2-3 * * * *", "range end \"2-3\" is not a number"),
            ("99999999999 * * * *", "value 99999999999 is out of range"),
            ("-1 * * * *", "range start \"\" is not a number"),
            ("MON * * * *", "not a number"),
        ];
        for (text, want) in cases {
            let err = Schedule::parse(text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let err = Schedule::parse("0 25 * * *").expect_err("hour 25");
        assert_eq!(
            err,
            "invalid cron expression \"0 25 * * *\": hour field \"25\": 25 is out of range; allowed: `*`, numbers \
             0-23, lists `a,b`, ranges `a-b`, steps `*/n` or `a-b/n`"
        );
    }

    fn policy() -> BackupPolicy {
        BackupPolicy {
            schedule: cron("0 * * * *"),
            full_every: 3,
            retention: 3,
            target_region: RegionId(1),
            data_gib: 100.0,
            change_rate_gib_per_h: 2.0,
            bandwidth_gib_per_s: 0.5,
            rpo_target: SimDuration::from_secs(3600),
            rto_target: SimDuration::from_secs(1800),
        }
    }

    #[test]
    fn every_nth_backup_is_full() {
        use BackupKind::{Full as F, Incremental as I};
        let mut l = BackupLedger::new(10);
        let mut kinds = Vec::new();
        for h in 0..7 {
            let k = l.next_kind(3);
            kinds.push(k);
            l.complete(SimTime(h * HOUR), k);
        }
        assert_eq!(kinds, [F, I, I, F, I, I, F]);
        assert_eq!(BackupLedger::new(1).next_kind(0), F);
        assert_eq!(l.next_kind(1), F);
    }

    #[test]
    fn retention_dropping_a_full_breaks_its_incrementals() {
        use BackupKind::{Full, Incremental};
        let mut l = BackupLedger::new(3);
        l.complete(SimTime(HOUR), Full);
        l.complete(SimTime(2 * HOUR), Incremental);
        l.complete(SimTime(3 * HOUR), Incremental);
        assert_eq!(l.last_restorable_before(SimTime(3 * HOUR)), Some(SimTime(3 * HOUR)));
        assert_eq!(l.last_restorable_before(SimTime(3 * HOUR - 1)), Some(SimTime(2 * HOUR)));
        assert_eq!(l.last_restorable_before(SimTime(HOUR - 1)), None);
        // A loss at 3 h 30 min loses the 30 min since the 3 h incremental.
        assert_eq!(l.achieved_rpo(SimTime(3 * HOUR + 30 * MIN)), Some(SimDuration(30 * MIN)));
        // The fourth backup pushes out the full one: 2 h, 3 h and 4 h are kept but none restorable.
        l.complete(SimTime(4 * HOUR), Incremental);
        assert_eq!(l.backups().len(), 3);
        assert_eq!(l.backups()[0], Backup { at: SimTime(2 * HOUR), kind: Incremental });
        assert_eq!(l.last_restorable_before(SimTime(5 * HOUR)), None);
        assert_eq!(l.achieved_rpo(SimTime(5 * HOUR)), None);
        assert_eq!(l.restore_time(&policy()), SimDuration::ZERO);
        // The next full backup restores service: a loss at 5 h 10 min loses 10 min.
        l.complete(SimTime(5 * HOUR), Full);
        assert_eq!(l.achieved_rpo(SimTime(5 * HOUR + 10 * MIN)), Some(SimDuration(10 * MIN)));
        // Retention 0 keeps nothing.
        let mut none = BackupLedger::new(0);
        none.complete(SimTime(0), Full);
        assert!(none.backups().is_empty());
        assert_eq!(none.achieved_rpo(SimTime(HOUR)), None);
    }

    #[test]
    fn restore_and_backup_durations() {
        use BackupKind::{Full, Incremental};
        let p = policy();
        let mut l = BackupLedger::new(5);
        // First backup: full, 100 GiB at 0.5 GiB/s = 200 s.
        assert_eq!(l.backup_duration(Full, SimTime(0), &p), SimDuration::from_secs(200));
        // An incremental with nothing before it copies everything too.
        assert_eq!(l.backup_duration(Incremental, SimTime(0), &p), SimDuration::from_secs(200));
        l.complete(SimTime(0), Full);
        // An hour later: 2 GiB/h * 1 h = 2 GiB, 4 s.
        assert_eq!(l.backup_duration(Incremental, SimTime(HOUR), &p), SimDuration::from_secs(4));
        l.complete(SimTime(HOUR), Incremental);
        // 90 min later: 3 GiB, 6 s.
        assert_eq!(l.backup_duration(Incremental, SimTime(150 * MIN), &p), SimDuration::from_secs(6));
        l.complete(SimTime(150 * MIN), Incremental);
        // Restore of the newest: 100 + 2 + 3 = 105 GiB at 0.5 GiB/s = 210 s.
        assert_eq!(l.restore_time(&p), SimDuration::from_secs(210));
        // As of 2 h: the 1 h incremental, 100 + 2 = 102 GiB = 204 s.
        assert_eq!(l.restore_time_before(SimTime(2 * HOUR), &p), Some(SimDuration::from_secs(204)));
        assert_eq!(l.restore_time_before(SimTime(0), &p), Some(SimDuration::from_secs(200)));
        // An incremental never exceeds the data set: 200 GiB/h over 1 h caps at 100 GiB = 200 s.
        let busy = BackupPolicy { change_rate_gib_per_h: 200.0, ..policy() };
        assert_eq!(l.backup_duration(Incremental, SimTime(150 * MIN + HOUR), &busy), SimDuration::from_secs(200));
    }

    #[test]
    fn a_day_of_hourly_backups() {
        // Hourly at :00, a full every 4th, 6 kept: a loss at 10 h 20 min restores the 10 h
        // incremental (chain: the full at 9 h, then the incremental at 10 h).
        let p = BackupPolicy { full_every: 4, retention: 6, ..policy() };
        let mut l = BackupLedger::new(p.retention);
        let mut t = SimTime(0);
        while let Some(at) = p.schedule.next_after(t).filter(|at| at.0 <= 10 * HOUR) {
            l.complete(at, l.next_kind(p.full_every));
            t = at;
        }
        // Backups at 1..=10 h: full at 1, 5, 9 h.
        assert_eq!(l.backups().len(), 6);
        assert_eq!(l.backups()[0].at, SimTime(5 * HOUR));
        let loss = SimTime(10 * HOUR + 20 * MIN);
        assert_eq!(l.achieved_rpo(loss), Some(SimDuration(20 * MIN)));
        assert!(l.achieved_rpo(loss) <= Some(p.rpo_target));
        // Restore: full at 9 h + 2 GiB incremental at 10 h = 102 GiB / 0.5 = 204 s.
        assert_eq!(l.restore_time(&p), SimDuration::from_secs(204));
    }

    #[test]
    fn policy_serde_and_validation() {
        let text = r#"
            schedule = "*/15 * * * *"
            full_every = 4
            retention = 8
            target_region = 2
            data_gib = 50.0
            change_rate_gib_per_h = 1.5
            bandwidth_gib_per_s = 0.1
            rpo_target = 900000
            rto_target = 3600000
        "#;
        let p: BackupPolicy = toml::from_str(text).expect("valid policy");
        assert_eq!(p.schedule.as_str(), "*/15 * * * *");
        assert_eq!(p.target_region, RegionId(2));
        assert_eq!(p.validate(), Ok(()));
        let json = serde_json::to_string(&p).expect("serializes");
        assert!(json.contains(r#""schedule":"*/15 * * * *""#), "{json}");
        assert_eq!(serde_json::from_str::<BackupPolicy>(&json).expect("round trip"), p);
        let bad = text.replace("*/15", "*/0");
        let err = toml::from_str::<BackupPolicy>(&bad).expect_err("bad cron").to_string();
        assert!(err.contains("minute field"), "{err}");
        assert!(toml::from_str::<BackupPolicy>(&format!("{text}\nextra = 1")).is_err());
        assert_eq!(serde_json::to_string(&BackupKind::Incremental).expect("serializes"), "\"incremental\"");

        for (bad, field) in [
            (BackupPolicy { full_every: 0, ..policy() }, "full_every"),
            (BackupPolicy { retention: 0, ..policy() }, "retention"),
            (BackupPolicy { data_gib: f64::NAN, ..policy() }, "data_gib"),
            (BackupPolicy { change_rate_gib_per_h: -1.0, ..policy() }, "change_rate_gib_per_h"),
            (BackupPolicy { bandwidth_gib_per_s: 0.0, ..policy() }, "bandwidth_gib_per_s"),
        ] {
            let err = bad.validate().expect_err(field);
            assert!(err.contains(field), "{err}");
        }
    }

    /// Cron fields that tend to fire often, so a brute-force scan can check the answer.
    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just("*".to_owned()),
            2 => (1..=max).prop_map(|n| format!("*/{n}")),
            2 => (min..=max).prop_map(|n| n.to_string()),
            1 => (min..=max, min..=max, 1u32..5).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
            1 => prop::collection::vec(min..=max, 1..4)
                .prop_map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        (field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 7))
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        /// next_after gives a matching minute strictly after t, with no matching minute in
        /// between (checked by scanning when the gap is under three days); None only when no day
        /// of the calendar cycle matches.
        #[test]
        fn next_after_is_the_next_match(text in expression(), t in 0u64..(800 * DAY)) {
            let s = Schedule::parse(&text).expect("generated expressions are valid");
            match s.next_after(SimTime(t)) {
                Some(n) => {
                    prop_assert!(n.0 > t);
                    prop_assert!(s.matches(n), "{} at {}", text, n.0);
                    let first = t / MIN + 1;
                    if n.0 / MIN - first < 3 * MIN_PER_DAY {
                        for m in first..n.0 / MIN {
                            prop_assert!(!s.matches(SimTime(m * MIN)), "{} matched {} before {}", text, m * MIN, n.0);
                        }
                    }
                }
                None => {
                    let start = t / DAY;
                    prop_assert!((start..start + CYCLE_DAYS + 1).all(|d| !s.day_matches(d)), "{}", text);
                }
            }
        }

        /// Parsing never panics, whatever the text.
        #[test]
        fn parse_never_panics(text in "\\PC{0,40}", cronish in "[0-9*/,\\- ]{0,30}") {
            let _ = Schedule::parse(&text);
            if let Ok(s) = Schedule::parse(&cronish)
                && let Some(n) = s.next_after(SimTime(12_345)) {
                    prop_assert!(n.0 > 12_345);
                }
        }
    }
}
