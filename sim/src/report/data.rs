//! Reading a results folder back: `summary.json` and the Parquet tables, as plain rows.
//!
//! Only `summary.json` is required. A table that is absent, unreadable or lacks a column the
//! figures need becomes [`Table::Missing`] with the reason, and the figures built from it say
//! "no data"; an empty table is [`Table::Rows`] with no rows. Nothing here panics on input.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{Error, Result};

/// A table read from the results folder: its rows, or why there are none.
#[derive(Clone, Debug, PartialEq)]
pub enum Table<T> {
    /// The table as read (possibly empty).
    Rows(Vec<T>),
    /// Absent or unusable, with the reason (e.g. "failovers.parquet: absent").
    Missing(String),
}

impl<T> Table<T> {
    /// The rows, empty when missing.
    pub fn rows(&self) -> &[T] {
        match self {
            Table::Rows(r) => r,
            Table::Missing(_) => &[],
        }
    }

    /// Why there are no rows to draw: the reason it is missing, or that it is empty.
    pub fn no_data_reason(&self, file: &str) -> Option<String> {
        match self {
            Table::Rows(r) if r.is_empty() => Some(format!("{file} has no rows")),
            Table::Rows(_) => None,
            Table::Missing(why) => Some(why.clone()),
        }
    }
}

/// One row of `timeseries.parquet` (the columns the figures use).
#[derive(Clone, Debug, PartialEq)]
pub struct TsRow {
    /// Sample time, s.
    pub time_s: f64,
    /// VMs with a running instance.
    pub serving_vms: f64,
    /// Instances by provider, in [`super::figures::PROVIDERS`] order.
    pub instances: [f64; 4],
    /// Spend rate by provider, USD/h.
    pub cost_rate_usd_per_h: [f64; 4],
    /// Commitment fees, USD/h.
    pub commitment_fees_usd_per_h: f64,
}

/// One row of `vms.parquet` (the columns the figures use).
#[derive(Clone, Debug, PartialEq)]
pub struct VmRow {
    /// Arrival, s.
    pub arrival_s: f64,
    /// Lifetime wanted, s (`None`: until the end).
    pub lifetime_s: Option<f64>,
    /// Provider of the first placement.
    pub provider: Option<String>,
    /// Region of the first placement.
    pub region: Option<String>,
    /// First time an instance ran, s.
    pub first_running_s: Option<f64>,
    /// Release or rejection time, s.
    pub end_s: Option<f64>,
}

/// One row of `spot_prices.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceRow {
    /// When the price changed, s.
    pub time_s: f64,
    /// `region/zone/instance-type`.
    pub offer: String,
    /// Provider.
    pub provider: String,
    /// New price, USD/h.
    pub price_usd_per_h: f64,
}

/// One row of `failovers.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverRow {
    /// Decision time, s.
    pub time_s: f64,
    /// Deployment.
    pub deployment: String,
    /// Region moved from.
    pub from: String,
    /// Region moved to.
    pub to: String,
    /// Why.
    pub reason: String,
    /// Outage start to decision, s.
    pub time_to_detect_s: Option<f64>,
    /// Outage start (or decision) to every replica serving again, s.
    pub time_to_recover_s: Option<f64>,
}

/// One row of `deployments.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentRow {
    /// Sample time, s.
    pub time_s: f64,
    /// Deployment.
    pub deployment: String,
    /// Replicas wanted.
    pub replicas_wanted: f64,
    /// Replicas serving.
    pub replicas_running: f64,
}

/// One row of `migrations.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationRow {
    /// When it finished (the target serves), s.
    pub time_s: f64,
    /// When it started, s (`None` in tables without `started_s`).
    pub started_s: Option<f64>,
    /// Deployment, if the VM belongs to one.
    pub deployment: Option<String>,
    /// `live`, `warm` or `cold`.
    pub kind: String,
    /// Region moved from.
    pub from: String,
    /// Region moved to.
    pub to: String,
    /// Service lost, s.
    pub downtime_s: Option<f64>,
}

