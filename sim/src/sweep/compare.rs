//! `sim compare A B`: two results folders (`summary.json`) or two sweeps (`runs.parquet`) side by
//! side. For runs: metric, A, B, delta and relative change. For sweeps: per scenario, parameter
//! values and policy, each metric's mean ± 95 % CI in A and B, the delta of the means, and whether
//! the two intervals overlap (if they do not, the difference is unlikely to be seed noise).

use std::path::{Path, PathBuf};

use super::spec::DEFAULT_METRICS;
use super::stats::{Estimate, groups, num, render};
use super::table::{self, Manifest, Row, flatten};
use super::{Error, Result};

/// One side of a comparison.
#[derive(Debug)]
pub enum Source {
    /// A single run's `summary.json`, flattened.
    Run {
        /// Where it came from.
        path: PathBuf,
        /// Its columns.
        row: Row,
    },
    /// A sweep's table.
    Sweep {
        /// Where it came from.
        path: PathBuf,
        /// Rows.
        rows: Vec<Row>,
        /// The manifest, when next to the table.
        manifest: Option<Box<Manifest>>,
    },
}

impl Source {
    /// Opens a results folder, a sweep folder, a `summary.json` or a runs table.
    pub fn open(path: &Path) -> Result<Source> {
        let is = |p: &Path, ext: &str| p.is_file() && p.extension().is_some_and(|e| e == ext);
        let (file, sweep) = if is(path, "parquet") {
            (path.to_owned(), true)
        } else if is(path, "json") {
            (path.to_owned(), false)
        } else if path.join(table::TABLE).is_file() {
            (path.join(table::TABLE), true)
        } else if path.join("summary.json").is_file() {
            (path.join("summary.json"), false)
        } else {
            return Err(Error::Usage(format!(
                "{}: neither a results folder (summary.json) nor a sweep (runs.parquet)",
                path.display()
            )));
        };
        if sweep {
            let rows = table::read_rows(&file)?;
            let manifest = file.parent().and_then(|d| Manifest::read(d).ok()).map(Box::new);
            Ok(Source::Sweep { path: path.to_owned(), rows, manifest })
        } else {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{}: not JSON: {e}", file.display())))?;
            if !json.is_object() {
                return Err(Error::Usage(format!("{}: not a run summary", file.display())));
            }
            let mut row = Row::new();
            flatten("", &json, &mut row);
            Ok(Source::Run { path: path.to_owned(), row })
        }
    }
}

/// Compares two sources; `metrics` restricts the columns (empty: all for runs, the ranking's for
/// sweeps).
pub fn compare(a: &Path, b: &Path, metrics: &[String]) -> Result<String> {
    match (Source::open(a)?, Source::open(b)?) {
        (Source::Run { row: ra, .. }, Source::Run { row: rb, .. }) => Ok(compare_runs(a, b, &ra, &rb, metrics)),
        (Source::Sweep { rows: ra, manifest: ma, .. }, Source::Sweep { rows: rb, manifest: mb, .. }) => {
            Ok(compare_sweeps(a, b, (&ra, ma.as_deref()), (&rb, mb.as_deref()), metrics))
        }
        _ => Err(Error::Usage(format!(
            "{} and {}: compare two results folders or two sweeps, not one of each",
            a.display(),
            b.display()
        ))),
    }
}

fn signed(x: f64) -> String {
    if x > 0.0 { format!("+{}", num(x)) } else { num(x) }
}

fn compare_runs(a: &Path, b: &Path, ra: &Row, rb: &Row, metrics: &[String]) -> String {
    let label = |r: &Row| {
        ["scenario", "policy", "seed"]
            .iter()
            .filter_map(|k| r.get(*k))
            .map(|c| c.display())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!("A: {} ({})\nB: {} ({})\n\n", a.display(), label(ra), b.display(), label(rb));
    let keys: std::collections::BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    let mut table = vec![["metric", "A", "B", "delta", "change"].map(String::from).to_vec()];
    for k in keys {
        if !metrics.is_empty() && !metrics.contains(k) {
            continue;
        }
        let (x, y) = (ra.get(k).and_then(|c| c.as_f64()), rb.get(k).and_then(|c| c.as_f64()));
        if x.is_none() && y.is_none() || k == "seed" {
            continue;
        }
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), num);
        let (delta, change) = match (x, y) {
            (Some(x), Some(y)) => {
                (signed(y - x), if x != 0.0 { format!("{:+.1}%", (y - x) / x.abs() * 100.0) } else { "-".to_owned() })
            }
            _ => ("-".to_owned(), "-".to_owned()),
        };
        table.push(vec![k.clone(), show(x), show(y), delta, change]);
    }
    out.push_str(&render(&table, 1));
    out
}

type Side<'a> = (&'a [Row], Option<&'a Manifest>);

fn compare_sweeps(a: &Path, b: &Path, (ra, ma): Side<'_>, (rb, mb): Side<'_>, metrics: &[String]) -> String {
    let params = |rows: &[Row], m: Option<&Manifest>| -> Vec<String> {
        match m {
            Some(m) => m.params.clone(),
            None => rows
                .first()
                .map(|r| r.keys().filter_map(|k| k.strip_prefix("param.")).map(String::from).collect())
                .unwrap_or_default(),
        }
    };
    let metrics: Vec<String> = if !metrics.is_empty() {
        metrics.to_vec()
    } else if let Some(m) = ma.or(mb) {
        m.ranking.metrics.clone()
    } else {
        DEFAULT_METRICS.map(String::from).to_vec()
    };
    let (ga, gb) = (groups(ra, &params(ra, ma)), groups(rb, &params(rb, mb)));
    let name = |m: Option<&Manifest>, rows: &[Row]| match m {
        Some(m) => format!("sweep {}, {} runs", m.sweep, rows.len()),
        None => format!("{} runs", rows.len()),
    };
    let mut out = format!("A: {} ({})\nB: {} ({})\n", a.display(), name(ma, ra), b.display(), name(mb, rb));
    out.push_str("means ± 95% CI (Student t) over seeds; delta = B − A\n\n");
    let mut only_a = Vec::new();
    for g in &ga {
        let Some(h) = gb.iter().find(|h| h.key() == g.key()) else {
            only_a.push(g.key());
            continue;
        };
        out.push_str(&format!("{} · {}\n", g.block.join(" · "), g.policy));
        let mut table = vec![["metric", "A", "B", "delta", "CIs overlap"].map(String::from).to_vec()];
        for m in &metrics {
            let (x, y) = (g.estimate(ra, m), h.estimate(rb, m));
            let show = |e: Option<Estimate>| e.map_or_else(|| "-".to_owned(), |e| e.display());
            let delta = match (x, y) {
                (Some(x), Some(y)) => signed(y.mean - x.mean),
                _ => "-".to_owned(),
            };
            let overlap = match (x, y) {
                (Some(x), Some(y)) => match x.overlaps(&y) {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                },
                _ => "-",
            };
            table.push(vec![m.clone(), show(x), show(y), delta, overlap.to_owned()]);
        }
        out.push_str(&render(&table, 1));
        out.push('\n');
    }
    let only_b: Vec<String> = gb.iter().filter(|h| !ga.iter().any(|g| g.key() == h.key())).map(|h| h.key()).collect();
    for (side, list) in [("A", only_a), ("B", only_b)] {
        if !list.is_empty() {
            out.push_str(&format!("only in {side}: {}\n", list.join("; ")));
        }
    }
    out
}
