//! What each figure shows, as plain data: series of points, stacked layers, shaded windows,
//! timeline marks or bars, with titles, axis labels (with units) and ranges. Computing a figure
//! never draws; [`super::plots`] draws any [`Figure`]. Tests assert on these values.

use std::collections::{BTreeMap, BTreeSet};

use super::data::{ResultsData, Table};

/// Providers in the order of the tables' `*_aws`, `*_azure`, ... columns.
pub const PROVIDERS: [&str; 4] = ["aws", "azure", "gcp", "onprem"];

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Neutral colour for anything without a provider.
pub const GREY: Rgb = Rgb(110, 110, 110);

/// The one colour of a provider, the same in every figure (unknown names are grey).
pub fn provider_color(provider: &str) -> Rgb {
    match provider {
        "aws" => Rgb(255, 153, 0),
        "azure" => Rgb(0, 120, 212),
        "gcp" => Rgb(52, 168, 83),
        "onprem" => Rgb(128, 90, 180),
        _ => GREY,
    }
}

/// The `i`-th of `n` variants of a colour, from darker to lighter (regions or offers of one provider).
pub fn variant(c: Rgb, i: usize, n: usize) -> Rgb {
    if n <= 1 {
        return c;
    }
    let f = -0.4 + 0.75 * i as f64 / (n - 1) as f64;
    let ch = |v: u8| {
        let v = v as f64;
        let out = if f < 0.0 { v * (1.0 + f) } else { v + (255.0 - v) * f };
        out.round().clamp(0.0, 255.0) as u8
    };
    Rgb(ch(c.0), ch(c.1), ch(c.2))
}

/// A figure: what to draw, not how.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Stable file stem (`cost_rate` → `figures/cost_rate.png`).
    pub id: String,
    /// Title.
    pub title: String,
    /// X-axis label, with unit.
    pub x_label: String,
    /// Y-axis label, with unit.
    pub y_label: String,
    /// X range drawn (min < max).
    pub x_range: (f64, f64),
    /// Y range drawn (min < max).
    pub y_range: (f64, f64),
    /// The data.
    pub content: Content,
}

/// The data of a figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Nothing to draw, and why ("failovers.parquet: absent").
    NoData(String),
    /// Lines over x, with shaded x-windows behind them.
    Lines {
        /// The lines.
        series: Vec<Series>,
        /// Shaded windows.
        shades: Vec<Shade>,
    },
    /// Stacked bands, bottom first.
    Stacked {
        /// The bands.
        layers: Vec<Layer>,
    },
    /// Events on horizontal lanes over time.
    Timeline {
        /// Lane names, bottom first.
        lanes: Vec<String>,
        /// The events.
        marks: Vec<Mark>,
        /// Shaded windows.
        shades: Vec<Shade>,
        /// Legend colours (label, colour): providers the moves went to.
        colors: Vec<(String, Rgb)>,
    },
    /// Bars with confidence intervals, one per category.
    Bars {
        /// The bars, left to right.
        rows: Vec<ComparisonRow>,
    },
}

/// A line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label (`None`: not in the legend).
    pub label: Option<String>,
    /// Colour.
    pub color: Rgb,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// A band of a stacked area figure: between `lower` and `upper` at each `x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Legend label.
    pub label: String,
    /// Colour.
    pub color: Rgb,
    /// X values.
    pub x: Vec<f64>,
    /// Bottom of the band (the layers below, summed).
    pub lower: Vec<f64>,
    /// Top of the band.
    pub upper: Vec<f64>,
}

/// A shaded x-window (a fault).
#[derive(Clone, Debug, PartialEq)]
pub struct Shade {
    /// Start (x units).
    pub from: f64,
    /// End (x units).
    pub to: f64,
    /// Legend label ("outage", "fault window").
    pub label: String,
    /// Outages are red; other faults grey.
    pub outage: bool,
}