/// One row of `restores.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreRow {
    /// When the engine started the restore, s.
    pub time_s: f64,
    /// Deployment.
    pub deployment: String,
    /// Region the replica was lost with.
    pub from: String,
    /// When its data was lost, s.
    pub lost_at_s: f64,
    /// From the loss until the replica served again, s (`None`: not within the run).
    pub rto_s: Option<f64>,
}

/// A fault window from `summary.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpan {
    /// Index in the scenario's faults.
    pub fault: u64,
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
    /// The fault's kind when the summary says it (e.g. `region-outage`).
    pub kind: Option<String>,
}

impl FaultSpan {
    /// Whether the window is an outage (region or zone). Unknown kinds are not.
    pub fn is_outage(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| k.contains("outage"))
    }
}

/// Everything the report reads from a results folder.
#[derive(Clone, Debug)]
pub struct ResultsData {
    /// The folder.
    pub dir: PathBuf,
    /// `summary.json` as written.
    pub summary: serde_json::Value,
    /// `timeseries.parquet`.
    pub timeseries: Table<TsRow>,
    /// `vms.parquet`.
    pub vms: Table<VmRow>,
    /// `spot_prices.parquet`.
    pub spot_prices: Table<PriceRow>,
    /// `failovers.parquet`.
    pub failovers: Table<FailoverRow>,
    /// `deployments.parquet`.
    pub deployments: Table<DeploymentRow>,
    /// `migrations.parquet`.
    pub migrations: Table<MigrationRow>,
    /// `restores.parquet`.
    pub restores: Table<RestoreRow>,
}

impl ResultsData {
    /// Simulated span, s: the summary's `duration_s`, else the last time seen in any table.
    pub fn duration_s(&self) -> f64 {
        if let Some(d) = self.summary.get("duration_s").and_then(|v| v.as_f64()).filter(|d| *d > 0.0) {
            return d;
        }
        let ts = self.timeseries.rows().iter().map(|r| r.time_s);
        let vm = self.vms.rows().iter().map(|r| r.arrival_s);
        ts.chain(vm).fold(0.0, f64::max)
    }

    /// Fault windows from the summary (empty if it has none).
    pub fn faults(&self) -> Vec<FaultSpan> {
        let Some(list) = self.summary.get("faults").and_then(|v| v.as_array()) else { return Vec::new() };
        list.iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let start_s = f.get("start_s")?.as_f64()?;
                let end_s = f.get("end_s").and_then(|v| v.as_f64()).unwrap_or(start_s);
                Some(FaultSpan {
                    fault: f.get("fault").and_then(|v| v.as_u64()).unwrap_or(i as u64),
                    start_s,
                    end_s,
                    kind: f.get("kind").and_then(|v| v.as_str()).map(str::to_owned),
                })
            })
            .collect()
    }

    /// Messages about tables that could not be used. Tables every run writes are reported when
    /// absent; the later ones (failovers, deployments, migrations, restores) only when present but
    /// unusable, so that folders written before them still report cleanly.
    pub fn warnings(&self) -> Vec<String> {
        fn why<T>(t: &Table<T>) -> Option<&String> {
            match t {
                Table::Missing(m) => Some(m),
                Table::Rows(_) => None,
            }
        }
        let always = [why(&self.timeseries), why(&self.vms), why(&self.spot_prices)];
        let later = [why(&self.failovers), why(&self.deployments), why(&self.migrations), why(&self.restores)];
        always
            .into_iter()
            .flatten()
            .chain(later.into_iter().flatten().filter(|m| !m.ends_with(": absent")))
            .cloned()
            .collect()
    }
}

