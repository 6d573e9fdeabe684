//! The cache trade-off of a TTL sweep: for a swept parameter whose name contains `ttl` (such as
//! `cache.policy.defaultTtl`) and runs with `cache.*` columns, the mean over seeds of the API
//! calls and throttled calls (with and without the cache) and of what stale data cost (extra cost
//! of stale price decisions, downtime of stale health decisions), against the TTL.

use std::collections::BTreeMap;

use engine::SimDuration;
use polars::prelude::*;

use super::figures::{Content, Figure, Rgb, Series};
use super::html;

/// Columns plotted: column, legend label, colour.
const CALLS: [(&str, &str, Rgb); 4] = [
    ("cache.api_calls", "API calls", Rgb(31, 119, 180)),
    ("cache.api_calls_without_cache", "API calls without cache", Rgb(140, 180, 220)),
    ("cache.throttled", "throttled calls", Rgb(214, 39, 40)),
    ("cache.throttled_without_cache", "throttled without cache", Rgb(240, 150, 150)),
];
const PRICE: [(&str, &str, Rgb); 1] =
    [("cache.stale_price_extra_cost_usd", "extra cost of stale price decisions", Rgb(148, 103, 189))];
const HEALTH: [(&str, &str, Rgb); 2] = [
    ("cache.stale_health_downtime_s", "VM downtime from stale health decisions (min)", Rgb(255, 127, 14)),
    ("cache.stale_health_decisions", "provisions into a location known down", Rgb(44, 160, 44)),
];

fn numbers(df: &DataFrame, name: &str) -> Option<Vec<Option<f64>>> {
    let c = df.column(name).ok()?.cast(&DataType::Float64).ok()?;
    let s = c.f64().ok()?.clone();
    Some((0..s.len()).map(|i| s.get(i)).collect())
}

fn texts(df: &DataFrame, name: &str) -> Option<Vec<String>> {
    let c = df.column(name).ok()?.cast(&DataType::String).ok()?;
    let s = c.str().ok()?.clone();
    Some((0..s.len()).map(|i| s.get(i).unwrap_or("").to_owned()).collect())
}

/// The trade-off figures and a table of the means, or nothing if the sweep has no TTL parameter
/// or no cache columns.
pub fn ttl_tradeoff(df: &DataFrame) -> (Vec<Figure>, Option<html::Table>) {
    let Some(param) = df
        .get_column_names()
        .iter()
        .find(|n| n.starts_with("param.") && n.to_ascii_lowercase().contains("ttl"))
        .map(|n| n.to_string())
    else {
        return (Vec::new(), None);
    };
    let Some(ttl_text) = texts(df, &param) else { return (Vec::new(), None) };
    let columns: Vec<(&str, &str, Rgb, Vec<Option<f64>>)> = CALLS
        .iter()
        .chain(PRICE.iter())
        .chain(HEALTH.iter())
        .filter_map(|&(c, l, rgb)| numbers(df, c).map(|v| (c, l, rgb, v)))
        .collect();
    if columns.is_empty() {
        return (Vec::new(), None);
    }
    // TTL (s) → column → (sum, count).
    let mut by_ttl: BTreeMap<u64, BTreeMap<&str, (f64, u64)>> = BTreeMap::new();
    for (row, t) in ttl_text.iter().enumerate() {
        let Ok(ttl) = SimDuration::parse(t) else { continue };
        let cell = by_ttl.entry(ttl.as_millis()).or_default();
        for (name, _, _, values) in &columns {
            if let Some(v) = values[row].filter(|v| v.is_finite()) {
                let e = cell.entry(name).or_insert((0.0, 0));
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    if by_ttl.is_empty() {
        return (Vec::new(), None);
    }
    let mean = |ms: u64, name: &str| by_ttl[&ms].get(name).filter(|e| e.1 > 0).map(|e| e.0 / e.1 as f64);
    // TTLs usually grow geometrically (0, 10 s, ..., 30 min): they are drawn evenly spaced, in
    // order, and the axis label lists them.
    let ttls: Vec<u64> = by_ttl.keys().copied().collect();
    let x_of = |ms: u64| ttls.iter().position(|&t| t == ms).unwrap_or(0) as f64;
    let x_max = (ttls.len().max(2) - 1) as f64;
    let ttl_names: Vec<String> = ttls.iter().map(|&ms| human(ms)).collect();
    let series_of = |set: &[(&str, &str, Rgb)], scale: &dyn Fn(&str) -> f64| -> Vec<Series> {
        set.iter()
            .filter(|(c, _, _)| columns.iter().any(|(n, ..)| n == c))
            .map(|&(c, l, rgb)| Series {
                label: Some(l.to_owned()),
                color: rgb,
                points: by_ttl.keys().filter_map(|&ms| mean(ms, c).map(|v| (x_of(ms), v * scale(c)))).collect(),
            })
            .collect()
    };
    let figure = |id: &str, title: &str, y_label: &str, series: Vec<Series>| {
        let hi = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
        let lo = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::min);
        let pad = ((hi - lo) * 0.08).max(1e-6);
        Figure {
            id: id.into(),
            title: title.into(),
            x_label: format!("TTL ({}), evenly spaced: {}", param.trim_start_matches("param."), ttl_names.join(" · ")),
            y_label: y_label.into(),
            x_range: (-0.1, x_max + 0.1),
            y_range: (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad),
            content: Content::Lines { series, shades: Vec::new() },
        }
    };
    let minutes = |c: &str| if c.ends_with("_s") { 1.0 / 60.0 } else { 1.0 };
    let figures = vec![
        figure(
            "cache_ttl_calls",
            "Cache TTL: read-API calls and throttling (mean over seeds)",
            "calls per run",
            series_of(&CALLS, &|_| 1.0),
        ),
        figure(
            "cache_ttl_stale_prices",
            "Cache TTL: extra cost of placements on stale prices (mean over seeds)",
            "USD per run",
            series_of(&PRICE, &|_| 1.0),
        ),
        figure(
            "cache_ttl_stale_health",
            "Cache TTL: placements into a location already reported down (mean over seeds)",
            "per run (downtime in minutes)",
            series_of(&HEALTH, &minutes),
        ),
    ];
    let mut header = vec!["TTL".to_owned()];
    header.extend(columns.iter().map(|(c, ..)| c.trim_start_matches("cache.").to_owned()));
    let rows = by_ttl
        .keys()
        .map(|&ms| {
            let mut row = vec![human(ms)];
            row.extend(columns.iter().map(|(c, ..)| mean(ms, c).map_or("—".into(), html::number)));
            row
        })
        .collect();
    let table = html::Table { caption: format!("Cache trade-off by {param} (mean over seeds)"), header, rows };
    (figures, Some(table))
}

/// A TTL as people write it: `0`, `10 s`, `5 min`, `1.5 h`.
fn human(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms == 0 {
        "0".into()
    } else if s < 60.0 {
        format!("{} s", html::number(s))
    } else if s < 3600.0 {
        format!("{} min", html::number(s / 60.0))
    } else {
        format!("{} h", html::number(s / 3600.0))
    }
}