/// What a timeline mark is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A deployment failover (circle).
    Failover,
    /// A VM migration (triangle).
    Migration,
    /// A restore from backup (square).
    Restore,
}

impl MarkKind {
    /// Legend name of the mark.
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Failover => "failover",
            MarkKind::Migration => "migration",
            MarkKind::Restore => "restore",
        }
    }

    /// Legend name of the bar drawn behind the mark.
    pub fn span_name(self) -> &'static str {
        match self {
            MarkKind::Failover => "failover: outage start → recovered",
            MarkKind::Migration => "migration: start → done",
            MarkKind::Restore => "restore: data lost → serving",
        }
    }

    /// Every kind, in legend order.
    pub const ALL: [MarkKind; 3] = [MarkKind::Failover, MarkKind::Migration, MarkKind::Restore];
}

/// An event on a timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// Lane index.
    pub lane: usize,
    /// When (x units).
    pub at: f64,
    /// Interval drawn as a bar behind the mark (x units): see [`MarkKind::span_name`].
    pub span: Option<(f64, f64)>,
    /// Colour of the destination's provider.
    pub color: Rgb,
    /// Failover, migration or restore.
    pub kind: MarkKind,
    /// Short description ("aws-us-east-1 → azure-eastus (unhealthy)").
    pub label: String,
}

/// One bar of a comparison: a mean and its confidence interval.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonRow {
    /// Category (e.g. policy name).
    pub label: String,
    /// Mean.
    pub mean: f64,
    /// Lower end of the confidence interval.
    pub ci_low: f64,
    /// Upper end of the confidence interval.
    pub ci_high: f64,
}

impl From<(String, f64, f64, f64)> for ComparisonRow {
    fn from((label, mean, ci_low, ci_high): (String, f64, f64, f64)) -> Self {
        ComparisonRow { label, mean, ci_low, ci_high }
    }
}

impl Figure {
    /// The series (lines) with this legend label.
    pub fn series(&self, label: &str) -> Option<&Series> {
        match &self.content {
            Content::Lines { series, .. } => series.iter().find(|s| s.label.as_deref() == Some(label)),
            _ => None,
        }
    }

    /// Every legend label the figure shows.
    pub fn legend(&self) -> Vec<String> {
        match &self.content {
            Content::NoData(_) => Vec::new(),
            Content::Lines { series, shades } => series
                .iter()
                .filter_map(|s| s.label.clone())
                .chain(shade_legend(shades).into_iter().map(|s| s.0))
                .collect(),
            Content::Stacked { layers } => layers.iter().map(|l| l.label.clone()).collect(),
            Content::Timeline { marks, shades, colors, .. } => {
                let mut v: Vec<String> = colors.iter().map(|c| c.0.clone()).collect();
                for k in MarkKind::ALL {
                    if marks.iter().any(|m| m.kind == k) {
                        v.push(k.name().into());
                    }
                }
                for k in MarkKind::ALL {
                    if marks.iter().any(|m| m.kind == k && m.span.is_some()) {
                        v.push(k.span_name().into());
                    }
                }
                v.extend(shade_legend(shades).into_iter().map(|s| s.0));
                v
            }
            Content::Bars { .. } => vec!["mean".into(), "confidence interval".into()],
        }
    }

    /// Whether the figure only says "no data".
    pub fn is_no_data(&self) -> bool {
        matches!(self.content, Content::NoData(_))
    }

    fn no_data(id: &str, title: &str, why: String) -> Figure {
        Figure {
            id: id.into(),
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            content: Content::NoData(why),
        }
    }
}

/// One legend entry per kind of shade present: (label, outage).
pub fn shade_legend(shades: &[Shade]) -> Vec<(String, bool)> {
    let mut seen = Vec::<(String, bool)>::new();
    for s in shades {
        if !seen.iter().any(|(l, _)| *l == s.label) {
            seen.push((s.label.clone(), s.outage));
        }
    }
    seen
}