/// Reads a results folder. Fails only when `dir` is not one (no readable `summary.json` object).
pub fn load(dir: &Path) -> Result<ResultsData> {
    let not = |reason: String| Error::NotResults { path: dir.to_owned(), reason };
    if !dir.is_dir() {
        return Err(not(if dir.exists() { "not a folder".into() } else { "no such folder".into() }));
    }
    let summary_path = dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).map_err(|e| {
        not(if e.kind() == std::io::ErrorKind::NotFound {
            "it has no summary.json (`sim run SCENARIO.toml` writes one)".into()
        } else {
            format!("summary.json: {e}")
        })
    })?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| not(format!("summary.json is not valid JSON: {e}")))?;
    if !summary.is_object() {
        return Err(not("summary.json is not a JSON object".into()));
    }
    Ok(ResultsData {
        dir: dir.to_owned(),
        summary,
        timeseries: read(dir, "timeseries", timeseries_rows),
        vms: read(dir, "vms", vm_rows),
        spot_prices: read(dir, "spot_prices", price_rows),
        failovers: read(dir, "failovers", failover_rows),
        deployments: read(dir, "deployments", deployment_rows),
        migrations: read(dir, "migrations", migration_rows),
        restores: read(dir, "restores", restore_rows),
    })
}

type Rows<T> = std::result::Result<Vec<T>, String>;

fn read<T>(dir: &Path, name: &str, rows: fn(&DataFrame) -> Rows<T>) -> Table<T> {
    let file = format!("{name}.parquet");
    let path = dir.join(&file);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Table::Missing(format!("{file}: absent")),
        Err(e) => return Table::Missing(format!("{file}: {e}")),
    };
    let df = match ParquetReader::new(f).finish() {
        Ok(df) => df,
        Err(e) => return Table::Missing(format!("{file}: unreadable: {e}")),
    };
    match rows(&df) {
        Ok(r) => Table::Rows(r),
        Err(e) => Table::Missing(format!("{file}: {e}")),
    }
}

fn f64_col(df: &DataFrame, name: &str) -> Rows<Option<f64>> {
    let c = df.column(name).map_err(|_| format!("no column {name}"))?;
    let c = c.cast(&DataType::Float64).map_err(|e| format!("column {name}: {e}"))?;
    let v = c.f64().map_err(|e| format!("column {name}: {e}"))?;
    Ok(v.iter().collect())
}

