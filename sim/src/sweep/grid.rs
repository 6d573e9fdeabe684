//! The grid of a sweep: every point checked before anything runs, in a fixed order, with a
//! fingerprint that tells grids apart.
//!
//! Overrides are written into the scenario's TOML document (`toml_edit`, so the rest of the file,
//! and the line of every key that already exists, stays as it is) and the text goes through the
//! scenario checker, exactly as a hand-edited file would. Each override is first tried on its own,
//! so a value the scenario rejects is reported at its own line of the sweep file.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use toml_edit::{DocumentMut, Item, Value};

use super::Fnv;
use super::spec::{KeyPath, Override, ScenarioRef, Seg, Sweep};
use super::table::Cell;
use crate::scenario::{Problem, Scenario, ScenarioError};

/// A checked, expanded sweep.
#[derive(Debug)]
pub struct Grid {
    /// The sweep file.
    pub sweep: Sweep,
    /// Scenario × parameter values, in grid order.
    pub variants: Vec<Variant>,
    /// Fingerprint of everything that determines the runs (hex).
    pub id: String,
}

/// One scenario with one combination of parameter values.
#[derive(Debug)]
pub struct Variant {
    /// Index in the sweep's scenarios.
    pub scenario: usize,
    /// Index of the value taken for each parameter.
    pub values: Vec<usize>,
    /// The scenario with every override applied.
    pub data: Arc<Scenario>,
}

/// One run of the grid.
#[derive(Clone, Copy, Debug)]
pub struct Point<'a> {
    /// Grid index.
    pub index: usize,
    /// Scenario and parameter values.
    pub variant: &'a Variant,
    /// Its entry in the sweep file.
    pub scenario: &'a ScenarioRef,
    /// Policy override.
    pub policy: Option<&'a str>,
    /// Seed override.
    pub seed: Option<u64>,
}

impl Point<'_> {
    /// `../burst.toml, policy first-fit, seed 3` for messages.
    pub fn describe(&self) -> String {
        let mut s = self.scenario.file.clone();
        if let Some(p) = self.policy {
            s.push_str(&format!(", policy {p}"));
        }
        s.push_str(&format!(", seed {}", self.seed.unwrap_or(self.variant.data.seed)));
        s
    }
}

impl Grid {
    /// Loads every scenario of the sweep, applies the overrides and checks every point.
    pub fn build(sweep: Sweep) -> Result<Grid, ScenarioError> {
        let built: Vec<Built> = (0..sweep.scenarios.len()).into_par_iter().map(|i| build_scenario(&sweep, i)).collect();
        let mut problems = Vec::new();
        let mut variants = Vec::new();
        let mut texts = Vec::new();
        for b in built {
            match b {
                Ok((v, t)) => {
                    variants.extend(v);
                    texts.extend(t);
                }
                Err(ScenarioError::Invalid { problems: p }) => problems.extend(p),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(ScenarioError::Invalid { problems });
        }
        let mut h = Fnv::new();
        h.write(b"novacron-sweep-1");
        h.write(sweep.name.as_bytes());
        for (v, text) in variants.iter().zip(&texts) {
            h.write(sweep.scenarios[v.scenario].file.as_bytes());
            h.write(text.as_bytes());
            for (p, &j) in sweep.params.iter().zip(&v.values) {
                h.write(p.key.to_string().as_bytes());
                h.write(p.values[j].to_string().as_bytes());
            }
        }
        for p in &sweep.policies {
            h.write(p.as_bytes());
        }
        for s in &sweep.seeds {
            h.write(&s.to_le_bytes());
        }
        Ok(Grid { id: h.hex(), sweep, variants })
    }

    /// Policies per variant (at least 1).
    pub fn policy_count(&self) -> usize {
        self.sweep.policies.len().max(1)
    }

    /// Seeds per variant and policy (at least 1).
    pub fn seed_count(&self) -> usize {
        self.sweep.seeds.len().max(1)
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.variants.len() * self.policy_count() * self.seed_count()
    }

    /// Whether the grid has no runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run `index` (below [`Grid::len`]).
    pub fn point(&self, index: usize) -> Point<'_> {
        let (s, p) = (self.seed_count(), self.policy_count());
        let seed = index % s;
        let policy = (index / s) % p;
        let variant = &self.variants[index / s / p];
        Point {
            index,
            variant,
            scenario: &self.sweep.scenarios[variant.scenario],
            policy: self.sweep.policies.get(policy).map(String::as_str),
            seed: self.sweep.seeds.get(seed).copied(),
        }
    }

    /// The value of parameter `p` in a variant, as a table cell.
    pub fn param_cell(&self, v: &Variant, p: usize) -> Cell {
        Cell::from_toml(&self.sweep.params[p].values[v.values[p]])
    }