/// A time unit for the x axis, chosen from the run's span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeUnit {
    /// Symbol (`h`, `min`, `s`).
    pub symbol: &'static str,
    /// Seconds per unit.
    pub secs: f64,
}

impl TimeUnit {
    /// Hours for runs of 3 h or more, minutes for 3 min or more, else seconds.
    pub fn for_span(secs: f64) -> TimeUnit {
        if secs >= 3.0 * 3600.0 {
            TimeUnit { symbol: "h", secs: 3600.0 }
        } else if secs >= 180.0 {
            TimeUnit { symbol: "min", secs: 60.0 }
        } else {
            TimeUnit { symbol: "s", secs: 1.0 }
        }
    }

    fn of(self, secs: f64) -> f64 {
        secs / self.secs
    }

    fn axis(self) -> String {
        format!("time since start ({})", self.symbol)
    }
}

/// Every figure of a run's report, in report order.
pub fn all(d: &ResultsData) -> Vec<Figure> {
    vec![
        cost_rate(d),
        active_by_provider(d),
        active_by_region(d),
        availability(d),
        failover_timeline(d),
        spot_prices(d),
        recovery_cdf(d),
    ]
}

fn x_span(d: &ResultsData, unit: TimeUnit) -> (f64, f64) {
    let end = unit.of(d.duration_s());
    (0.0, if end > 0.0 { end } else { 1.0 })
}

/// 0 up to a bit above the largest value (1 if everything is 0).
fn zero_to_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    (0.0, if max > 0.0 { max * 1.08 } else { 1.0 })
}

/// Providers with anything non-zero in `value(row, provider index)`.
fn providers_present(d: &ResultsData, value: impl Fn(&super::data::TsRow, usize) -> f64) -> Vec<usize> {
    (0..PROVIDERS.len()).filter(|&p| d.timeseries.rows().iter().any(|r| value(r, p) != 0.0)).collect()
}

fn shades(d: &ResultsData, unit: TimeUnit) -> Vec<Shade> {
    d.faults()
        .iter()
        .map(|f| Shade {
            from: unit.of(f.start_s),
            to: unit.of(f.end_s),
            label: if f.is_outage() {
                "outage".into()
            } else {
                f.kind.as_ref().map_or_else(|| "fault window".into(), |k| k.clone())
            },
            outage: f.is_outage(),
        })
        .collect()
}

/// Spend rate over time, one line per provider that spent anything, and commitment fees.
pub fn cost_rate(d: &ResultsData) -> Figure {
    const ID: &str = "cost_rate";
    const TITLE: &str = "Cost rate by provider";
    if let Some(why) = d.timeseries.no_data_reason("timeseries.parquet") {
        return Figure::no_data(ID, TITLE, why);
    }
    let unit = TimeUnit::for_span(d.duration_s());
    let rows = d.timeseries.rows();
    let mut series: Vec<Series> = providers_present(d, |r, p| r.cost_rate_usd_per_h[p])
        .into_iter()
        .map(|p| Series {
            label: Some(PROVIDERS[p].into()),
            color: provider_color(PROVIDERS[p]),
            points: rows.iter().map(|r| (unit.of(r.time_s), r.cost_rate_usd_per_h[p])).collect(),
        })
        .collect();
    if rows.iter().any(|r| r.commitment_fees_usd_per_h != 0.0) {
        series.push(Series {
            label: Some("commitment fees".into()),
            color: GREY,
            points: rows.iter().map(|r| (unit.of(r.time_s), r.commitment_fees_usd_per_h)).collect(),
        });
    }
    if series.is_empty() {
        return Figure::no_data(ID, TITLE, "nothing was spent".into());
    }
    let y_range = zero_to_max(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: "cost rate (USD/h)".into(),
        x_range: x_span(d, unit),
        y_range,
        content: Content::Lines { series, shades: shades(d, unit) },
    }
}