/// A column that must have a value in every row (NaN stands in for nulls, which the figures skip).
fn f64_req(df: &DataFrame, name: &str) -> Rows<f64> {
    Ok(f64_col(df, name)?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn str_col(df: &DataFrame, name: &str) -> Rows<Option<String>> {
    let c = df.column(name).map_err(|_| format!("no column {name}"))?;
    let v = c.str().map_err(|e| format!("column {name}: {e}"))?;
    Ok(v.iter().map(|s| s.map(str::to_owned)).collect())
}

fn str_req(df: &DataFrame, name: &str) -> Rows<String> {
    Ok(str_col(df, name)?.into_iter().map(Option::unwrap_or_default).collect())
}

const PROVIDERS: [&str; 4] = super::figures::PROVIDERS;

fn timeseries_rows(df: &DataFrame) -> Rows<TsRow> {
    let time = f64_req(df, "time_s")?;
    let serving = f64_req(df, "serving_vms")?;
    let mut inst = Vec::new();
    let mut rate = Vec::new();
    for p in PROVIDERS {
        inst.push(f64_req(df, &format!("instances_{p}"))?);
        rate.push(f64_req(df, &format!("cost_rate_{p}_usd_per_h"))?);
    }
    // Older tables may lack the fees column: treat as no fees.
    let fees = f64_col(df, "commitment_fees_usd_per_h").unwrap_or_else(|_| vec![None; time.len()]);
    Ok((0..time.len())
        .map(|i| TsRow {
            time_s: time[i],
            serving_vms: serving[i],
            instances: [inst[0][i], inst[1][i], inst[2][i], inst[3][i]],
            cost_rate_usd_per_h: [rate[0][i], rate[1][i], rate[2][i], rate[3][i]],
            commitment_fees_usd_per_h: fees.get(i).copied().flatten().unwrap_or(0.0),
        })
        .collect())
}

fn vm_rows(df: &DataFrame) -> Rows<VmRow> {
    let arrival = f64_req(df, "arrival_s")?;
    let lifetime = f64_col(df, "lifetime_s")?;
    let provider = str_col(df, "provider")?;
    let region = str_col(df, "region")?;
    let first = f64_col(df, "first_running_s")?;
    let end = f64_col(df, "end_s")?;
    Ok((0..arrival.len())
        .map(|i| VmRow {
            arrival_s: arrival[i],
            lifetime_s: lifetime[i],
            provider: provider[i].clone(),
            region: region[i].clone(),
            first_running_s: first[i],
            end_s: end[i],
        })
        .collect())
}

fn price_rows(df: &DataFrame) -> Rows<PriceRow> {
    let time = f64_req(df, "time_s")?;
    let offer = str_req(df, "offer")?;
    let provider = str_req(df, "provider")?;
    let price = f64_req(df, "price_usd_per_h")?;
    Ok((0..time.len())
        .map(|i| PriceRow {
            time_s: time[i],
            offer: offer[i].clone(),
            provider: provider[i].clone(),
            price_usd_per_h: price[i],
        })
        .collect())
}

fn failover_rows(df: &DataFrame) -> Rows<FailoverRow> {
    let time = f64_req(df, "time_s")?;
    let dep = str_req(df, "deployment")?;
    let from = str_req(df, "from")?;
    let to = str_req(df, "to")?;
    let reason = str_req(df, "reason")?;
    let ttd = f64_col(df, "time_to_detect_s")?;
    let ttr = f64_col(df, "time_to_recover_s")?;
    Ok((0..time.len())
        .map(|i| FailoverRow {
            time_s: time[i],
            deployment: dep[i].clone(),
            from: from[i].clone(),
            to: to[i].clone(),
            reason: reason[i].clone(),
            time_to_detect_s: ttd[i],
            time_to_recover_s: ttr[i],
        })
        .collect())
}

fn deployment_rows(df: &DataFrame) -> Rows<DeploymentRow> {
    let time = f64_req(df, "time_s")?;
    let dep = str_req(df, "deployment")?;
    let wanted = f64_req(df, "replicas_wanted")?;
    let running = f64_req(df, "replicas_running")?;
    Ok((0..time.len())
        .map(|i| DeploymentRow {
            time_s: time[i],
            deployment: dep[i].clone(),
            replicas_wanted: wanted[i],
            replicas_running: running[i],
        })
        .collect())
}

fn migration_rows(df: &DataFrame) -> Rows<MigrationRow> {
    let time = f64_req(df, "time_s")?;
    let n = time.len();
    let started = f64_col(df, "started_s").unwrap_or_else(|_| vec![None; n]);
    let dep = str_col(df, "deployment").unwrap_or_else(|_| vec![None; n]);
    let kind = str_req(df, "kind")?;
    // `from`/`to` as written; `from_region`/`to_region` as first sketched.
    let from = str_req(df, "from").or_else(|_| str_req(df, "from_region"))?;
    let to = str_req(df, "to").or_else(|_| str_req(df, "to_region"))?;
    let downtime = f64_col(df, "downtime_s").unwrap_or_else(|_| vec![None; n]);
    Ok((0..n)
        .map(|i| MigrationRow {
            time_s: time[i],
            started_s: started[i],
            deployment: dep[i].clone(),
            kind: kind[i].clone(),
            from: from[i].clone(),
            to: to[i].clone(),
            downtime_s: downtime[i],
        })
        .collect())
}

fn restore_rows(df: &DataFrame) -> Rows<RestoreRow> {
    let time = f64_req(df, "time_s")?;
    let dep = str_req(df, "deployment")?;
    let from = str_req(df, "from")?;
    let lost = f64_req(df, "lost_at_s")?;
    let rto = f64_col(df, "rto_s")?;
    Ok((0..time.len())
        .map(|i| RestoreRow {
            time_s: time[i],
            deployment: dep[i].clone(),
            from: from[i].clone(),
            lost_at_s: lost[i],
            rto_s: rto[i],
        })
        .collect())
}
