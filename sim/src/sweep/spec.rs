//! The sweep file, parsed like a scenario: TOML → raw serde types (unknown keys rejected) → checks →
//! [`Sweep`]. Every error names the file, the line, the key and what is allowed.
//!
//! ```toml
//! name = "retry"                         # names the default output folder results/sweeps/<name>/
//! description = "free text"
//! scenarios = ["../burst.toml", { file = "../scale-1m.toml", set = { "workload.max_requests" = 2000 } }]
//! policies = "all"                       # or a list of names; omitted: each scenario's own policy
//! seeds = { first = 1, count = 10 }      # or a list [1, 2, 3]; omitted: each scenario's own seed
//!
//! [set]                                  # fixed overrides for every scenario
//! "engine.max_attempts" = 5
//!
//! [params]                               # grid dimensions: every combination of these values
//! "engine.retry_backoff" = ["5s", "30s"]
//!
//! [ranking]
//! metrics = ["availability", "total_cost_usd"]
//! by = "availability"
//! best = "highest"
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use engine::PolicyConfig;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml_edit::{Item, Value};

use crate::scenario::{Problem, ScenarioError};

/// Metrics ranked when the sweep file names none.
pub const DEFAULT_METRICS: [&str; 5] =
    ["availability", "total_cost_usd", "requests_rejected", "mean_time_to_first_run_s", "failovers"];

/// A checked sweep file.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The file.
    pub path: PathBuf,
    /// Name (default output folder `results/sweeps/<name>/`).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Scenario files, in grid order.
    pub scenarios: Vec<ScenarioRef>,
    /// Policy names; empty: each scenario's own policy.
    pub policies: Vec<String>,
    /// Seeds; empty: each scenario's own seed.
    pub seeds: Vec<u64>,
    /// Overrides applied to every scenario.
    pub set: Vec<Override>,
    /// Grid dimensions.
    pub params: Vec<Param>,
    /// What the ranking shows.
    pub ranking: Ranking,
    /// Line of each ranking metric in the sweep file, for messages.
    pub ranking_lines: Vec<Option<usize>>,
}

/// A scenario of the sweep.
#[derive(Clone, Debug)]
pub struct ScenarioRef {
    /// The file name as written (relative to the sweep file); names the run in the table.
    pub file: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its own fixed overrides.
    pub set: Vec<Override>,
    /// Line of the entry in the sweep file.
    pub line: Option<usize>,
}

/// One fixed override: a scenario key and its value.
#[derive(Clone, Debug)]
pub struct Override {
    /// Scenario key.
    pub key: KeyPath,
    /// Value, as TOML.
    pub value: Value,
    /// Key in the sweep file, for messages (`set."engine.max_attempts"`).
    pub origin: String,
    /// Line in the sweep file.
    pub line: Option<usize>,
}

/// One grid dimension.
#[derive(Clone, Debug)]
pub struct Param {
    /// Scenario key.
    pub key: KeyPath,
    /// The values, in file order.
    pub values: Vec<Value>,
    /// Line of each value in the sweep file.
    pub lines: Vec<Option<usize>>,
    /// Key in the sweep file, for messages (`params."engine.retry_backoff"`).
    pub origin: String,
}

/// Which metrics the ranking shows and how it orders policies.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ranking {
    /// Columns shown (mean ± 95 % CI).
    pub metrics: Vec<String>,
    /// Column that orders the rows.
    pub by: String,
    /// Whether the highest or the lowest mean ranks first.
    pub best: Best,
}

impl Default for Ranking {
    fn default() -> Self {
        Ranking { metrics: DEFAULT_METRICS.map(String::from).to_vec(), by: "availability".into(), best: Best::Highest }
    }
}