fn stacked(x: Vec<f64>, bands: Vec<(String, Rgb, Vec<f64>)>) -> Vec<Layer> {
    let mut below = vec![0.0; x.len()];
    bands
        .into_iter()
        .map(|(label, color, values)| {
            let upper: Vec<f64> = below.iter().zip(&values).map(|(b, v)| b + v).collect();
            let layer = Layer { label, color, x: x.clone(), lower: below.clone(), upper: upper.clone() };
            below = upper;
            layer
        })
        .collect()
}

fn stacked_range(layers: &[Layer]) -> (f64, f64) {
    zero_to_max(layers.last().map(|l| l.upper.clone()).unwrap_or_default().into_iter())
}

/// Instances (booting or running) by provider, stacked: exact, from the time series.
pub fn active_by_provider(d: &ResultsData) -> Figure {
    const ID: &str = "active_by_provider";
    const TITLE: &str = "Active instances by provider (stacked)";
    if let Some(why) = d.timeseries.no_data_reason("timeseries.parquet") {
        return Figure::no_data(ID, TITLE, why);
    }
    let unit = TimeUnit::for_span(d.duration_s());
    let rows = d.timeseries.rows();
    let present = providers_present(d, |r, p| r.instances[p]);
    if present.is_empty() {
        return Figure::no_data(ID, TITLE, "no instance ever ran".into());
    }
    let x = rows.iter().map(|r| unit.of(r.time_s)).collect();
    let bands = present
        .into_iter()
        .map(|p| (PROVIDERS[p].to_owned(), provider_color(PROVIDERS[p]), rows.iter().map(|r| r.instances[p]).collect()))
        .collect();
    let layers = stacked(x, bands);
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: "instances, booting or running (count)".into(),
        x_range: x_span(d, unit),
        y_range: stacked_range(&layers),
        content: Content::Stacked { layers },
    }
}

/// Sample times for counts rebuilt from `vms.parquet`: the time series' when present, else 200 steps.
fn sample_times(d: &ResultsData) -> Vec<f64> {
    let ts: Vec<f64> = d.timeseries.rows().iter().map(|r| r.time_s).filter(|t| t.is_finite()).collect();
    if !ts.is_empty() {
        return ts;
    }
    let end = d.duration_s();
    (0..=200).map(|i| end * i as f64 / 200.0).collect()
}

/// How many of the half-open intervals `[start, end)` contain `t`, with both lists sorted.
fn open_at(starts: &[f64], ends: &[f64], t: f64) -> f64 {
    let started = starts.partition_point(|s| *s <= t);
    let ended = ends.partition_point(|e| *e <= t);
    started.saturating_sub(ended) as f64
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// VMs running by the region of their first placement, stacked (from first run to release).
pub fn active_by_region(d: &ResultsData) -> Figure {
    const ID: &str = "active_by_region";
    const TITLE: &str = "Running VMs by region of first placement (stacked)";
    if let Some(why) = d.vms.no_data_reason("vms.parquet") {
        return Figure::no_data(ID, TITLE, why);
    }
    let unit = TimeUnit::for_span(d.duration_s());
    // (provider order, provider, region) → (starts, ends)
    type Spans = (Vec<f64>, Vec<f64>);
    let mut by_region: BTreeMap<(usize, String, String), Spans> = BTreeMap::new();
    for v in d.vms.rows() {
        let (Some(start), Some(region)) = (v.first_running_s, v.region.as_ref()) else { continue };
        let provider = v.provider.clone().unwrap_or_default();
        let order = PROVIDERS.iter().position(|p| *p == provider).unwrap_or(PROVIDERS.len());
        let e = by_region.entry((order, provider, region.clone())).or_default();
        e.0.push(start);
        e.1.push(v.end_s.unwrap_or(f64::INFINITY));
    }
    if by_region.is_empty() {
        return Figure::no_data(ID, TITLE, "no VM ever ran".into());
    }
    let times = sample_times(d);
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for (_, p, _) in by_region.keys() {
        *per_provider.entry(p.clone()).or_default() += 1;
    }
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let bands = by_region
        .into_iter()
        .map(|((_, provider, region), (starts, ends))| {
            let (starts, ends) = (sorted(starts), sorted(ends));
            let i = index.entry(provider.clone()).or_default();
            let color = variant(provider_color(&provider), *i, per_provider[&provider]);
            *i += 1;
            (region, color, times.iter().map(|&t| open_at(&starts, &ends, t)).collect())
        })
        .collect();
    let layers = stacked(times.iter().map(|&t| unit.of(t)).collect(), bands);
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: "VMs running (count)".into(),
        x_range: x_span(d, unit),
        y_range: stacked_range(&layers),
        content: Content::Stacked { layers },
    }
}

