//! Warming plans: which keys to load before anyone asks for them.
//!
//! `warmingConfig.patterns` gives patterns with priorities. From a universe of known keys (the
//! caller's: the regions, offers and VMs it knows about), the plan keeps the keys that match a
//! pattern, orders them by the highest priority of any pattern they match (higher first), then by
//! the first such pattern's position, then by their position in the universe, drops duplicates,
//! and stops at the budget (the smaller of the caller's budget and `maxKeys`).

use serde::{Deserialize, Serialize};

use super::pattern::Pattern;

/// One warming pattern as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmPatternConfig {
    /// Keys to warm (glob, see [`Pattern`]).
    pub pattern: String,
    /// Higher warms first. Default 0.
    #[serde(default)]
    pub priority: u32,
}

/// `warmingConfig`: whether and what to warm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WarmingConfig {
    /// Warm at all (default false).
    pub enabled: bool,
    /// Patterns with priorities.
    pub patterns: Vec<WarmPatternConfig>,
    /// At most this many keys per warming run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u64>,
    /// When to warm again (5-field cron, as backup schedules); warming also runs on start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A validated warming configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct WarmingPlanner {
    pub(super) enabled: bool,
    pub(super) patterns: Vec<(Pattern, u32)>,
    pub(super) max_keys: Option<u64>,
    pub(super) schedule: Option<crate::dr::Schedule>,
}

impl WarmingPlanner {
    /// Whether warming is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The re-warming schedule, if any.
    pub fn schedule(&self) -> Option<&crate::dr::Schedule> {
        self.schedule.as_ref()
    }

    /// The keys of `universe` to warm, in order, at most `budget` of them (and `maxKeys`).
    pub fn plan<'a, I>(&self, universe: I, budget: usize) -> Vec<&'a str>
    where
        I: IntoIterator<Item = &'a str>,
    {
        if !self.enabled || self.patterns.is_empty() {
            return Vec::new();
        }
        let limit = match self.max_keys {
            Some(m) => budget.min(usize::try_from(m).unwrap_or(usize::MAX)),
            None => budget,
        };
        let mut picked: Vec<(u32, usize, usize, &'a str)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (pos, key) in universe.into_iter().enumerate() {
            if !seen.insert(key) {
                continue;
            }
            // The highest priority among matching patterns; the first such pattern breaks ties.
            let best = self
                .patterns
                .iter()
                .enumerate()
                .filter(|(_, (p, _))| p.matches(key))
                .map(|(i, (_, prio))| (*prio, i))
                .min_by_key(|&(prio, i)| (std::cmp::Reverse(prio), i));
            if let Some((prio, i)) = best {
                picked.push((prio, i, pos, key));
            }
        }
        picked.sort_by_key(|&(prio, i, pos, _)| (std::cmp::Reverse(prio), i, pos));
        picked.into_iter().take(limit).map(|(_, _, _, k)| k).collect()
    }
}