    /// `3 scenarios × 2 values of engine.retry_backoff × 11 policies × 10 seeds = 660 runs`.
    pub fn describe(&self) -> String {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut parts = vec![plural(self.sweep.scenarios.len(), "scenario")];
        for p in &self.sweep.params {
            parts.push(format!("{} of {}", plural(p.values.len(), "value"), p.key));
        }
        if !self.sweep.policies.is_empty() {
            parts.push(plural(self.sweep.policies.len(), "policy").replace("policys", "policies"));
        }
        if !self.sweep.seeds.is_empty() {
            parts.push(plural(self.sweep.seeds.len(), "seed"));
        }
        format!("{} = {}", parts.join(" × "), plural(self.len(), "run"))
    }
}

/// A deterministic slice of a grid: runs `i` with `i % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// From 0 (as Kubernetes' `JOB_COMPLETION_INDEX`).
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let err = |why: &str| format!("--shard {s:?}: {why}");
        let (i, n) = s.split_once('/').ok_or_else(|| err("expected I/N, such as 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| err("I is not a whole number"))?;
        let count: usize = n.trim().parse().map_err(|_| err("N is not a whole number"))?;
        if count == 0 {
            return Err(err("N must be at least 1"));
        }
        if index >= count {
            return Err(err("I must be below N (shards are numbered from 0, as JOB_COMPLETION_INDEX is)"));
        }
        Ok(Shard { index, count })
    }

    /// The grid indices of this shard, in order.
    pub fn runs(self, total: usize) -> impl Iterator<Item = usize> {
        (self.index..total).step_by(self.count)
    }

    /// How many runs this shard has.
    pub fn len(self, total: usize) -> usize {
        total.saturating_sub(self.index).div_ceil(self.count)
    }
}

/// The variants of one scenario and their effective texts.
type Built = Result<(Vec<Variant>, Vec<String>), ScenarioError>;