/// Availability over time: VMs serving over VMs wanted, and each deployment's replicas running
/// over replicas wanted, in percent; fault windows shaded (outages in red).
pub fn availability(d: &ResultsData) -> Figure {
    const ID: &str = "availability";
    const TITLE: &str = "Availability over time";
    let unit = TimeUnit::for_span(d.duration_s());
    let mut series = Vec::new();
    if let (Table::Rows(ts), Table::Rows(vms)) = (&d.timeseries, &d.vms) {
        // Wanted at t: arrived, and the owner's lifetime not over (rejected requests count as unserved).
        let arrivals = sorted(vms.iter().map(|v| v.arrival_s).collect());
        let ends = sorted(vms.iter().map(|v| v.arrival_s + v.lifetime_s.unwrap_or(f64::INFINITY)).collect());
        let points: Vec<(f64, f64)> = ts
            .iter()
            .filter_map(|r| {
                let wanted = open_at(&arrivals, &ends, r.time_s);
                (wanted > 0.0).then(|| (unit.of(r.time_s), 100.0 * (r.serving_vms / wanted).min(1.0)))
            })
            .collect();
        if !points.is_empty() {
            series.push(Series { label: Some("VMs serving / wanted".into()), color: Rgb(30, 30, 30), points });
        }
    }
    let mut per_dep: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for r in d.deployments.rows() {
        if r.replicas_wanted > 0.0 {
            per_dep
                .entry(r.deployment.as_str())
                .or_default()
                .push((unit.of(r.time_s), 100.0 * (r.replicas_running / r.replicas_wanted).min(1.0)));
        }
    }
    let n = per_dep.len();
    for (i, (name, points)) in per_dep.into_iter().enumerate() {
        series.push(Series {
            label: Some(format!("{name} replicas running / wanted")),
            color: variant(Rgb(200, 40, 120), i, n),
            points,
        });
    }
    if series.is_empty() {
        let why = d
            .timeseries
            .no_data_reason("timeseries.parquet")
            .or_else(|| d.vms.no_data_reason("vms.parquet"))
            .unwrap_or_else(|| "nothing was wanted".into());
        return Figure::no_data(ID, TITLE, why);
    }
    let min = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(100.0, f64::min);
    let lo = (min - (100.0 - min).max(1.0) * 0.15).max(0.0);
    let lo = if lo > 1.0 { lo.floor() } else { 0.0 };
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: "availability (%)".into(),
        x_range: x_span(d, unit),
        y_range: (lo, 100.0 + (100.0 - lo) * 0.04),
        content: Content::Lines { series, shades: shades(d, unit) },
    }
}

/// Which provider a region belongs to: from the tables (VM placements, spot offers), else its
/// name's prefix (`aws-us-east-1`).
fn region_providers(d: &ResultsData) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for v in d.vms.rows() {
        if let (Some(r), Some(p)) = (&v.region, &v.provider) {
            m.entry(r.clone()).or_insert_with(|| p.clone());
        }
    }
    for p in d.spot_prices.rows() {
        if let Some(region) = p.offer.split('/').next() {
            m.entry(region.to_owned()).or_insert_with(|| p.provider.clone());
        }
    }
    m
}