/// Direction of the ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Best {
    /// Highest mean first.
    Highest,
    /// Lowest mean first.
    Lowest,
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A dotted scenario key such as `engine.retry_backoff` or `offers[2].spot.interruption_rate_per_h`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// Parses `a.b[0].c`; keys are letters, digits, `_` and `-`.
    pub fn parse(s: &str) -> Result<KeyPath, String> {
        let bad = || format!("{s:?} is not a scenario key such as \"engine.retry_backoff\" or \"offers[0].capacity\"");
        let mut segs = Vec::new();
        for part in s.split('.') {
            let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(bad());
            }
            segs.push(Seg::Key(name.to_owned()));
            while !rest.is_empty() {
                let (idx, after) = rest.split_once(']').ok_or_else(bad)?;
                segs.push(Seg::Index(idx.parse().map_err(|_| bad())?));
                rest = match after {
                    "" => "",
                    a => a.strip_prefix('[').ok_or_else(bad)?,
                };
            }
        }
        Ok(KeyPath(segs))
    }

    /// The first key.
    pub fn head(&self) -> &str {
        match self.0.first() {
            Some(Seg::Key(k)) => k,
            _ => "",
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Reads and checks a sweep file.
pub fn load(path: &Path) -> Result<Sweep, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// Parses and checks sweep text; `path` is used in messages and to find the scenario files.
pub fn parse(text: &str, path: &Path) -> Result<Sweep, ScenarioError> {
    let raw: RawSweep = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
    let doc = toml_edit::Document::parse(text.to_owned()).map_err(|e| ScenarioError::Syntax {
        path: path.to_owned(),
        line: 1,
        column: 1,
        message: e.to_string(),
        snippet: String::new(),
    })?;
    let mut ck = Checker { path: path.to_owned(), text, doc, problems: Vec::new() };
    let sweep = ck.sweep(raw);
    if ck.problems.is_empty() { Ok(sweep) } else { Err(ScenarioError::Invalid { problems: ck.problems }) }
}

pub(crate) fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    let snippet = text.lines().nth(line - 1).map(|l| format!("{line:>5} | {l}")).unwrap_or_default();
    ScenarioError::Syntax { path: path.to_owned(), line, column, message: e.message().trim().to_owned(), snippet }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// Raw types.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: String,
    #[serde(default)]
    description: Option<String>,
    scenarios: Vec<RawScenarioRef>,
    #[serde(default)]
    policies: Option<RawPolicies>,
    #[serde(default)]
    seeds: Option<RawSeeds>,
    // `set` and `params` are walked in the TOML document (file order, dotted keys, lines).
    #[serde(default)]
    #[allow(dead_code)]
    set: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    params: Option<toml::Table>,
    #[serde(default)]
    ranking: Option<RawRanking>,
}

#[derive(Debug)]
struct RawScenarioRef {
    file: String,
}

impl<'de> Deserialize<'de> for RawScenarioRef {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScenarioRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a scenario file ("../burst.toml") or a table { file = "...", set = { "key" = value } }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScenarioRef, E> {
                Ok(RawScenarioRef { file: v.to_owned() })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawScenarioRef, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct T {
                    file: String,
                    #[serde(default)]
                    #[allow(dead_code)]
                    set: Option<toml::Table>,
                }
                let t = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawScenarioRef { file: t.file })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug)]
enum RawPolicies {
    All,
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for RawPolicies {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPolicies;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""all" or a list of policy names (see `sim policies`)"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPolicies, E> {
                if v == "all" { Ok(RawPolicies::All) } else { Err(E::invalid_value(de::Unexpected::Str(v), &self)) }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawPolicies, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawPolicies::List)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug)]
enum RawSeeds {
    List(Vec<u64>),
    Range { first: u64, count: u64 },
}

impl<'de> Deserialize<'de> for RawSeeds {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSeeds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of seeds such as [1, 2, 3] or a range such as { first = 1, count = 10 }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawSeeds, A::Error> {
                Vec::<u64>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawSeeds::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSeeds, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct R {
                    first: u64,
                    count: u64,
                }
                let r = R::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSeeds::Range { first: r.first, count: r.count })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRanking {
    #[serde(default)]
    metrics: Option<Vec<String>>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    best: Option<Best>,
}

// ---------------------------------------------------------------------------------------------
// Checks.

struct Checker<'a> {
    path: PathBuf,
    text: &'a str,
    doc: toml_edit::Document<String>,
    problems: Vec<Problem>,
}

/// Most seeds a sweep may ask for (per grid point).
const MAX_SEEDS: u64 = 1_000_000;