fn build_scenario(sweep: &Sweep, si: usize) -> Built {
    let sref = &sweep.scenarios[si];
    let problem = |key: &str, line: Option<usize>, message: String| Problem {
        path: sweep.path.clone(),
        line,
        key: key.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(&sref.path).map_err(|e| ScenarioError::Invalid {
        problems: vec![problem(
            &format!("scenarios[{si}]"),
            sref.line,
            format!("cannot read {}: {e}", sref.path.display()),
        )],
    })?;
    // The scenario itself must be good: its own errors are reported as they are.
    crate::scenario::parse(&text, &sref.path)?;
    let Ok(base) = text.parse::<DocumentMut>() else {
        return Err(ScenarioError::Invalid {
            problems: vec![problem(&format!("scenarios[{si}]"), sref.line, "cannot edit this scenario".into())],
        });
    };

    let fixed: Vec<&Override> = sweep.set.iter().chain(&sref.set).collect();
    let mut problems = Vec::new();
    for o in &fixed {
        if let Err(e) = apply(&base, &[(&o.key, &o.value)], &sref.path) {
            problems.push(problem(&o.origin, o.line, rejected(&sref.file, &o.value, &e)));
        }
    }
    let fixed_kv: Vec<(&KeyPath, &Value)> = fixed.iter().map(|o| (&o.key, &o.value)).collect();
    if problems.is_empty()
        && let Err(e) = apply(&base, &fixed_kv, &sref.path)
    {
        let o = fixed[0];
        problems.push(problem(&o.origin, o.line, format!("these overrides together:{e}")));
    }
    if !problems.is_empty() {
        return Err(ScenarioError::Invalid { problems });
    }
    for p in &sweep.params {
        for (j, v) in p.values.iter().enumerate() {
            let mut kv = fixed_kv.clone();
            kv.push((&p.key, v));
            if let Err(e) = apply(&base, &kv, &sref.path) {
                problems.push(problem(&format!("{}[{j}]", p.origin), p.lines[j], rejected(&sref.file, v, &e)));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ScenarioError::Invalid { problems });
    }

    // Every combination, first parameter slowest.
    let counts: Vec<usize> = sweep.params.iter().map(|p| p.values.len()).collect();
    let mut combo = vec![0usize; counts.len()];
    let mut variants = Vec::new();
    let mut texts = Vec::new();
    loop {
        let mut kv = fixed_kv.clone();
        kv.extend(sweep.params.iter().zip(&combo).map(|(p, &j)| (&p.key, &p.values[j])));
        match apply(&base, &kv, &sref.path) {
            Ok((t, s)) => {
                variants.push(Variant { scenario: si, values: combo.clone(), data: Arc::new(s) });
                texts.push(t);
            }
            Err(e) => {
                let what: Vec<String> =
                    sweep.params.iter().zip(&combo).map(|(p, &j)| format!("{} = {}", p.key, p.values[j])).collect();
                let p = &sweep.params[0];
                problems.push(problem(
                    &p.origin,
                    p.lines[0],
                    format!("{} rejects the combination {}:{e}", sref.file, what.join(", ")),
                ));
            }
        }
        // Next combination (odometer, last parameter fastest).
        let mut k = counts.len();
        loop {
            if k == 0 {
                if !problems.is_empty() {
                    return Err(ScenarioError::Invalid { problems });
                }
                return Ok((variants, texts));
            }
            k -= 1;
            combo[k] += 1;
            if combo[k] < counts[k] {
                break;
            }
            combo[k] = 0;
        }
    }
}

fn rejected(file: &str, v: &Value, e: &str) -> String {
    let sep = if e.starts_with('\n') { ":" } else { ": " };
    format!("{file} rejects {}{sep}{e}", v.to_string().trim())
}

/// Writes overrides into a copy of `doc` and checks the result.
fn apply(doc: &DocumentMut, kv: &[(&KeyPath, &Value)], path: &Path) -> Result<(String, Scenario), String> {
    let mut d = doc.clone();
    for (k, v) in kv {
        set_path(&mut d, k, v).map_err(|e| format!("\n    cannot set {k}: {e}"))?;
    }
    let text = d.to_string();
    match crate::scenario::parse(&text, path) {
        Ok(s) => Ok((text, s)),
        Err(e) => {
            let msg = e.to_string().replace('\n', "\n    ");
            Err(format!("\n    {msg}\n    (lines as in the scenario with the sweep's overrides written into it)"))
        }
    }
}

/// Sets `key` to `value`, creating missing tables; an existing value keeps its place and comments.
pub fn set_path(doc: &mut DocumentMut, key: &KeyPath, value: &Value) -> Result<(), String> {
    let mut item: &mut Item = doc.as_item_mut();
    let mut here = String::from("the scenario");
    for (n, seg) in key.0.iter().enumerate() {
        item = match seg {
            Seg::Key(k) => {
                if !(item.is_table_like() || item.is_none()) {
                    return Err(format!("{here} is {}, not a table", article(item.type_name())));
                }
                // Indexing with a key inserts it (and an inline table for a missing parent).
                match item.get_mut(k.as_str()) {
                    Some(next) => next,
                    None => return Err(format!("{here} has no key {k}")),
                }
            }
            Seg::Index(i) => {
                let len = match &*item {
                    Item::ArrayOfTables(a) => a.len(),
                    Item::Value(Value::Array(a)) => a.len(),
                    Item::None => return Err(format!("{here} is not in the scenario")),
                    other => return Err(format!("{here} is {}, not a list", article(other.type_name()))),
                };
                match item.get_mut(*i) {
                    Some(next) => next,
                    None => return Err(format!("{here} has {len} entries (counted from 0)")),
                }
            }
        };
        here = KeyPath(key.0[..=n].to_vec()).to_string();
    }
    match item {
        Item::Value(v) => {
            let decor = v.decor().clone();
            *v = value.clone();
            *v.decor_mut() = decor;
        }
        other => *other = Item::Value(value.clone()),
    }
    Ok(())
}

fn article(t: &str) -> String {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {t}") } else { format!("a {t}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_path_keeps_lines_and_creates_tables() {
        let mut d: DocumentMut = "a = 1 # one\n[engine]\nx = \"5s\"\n[[offers]]\ncapacity = 3\n".parse().expect("toml");
        let v = |s: &str| s.parse::<Value>().expect("value");
        set_path(&mut d, &KeyPath::parse("engine.x").expect("k"), &v("\"30s\"")).expect("set");
        set_path(&mut d, &KeyPath::parse("a").expect("k"), &v("2")).expect("set");
        set_path(&mut d, &KeyPath::parse("offers[0].capacity").expect("k"), &v("9")).expect("set");
        set_path(&mut d, &KeyPath::parse("workload.max_requests").expect("k"), &v("10")).expect("set");
        let t = d.to_string();
        assert!(t.starts_with("a = 2 # one\n"), "{t}");
        assert!(t.contains("x = \"30s\"\n"), "{t}");
        assert!(t.contains("capacity = 9"), "{t}");
        let back: toml::Table = t.parse().expect("valid");
        assert_eq!(back["workload"]["max_requests"].as_integer(), Some(10));
        let err = set_path(&mut d, &KeyPath::parse("offers[3].capacity").expect("k"), &v("1")).expect_err("no");
        assert!(err.contains("1 entries"), "{err}");
        let err = set_path(&mut d, &KeyPath::parse("a.b").expect("k"), &v("1")).expect_err("no");
        assert!(err.contains("not a table"), "{err}");
    }

    #[test]
    fn shards_partition_the_grid() {
        for n in 1..9 {
            let mut all: Vec<usize> = (0..n).flat_map(|i| Shard { index: i, count: n }.runs(23)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..23).collect::<Vec<_>>());
            let total: usize = (0..n).map(|i| Shard { index: i, count: n }.len(23)).sum();
            assert_eq!(total, 23);
        }
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert_eq!(Shard::parse("2/7"), Ok(Shard { index: 2, count: 7 }));
    }
}