fn provider_of(regions: &BTreeMap<String, String>, region: &str) -> Option<String> {
    regions.get(region).cloned().or_else(|| PROVIDERS.iter().find(|p| region.starts_with(*p)).map(|p| (*p).to_owned()))
}

/// Deployment moves over time, one lane per deployment and kind: a circle at each failover
/// decision (`failovers.parquet`) with a bar from the outage's start to recovery; a triangle where
/// each migration finished (`migrations.parquet`) with a bar from its start; a square where each
/// restore from backup started (`restores.parquet`) with a bar from the data's loss until the
/// replica served again. Failovers and migrations take the colour of their destination's provider;
/// restores are grey. Absent tables are skipped.
pub fn failover_timeline(d: &ResultsData) -> Figure {
    const ID: &str = "failover_timeline";
    const TITLE: &str = "Failovers, migrations and restores";
    let (f_rows, m_rows, r_rows) = (d.failovers.rows(), d.migrations.rows(), d.restores.rows());
    if f_rows.is_empty() && m_rows.is_empty() && r_rows.is_empty() {
        let why = match &d.failovers {
            Table::Missing(w) => w.clone(),
            Table::Rows(_) => "no failover, migration or restore in this run".into(),
        };
        return Figure::no_data(ID, TITLE, why);
    }
    let unit = TimeUnit::for_span(d.duration_s());
    let regions = region_providers(d);
    let mut lanes: Vec<String> = Vec::new();
    let mut lane = |name: String| match lanes.iter().position(|l| *l == name) {
        Some(i) => i,
        None => {
            lanes.push(name);
            lanes.len() - 1
        }
    };
    let mut marks = Vec::new();
    let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut color = |region: &str| {
        let p = provider_of(&regions, region);
        let name = p.clone().unwrap_or_else(|| "other".into());
        let order = PROVIDERS.iter().position(|x| *x == name).unwrap_or(PROVIDERS.len());
        used.insert((order, name));
        p.map_or(GREY, |p| provider_color(&p))
    };
    let mut f_sorted: Vec<_> = f_rows.iter().collect();
    f_sorted.sort_by(|a, b| a.deployment.cmp(&b.deployment).then(a.time_s.total_cmp(&b.time_s)));
    for f in f_sorted {
        let start = f.time_s - f.time_to_detect_s.unwrap_or(0.0);
        marks.push(Mark {
            lane: lane(f.deployment.clone()),
            at: unit.of(f.time_s),
            span: f.time_to_recover_s.map(|r| (unit.of(start), unit.of(start + r))),
            color: color(&f.to),
            kind: MarkKind::Failover,
            label: format!("{} → {} ({})", f.from, f.to, f.reason),
        });
    }
    let mut m_sorted: Vec<_> = m_rows.iter().collect();
    m_sorted.sort_by(|a, b| a.deployment.cmp(&b.deployment).then(a.time_s.total_cmp(&b.time_s)));
    for m in m_sorted {
        let name = m.deployment.as_ref().map_or_else(|| "VM migrations".into(), |d| format!("{d} migrations"));
        marks.push(Mark {
            lane: lane(name),
            at: unit.of(m.time_s),
            span: m.started_s.filter(|s| *s < m.time_s).map(|s| (unit.of(s), unit.of(m.time_s))),
            color: color(&m.to),
            kind: MarkKind::Migration,
            label: format!("{} → {} ({})", m.from, m.to, m.kind),
        });
    }
    let mut r_sorted: Vec<_> = r_rows.iter().collect();
    r_sorted.sort_by(|a, b| a.deployment.cmp(&b.deployment).then(a.time_s.total_cmp(&b.time_s)));
    for r in r_sorted {
        marks.push(Mark {
            lane: lane(format!("{} restores", r.deployment)),
            at: unit.of(r.time_s),
            span: r.rto_s.map(|rto| (unit.of(r.lost_at_s), unit.of(r.lost_at_s + rto))),
            color: GREY,
            kind: MarkKind::Restore,
            label: format!("restore of {} loss", r.from),
        });
    }
    let n = lanes.len() as f64;
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: String::new(),
        x_range: x_span(d, unit),
        y_range: (-0.6, n - 0.4),
        content: Content::Timeline {
            lanes,
            marks,
            shades: shades(d, unit),
            colors: used.into_iter().map(|(_, p)| (format!("to {p}"), provider_color(&p))).collect(),
        },
    }
}

