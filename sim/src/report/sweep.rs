//! The report of a sweep: per scenario (and swept parameter values), every policy's mean total
//! cost and availability with 95 % confidence intervals, as bars and as tables.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::figures::{ComparisonRow, Figure, policy_comparison};
use super::{Error, Page, Report, ReportOptions, Result, html, write_page};
use crate::sweep::stats::Estimate;

/// The metrics compared: column, figure title, axis label.
const METRICS: [(&str, &str, &str); 2] = [
    ("total_cost_usd", "Total cost", "total cost (USD)"),
    ("availability", "Availability", "availability (share of requested VM-time)"),
];

/// One group of runs: a scenario with one set of swept parameter values.
type Group = BTreeMap<String, Vec<(f64, f64)>>;

/// Whether `dir` holds a sweep (its `runs.parquet`).
pub fn is_sweep(dir: &Path) -> bool {
    dir.join("runs.parquet").is_file()
}

/// Reads `dir/runs.parquet` and writes comparison bars and `report.html`.
pub fn write_sweep_report(dir: &Path, opts: &ReportOptions) -> Result<Report> {
    let path = dir.join("runs.parquet");
    let not = |reason: String| Error::NotResults { path: dir.to_owned(), reason };
    let file = std::fs::File::open(&path).map_err(|e| not(format!("runs.parquet: {e}")))?;
    let df =
        ParquetReader::new(file).finish().map_err(|e| not(format!("runs.parquet is not a readable table: {e}")))?;
    let text = |name: &str| -> Result<Vec<String>> {
        let c = df.column(name).map_err(|_| not(format!("runs.parquet has no column {name:?}")))?;
        let c = c.cast(&DataType::String).map_err(|e| not(format!("runs.parquet column {name:?}: {e}")))?;
        let s = c.str().map_err(|e| not(format!("runs.parquet column {name:?}: {e}")))?;
        Ok((0..s.len()).map(|i| s.get(i).unwrap_or("").to_owned()).collect())
    };
    let number = |name: &str| -> Result<Vec<Option<f64>>> {
        let c = df.column(name).map_err(|_| not(format!("runs.parquet has no column {name:?}")))?;
        let c = c.cast(&DataType::Float64).map_err(|e| not(format!("runs.parquet column {name:?}: {e}")))?;
        let s = c.f64().map_err(|e| not(format!("runs.parquet column {name:?}: {e}")))?;
        Ok((0..s.len()).map(|i| s.get(i)).collect())
    };
    let scenario = text("scenario")?;
    let policy = text("policy")?;
    let params: Vec<(String, Vec<String>)> = df
        .get_column_names()
        .iter()
        .filter(|n| n.starts_with("param."))
        .map(|n| Ok((n.trim_start_matches("param.").to_owned(), text(n)?)))
        .collect::<Result<_>>()?;
    let cost = number(METRICS[0].0)?;
    let avail = number(METRICS[1].0)?;
    // Groups in order of first appearance (the grid's order), policies likewise.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (Vec<String>, Group)> = BTreeMap::new();
    for i in 0..df.height() {
        let mut key = scenario[i].clone();
        for (name, values) in &params {
            key += &format!(", {name} = {}", values[i]);
        }
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        let (policies, group) = groups.entry(key).or_default();
        if !group.contains_key(&policy[i]) {
            policies.push(policy[i].clone());
        }
        if let (Some(c), Some(a)) = (cost[i], avail[i]) {
            group.entry(policy[i].clone()).or_default().push((c, a));
        }
    }
    let mut figures: Vec<Figure> = Vec::new();
    let mut tables = Vec::new();
    for (gi, key) in order.iter().enumerate() {
        let (policies, group) = &groups[key];
        let mut table = html::Table {
            caption: key.clone(),
            header: ["policy", "runs", "total cost (USD), mean ± 95 % CI", "availability, mean ± 95 % CI"]
                .map(str::to_owned)
                .to_vec(),
            rows: Vec::new(),
        };
        let mut rows: [Vec<ComparisonRow>; 2] = [Vec::new(), Vec::new()];
        for p in policies {
            let runs = group.get(p).map_or(&[][..], Vec::as_slice);
            let mut cells = vec![p.clone(), runs.len().to_string()];
            for (m, out) in rows.iter_mut().enumerate() {
                let values: Vec<f64> = runs.iter().map(|r| if m == 0 { r.0 } else { r.1 }).collect();
                let Some(e) = Estimate::of(&values) else {
                    cells.push("—".into());
                    continue;
                };
                let h = e.half_width.unwrap_or(0.0);
                cells.push(format!("{} ± {}", html::number(e.mean), html::number(h)));
                out.push(ComparisonRow { label: p.clone(), mean: e.mean, ci_low: e.mean - h, ci_high: e.mean + h });
            }
            table.rows.push(cells);
        }
        tables.push(table);
        for (m, (_, title, y)) in METRICS.iter().enumerate() {
            let id = format!("sweep_{gi}_{}", METRICS[m].0);
            figures.push(policy_comparison(&id, &format!("{title}: {key}"), y, &rows[m]));
        }
    }
    // A TTL sweep of a cached scenario also gets its trade-off figures.
    let (cache_figures, cache_table) = super::cache::ttl_tradeoff(&df);
    figures.extend(cache_figures);
    tables.extend(cache_table);
    let out = opts.out.clone().unwrap_or_else(|| dir.to_owned());
    let subtitle = format!("{} runs from {}: mean and 95 % Student-t interval per policy", df.height(), path.display());
    let page = Page { title: "NovaCron sweep report".into(), subtitle, notes: Vec::new(), tables };
    write_page(&out, figures, page, opts.size)
}