impl Checker<'_> {
    fn bad_at(&mut self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem { path: self.path.clone(), line, key: key.to_owned(), message: message.into() });
    }

    fn bad(&mut self, key: &[LocSeg<'_>], message: impl Into<String>) {
        let line = self.locate(key);
        let name = loc_name(key);
        self.bad_at(&name, line, message);
    }

    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|s| line_col(self.text, s.start).0)
    }

    /// The line of a key path, or of its nearest existing parent.
    fn locate(&self, key: &[LocSeg<'_>]) -> Option<usize> {
        let mut item = self.doc.as_item();
        let mut best = None;
        for seg in key {
            let next = match seg {
                LocSeg::Key(k) => item.get(k),
                LocSeg::Index(i) => item.get(*i),
            };
            let Some(next) = next else { break };
            item = next;
            let span = match item {
                Item::Table(t) => t.span(),
                Item::Value(v) => v.span(),
                Item::ArrayOfTables(a) => a.span(),
                Item::None => None,
            };
            if let Some(l) = self.line_of(span) {
                best = Some(l);
            }
        }
        best
    }

    fn sweep(&mut self, raw: RawSweep) -> Sweep {
        use LocSeg::{Index as I, Key as K};
        if raw.name.trim().is_empty() || raw.name.contains(['/', '\\']) {
            self.bad(&[K("name")], "must be a non-empty name without slashes (it names the output folder)");
        }

        // Scenarios.
        if raw.scenarios.is_empty() {
            self.bad(&[K("scenarios")], "list at least one scenario file");
        }
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        let mut scenarios = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, s) in raw.scenarios.iter().enumerate() {
            let line = self.locate(&[K("scenarios"), I(i)]);
            if s.file.trim().is_empty() {
                self.bad(&[K("scenarios"), I(i)], "must name a scenario file");
            }
            if !seen.insert(s.file.clone()) {
                self.bad(
                    &[K("scenarios"), I(i)],
                    format!("{:?} is listed twice; vary a scenario through [params] instead", s.file),
                );
            }
            let p = Path::new(&s.file);
            let path = if p.is_absolute() { p.to_owned() } else { dir.join(p) };
            let set = self.overrides_of_entry(i);
            scenarios.push(ScenarioRef { file: s.file.clone(), path, set, line });
        }

        // Policies.
        let policies = match raw.policies {
            None => Vec::new(),
            Some(RawPolicies::All) => PolicyConfig::NAMES.map(String::from).to_vec(),
            Some(RawPolicies::List(list)) => {
                if list.is_empty() {
                    self.bad(&[K("policies")], r#"list at least one policy, or write "all""#);
                }
                for (i, p) in list.iter().enumerate() {
                    if PolicyConfig::default_for(p).is_none() {
                        self.bad(
                            &[K("policies"), I(i)],
                            format!("no policy named {p:?}; policies are: {}", PolicyConfig::NAMES.join(", ")),
                        );
                    } else if list[..i].contains(p) {
                        self.bad(&[K("policies"), I(i)], format!("{p:?} is listed twice"));
                    }
                }
                list
            }
        };

        // Seeds.
        let seeds = match raw.seeds {
            None => Vec::new(),
            Some(RawSeeds::List(list)) => {
                if list.is_empty() {
                    self.bad(&[K("seeds")], "list at least one seed");
                }
                for (i, s) in list.iter().enumerate() {
                    if list[..i].contains(s) {
                        self.bad(&[K("seeds"), I(i)], format!("seed {s} is listed twice"));
                    }
                }
                list
            }
            Some(RawSeeds::Range { first, count }) => {
                if count == 0 || count > MAX_SEEDS {
                    self.bad(&[K("seeds"), K("count")], format!("must be between 1 and {MAX_SEEDS} (got {count})"));
                    Vec::new()
                } else if first.checked_add(count - 1).is_none() {
                    self.bad(&[K("seeds"), K("first")], "first + count - 1 must fit in 64 bits");
                    Vec::new()
                } else {
                    (first..first + count).collect()
                }
            }
        };

        // Overrides and parameters.
        let set = self.leaves_of(&[K("set")], "set");
        let mut params = Vec::new();
        for (key, item, origin) in self.param_items() {
            let Some(Value::Array(arr)) = item else {
                let line = self.line_of(item.as_ref().and_then(Value::span));
                self.bad_at(
                    &origin,
                    line,
                    r#"must be a list of the values to try, such as ["5s", "30s"] (use [set] for one fixed value)"#,
                );
                continue;
            };
            if arr.is_empty() {
                let line = self.line_of(arr.span());
                self.bad_at(&origin, line, "list at least one value");
                continue;
            }
            let mut values = Vec::new();
            let mut lines = Vec::new();
            for v in arr.iter() {
                lines.push(self.line_of(v.span()));
                match self.fresh(v) {
                    Some(v) => values.push(v),
                    None => self.bad_at(&origin, self.line_of(v.span()), "cannot read this value"),
                }
            }
            params.push(Param { key, values, lines, origin });
        }
        let mut keys: Vec<(&KeyPath, &str, Option<usize>)> = set.iter().map(|o| (&o.key, &*o.origin, o.line)).collect();
        keys.extend(params.iter().map(|p| (&p.key, &*p.origin, p.lines.first().copied().flatten())));
        let mut problems = Vec::new();
        for (i, (k, origin, line)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(k2, _, _)| k2 == k) {
                problems.push((origin.to_string(), *line, format!("{k} is set twice in [set]/[params]")));
            }
            if k.head() == "seed" && !seeds.is_empty() {
                problems.push((origin.to_string(), *line, "the seed comes from `seeds` in this sweep".to_owned()));
            }
            if k.head() == "policy" && !policies.is_empty() {
                problems.push((
                    origin.to_string(),
                    *line,
                    "`policies` replaces each scenario's [policy] with that policy's defaults; remove `policies` \
                     to vary policy keys"
                        .to_owned(),
                ));
            }
        }
        for s in &scenarios {
            for o in &s.set {
                if set.iter().chain(s.set.iter()).filter(|x| x.key == o.key).count() > 1
                    || params.iter().any(|p| p.key == o.key)
                {
                    problems.push((o.origin.clone(), o.line, format!("{} is set twice for this scenario", o.key)));
                }
            }
        }
        for (origin, line, message) in problems {
            self.bad_at(&origin, line, message);
        }

        // Ranking.
        let mut ranking = Ranking::default();
        let mut ranking_lines = Vec::new();
        if let Some(r) = raw.ranking {
            if let Some(m) = r.metrics {
                if m.is_empty() {
                    self.bad(&[K("ranking"), K("metrics")], "list at least one metric (a column of the runs table)");
                }
                for (i, name) in m.iter().enumerate() {
                    if name.is_empty() || name.contains(char::is_whitespace) {
                        self.bad(&[K("ranking"), K("metrics"), I(i)], format!("{name:?} is not a column name"));
                    }
                }
                ranking.metrics = m;
            }
            match (r.by, r.best) {
                (Some(by), Some(best)) => {
                    ranking.by = by;
                    ranking.best = best;
                }
                (Some(_), None) => {
                    self.bad(&[K("ranking"), K("by")], r#"give `best = "highest"` or `best = "lowest"` with `by`"#)
                }
                (None, Some(best)) => {
                    ranking.best = best;
                    if let Some(m) = ranking.metrics.first() {
                        ranking.by = m.clone();
                    }
                }
                (None, None) => {
                    if !ranking.metrics.contains(&ranking.by) {
                        self.bad(
                            &[K("ranking"), K("metrics")],
                            r#"give `by` and `best` (the default, by = "availability", is not among the metrics)"#,
                        );
                    }
                }
            }
            let inserted = !ranking.metrics.contains(&ranking.by);
            if inserted {
                ranking.metrics.insert(0, ranking.by.clone());
            }
            let by_line = self.locate(&[K("ranking"), K("by")]);
            for (i, m) in ranking.metrics.iter().enumerate() {
                let line = if *m == ranking.by && by_line.is_some() {
                    by_line
                } else {
                    self.locate(&[K("ranking"), K("metrics"), I(i.saturating_sub(usize::from(inserted)))])
                };
                ranking_lines.push(line);
            }
        }
        ranking_lines.resize(ranking.metrics.len(), None);

        Sweep {
            path: self.path.clone(),
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            scenarios,
            policies,
            seeds,
            set,
            params,
            ranking,
            ranking_lines,
        }
    }

    /// The `set` overrides of `scenarios[i]`, when it is a table.
    fn overrides_of_entry(&mut self, i: usize) -> Vec<Override> {
        let origin = format!("scenarios[{i}].set");
        let table = self.doc.as_item().get("scenarios").and_then(|s| s.get(i)).and_then(|e| e.get("set")).cloned();
        match table {
            Some(t) => self.leaves(&t, &origin),
            None => Vec::new(),
        }
    }

    fn leaves_of(&mut self, key: &[LocSeg<'_>], origin: &str) -> Vec<Override> {
        let mut item = Some(self.doc.as_item());
        for s in key {
            item = item.and_then(|it| match s {
                LocSeg::Key(k) => it.get(k),
                LocSeg::Index(i) => it.get(*i),
            });
        }
        match item.cloned() {
            Some(t) => self.leaves(&t, origin),
            None => Vec::new(),
        }
    }

    /// Every value under a table, with its dotted scenario key.
    fn leaves(&mut self, table: &Item, origin: &str) -> Vec<Override> {
        let mut found = Vec::new();
        self.walk(table, &KeyPath(Vec::new()), origin, &mut found);
        let mut out = Vec::new();
        for (key, v, origin) in found {
            let line = self.line_of(v.span());
            match self.fresh(&v) {
                Some(value) => out.push(Override { key, value, origin, line }),
                None => self.bad_at(&origin, line, "cannot read this value"),
            }
        }
        out
    }

    /// `(key, value, origin)` of each `[params]` entry (the value is `None` for a sub-table).
    fn param_items(&mut self) -> Vec<(KeyPath, Option<Value>, String)> {
        let Some(params) = self.doc.as_item().get("params").cloned() else { return Vec::new() };
        let mut found = Vec::new();
        self.walk(&params, &KeyPath(Vec::new()), "params", &mut found);
        found.into_iter().map(|(k, v, o)| (k, Some(v), o)).collect()
    }

    fn walk(&mut self, item: &Item, prefix: &KeyPath, origin: &str, out: &mut Vec<(KeyPath, Value, String)>) {
        let Some(table) = item.as_table_like() else {
            let line = self.line_of(item.span());
            self.bad_at(origin, line, r#"must be a table of scenario keys, such as { "engine.max_attempts" = 5 }"#);
            return;
        };
        let entries: Vec<(String, Item)> = table.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        for (k, child) in entries {
            let sub_origin = format!("{origin}.{}", quote_key(&k));
            let path = match KeyPath::parse(&k) {
                Ok(p) => KeyPath(prefix.0.iter().cloned().chain(p.0).collect()),
                Err(e) => {
                    let line = self.line_of(child.span());
                    self.bad_at(&sub_origin, line, e);
                    continue;
                }
            };
            let nested = match &child {
                Item::Table(_) => true,
                Item::Value(Value::InlineTable(t)) => t.is_dotted(),
                _ => false,
            };
            match child {
                _ if nested => self.walk(&child, &path, &sub_origin, out),
                Item::Value(v) => out.push((path, v, sub_origin)),
                Item::ArrayOfTables(_) | Item::Table(_) => {
                    let line = self.line_of(child.span());
                    self.bad_at(&sub_origin, line, "arrays of tables cannot be overridden; set single keys instead");
                }
                Item::None => {}
            }
        }
    }

    /// A copy of a parsed value that can be written into another document.
    fn fresh(&self, v: &Value) -> Option<Value> {
        let span = v.span()?;
        let mut fresh: Value = self.text.get(span)?.parse().ok()?;
        fresh.decor_mut().clear();
        Some(fresh)
    }
}

/// `params."engine.retry_backoff"`-style key for messages.
fn quote_key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { k.to_owned() } else { format!("{k:?}") }
}

#[derive(Clone, Copy)]
enum LocSeg<'a> {
    Key(&'a str),
    Index(usize),
}

fn loc_name(key: &[LocSeg<'_>]) -> String {
    let mut s = String::new();
    for (i, seg) in key.iter().enumerate() {
        match seg {
            LocSeg::Key(k) if i == 0 => s.push_str(k),
            LocSeg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            LocSeg::Index(n) => s.push_str(&format!("[{n}]")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        let p = KeyPath::parse("offers[2].spot.interruption_rate_per_h").expect("parses");
        assert_eq!(p.to_string(), "offers[2].spot.interruption_rate_per_h");
        assert_eq!(p.0[1], Seg::Index(2));
        assert_eq!(KeyPath::parse("a[1][2]").expect("parses").0.len(), 3);
        for bad in ["", "a..b", "a[x]", "a[1", "a b", "a[1]b"] {
            assert!(KeyPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