/// Spot prices as steps, one line per offer, shades of its provider's colour.
pub fn spot_prices(d: &ResultsData) -> Figure {
    const ID: &str = "spot_prices";
    const TITLE: &str = "Spot prices";
    if let Some(why) = d.spot_prices.no_data_reason("spot_prices.parquet") {
        return Figure::no_data(ID, TITLE, why);
    }
    let unit = TimeUnit::for_span(d.duration_s());
    let end = d.duration_s();
    // (provider order, provider, offer) → changes in time order
    let mut offers: BTreeMap<(usize, String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for p in d.spot_prices.rows() {
        if !(p.time_s.is_finite() && p.price_usd_per_h.is_finite()) {
            continue;
        }
        let order = PROVIDERS.iter().position(|x| *x == p.provider).unwrap_or(PROVIDERS.len());
        offers.entry((order, p.provider.clone(), p.offer.clone())).or_default().push((p.time_s, p.price_usd_per_h));
    }
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for (_, p, _) in offers.keys() {
        *per_provider.entry(p.clone()).or_default() += 1;
    }
    // Many offers: one legend entry per provider instead of one per offer.
    let by_offer = offers.len() <= 12;
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut series = Vec::new();
    for ((_, provider, offer), mut changes) in offers {
        changes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut points = Vec::with_capacity(changes.len() * 2 + 1);
        for (i, &(t, p)) in changes.iter().enumerate() {
            if i > 0 {
                points.push((unit.of(t), changes[i - 1].1));
            }
            points.push((unit.of(t), p));
        }
        if let Some(&(_, p)) = changes.last().filter(|c| end > c.0) {
            points.push((unit.of(end), p));
        }
        let i = index.entry(provider.clone()).or_default();
        let label = if by_offer {
            Some(offer)
        } else if *i == 0 {
            Some(format!("{provider} ({} offers)", per_provider[&provider]))
        } else {
            None
        };
        series.push(Series { label, color: variant(provider_color(&provider), *i, per_provider[&provider]), points });
        *i += 1;
    }
    let values = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = (values().fold(f64::INFINITY, f64::min), values().fold(0.0, f64::max));
    let pad = ((hi - lo) * 0.08).max(hi * 0.02).max(1e-3);
    Figure {
        id: ID.into(),
        title: TITLE.into(),
        x_label: unit.axis(),
        y_label: "spot price (USD/h)".into(),
        x_range: x_span(d, unit),
        y_range: ((lo - pad).max(0.0), hi + pad),
        content: Content::Lines { series, shades: shades(d, unit) },
    }
}

/// Empirical CDFs of time to recover: the deployments' failovers (`failovers.parquet`
/// `time_to_recover_s`), one line per deployment and one for all when there are several, and
/// restores from backup (`restores.parquet` `rto_s`) when there are any. The title counts those
/// that never recovered within the run.
pub fn recovery_cdf(d: &ResultsData) -> Figure {
    const ID: &str = "recovery_cdf";
    const TITLE: &str = "Time to recover (CDF)";
    let finite = |v: Option<f64>| v.filter(|t| t.is_finite());
    let mut per_dep: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for f in d.failovers.rows() {
        if let Some(t) = finite(f.time_to_recover_s) {
            per_dep.entry(f.deployment.as_str()).or_default().push(t);
        }
    }
    let restores: Vec<f64> = d.restores.rows().iter().filter_map(|r| finite(r.rto_s)).collect();
    let all = sorted(per_dep.values().flatten().copied().collect());
    if all.is_empty() && restores.is_empty() {
        let why = match d.failovers.no_data_reason("failovers.parquet") {
            Some(why) if d.restores.rows().is_empty() => why,
            _ => "no failover or restore recovered within the run".into(),
        };
        return Figure::no_data(ID, TITLE, why);
    }
    let max = all.iter().chain(&restores).copied().fold(0.0, f64::max);
    let unit = if max >= 600.0 { TimeUnit { symbol: "min", secs: 60.0 } } else { TimeUnit { symbol: "s", secs: 1.0 } };
    let cdf = |v: &[f64]| {
        let v = sorted(v.to_vec());
        let n = v.len() as f64;
        let mut pts = vec![(0.0, 0.0)];
        for (i, x) in v.iter().enumerate() {
            pts.push((unit.of(*x), 100.0 * i as f64 / n));
            pts.push((unit.of(*x), 100.0 * (i + 1) as f64 / n));
        }
        pts
    };
    let n = per_dep.len();
    let mut series: Vec<Series> = per_dep
        .iter()
        .enumerate()
        .map(|(i, (name, v))| Series {
            label: Some(format!("{name} failovers (n = {})", v.len())),
            color: variant(Rgb(200, 40, 120), i, n),
            points: cdf(v),
        })
        .collect();
    if n > 1 {
        series.push(Series {
            label: Some(format!("all failovers (n = {})", all.len())),
            color: Rgb(30, 30, 30),
            points: cdf(&all),
        });
    }
    if !restores.is_empty() {
        series.push(Series {
            label: Some(format!("restores, RTO (n = {})", restores.len())),
            color: Rgb(0, 150, 160),
            points: cdf(&restores),
        });
    }
    let never = d.failovers.rows().iter().filter(|f| f.time_to_recover_s.is_none()).count()
        + d.restores.rows().iter().filter(|r| r.rto_s.is_none()).count();
    let title = if never > 0 { format!("{TITLE}: {never} never recovered within the run") } else { TITLE.to_owned() };
    Figure {
        id: ID.into(),
        title,
        x_label: format!("time to recover ({})", unit.symbol),
        y_label: "recovered within that time (%)".into(),
        x_range: (0.0, (unit.of(max) * 1.08).max(1e-3)),
        y_range: (0.0, 104.0),
        content: Content::Lines { series, shades: Vec::new() },
    }
}

/// Bars with confidence intervals, one per row (e.g. per policy, for a sweep). `y_label` names
/// the metric with its unit. Rows with non-finite values are left out; no rows gives "no data".
pub fn policy_comparison(id: &str, title: &str, y_label: &str, rows: &[ComparisonRow]) -> Figure {
    let rows: Vec<ComparisonRow> =
        rows.iter().filter(|r| r.mean.is_finite() && r.ci_low.is_finite() && r.ci_high.is_finite()).cloned().collect();
    if rows.is_empty() {
        return Figure::no_data(id, title, "no rows to compare".into());
    }
    let vals = || rows.iter().flat_map(|r| [r.mean, r.ci_low, r.ci_high]);
    let lo = vals().fold(0.0, f64::min);
    let hi = vals().fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-9);
    Figure {
        id: id.into(),
        title: title.into(),
        x_label: String::new(),
        y_label: y_label.into(),
        x_range: (-0.6, rows.len() as f64 - 0.4),
        y_range: (if lo < 0.0 { lo - pad } else { 0.0 }, if hi > 0.0 { hi + pad } else { pad }),
        content: Content::Bars { rows },
    }
}
