//! Writing results: `summary.json`, and the `vms`, `timeseries`, `spot_prices`, `failovers`,
//! `deployments`, `migrations` and `restores` tables as Parquet
//! (and CSV on request), through polars. Files are written to a temporary name and renamed, so an
//! interrupted run never leaves a half-written table behind. The schemas are documented in
//! `docs/results.md` and checked by a test.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use engine::{Catalog, Provider};
use polars::prelude::*;

use crate::results::{RunResults, offer_label};
use crate::{Error, Result};

/// Which files to write.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    /// Also write CSV copies of the tables.
    pub csv: bool,
}

/// The per-VM table.
pub fn vms_frame(r: &RunResults, c: &Catalog) -> PolarsResult<DataFrame> {
    let v = &r.vms;
    let label = |o: Option<engine::OfferId>| o.map(|o| offer_label(c, o));
    let provider = |o: Option<engine::OfferId>| o.map(|o| c.provider_of(o).as_str());
    let region = |o: Option<engine::OfferId>| o.map(|o| c.regions[c.offers[o.idx()].region.idx()].name.as_str());
    DataFrame::new_infer_height(vec![
        Column::new("vm_id".into(), v.iter().map(|x| x.vm_id).collect::<Vec<u64>>()),
        Column::new("arrival_s".into(), v.iter().map(|x| x.arrival_s).collect::<Vec<f64>>()),
        Column::new("lifetime_s".into(), v.iter().map(|x| x.lifetime_s).collect::<Vec<Option<f64>>>()),
        Column::new("vcpu".into(), v.iter().map(|x| x.vcpu).collect::<Vec<u32>>()),
        Column::new("memory_mib".into(), v.iter().map(|x| x.memory_mib).collect::<Vec<u64>>()),
        Column::new("spot_allowed".into(), v.iter().map(|x| x.spot_allowed).collect::<Vec<bool>>()),
        Column::new("shape".into(), v.iter().map(|x| x.shape).collect::<Vec<Option<u32>>>()),
        Column::new("status".into(), v.iter().map(|x| x.status.as_str()).collect::<Vec<&str>>()),
        Column::new(
            "reject_reason".into(),
            v.iter().map(|x| x.reject_reason.map(|r| r.as_str())).collect::<Vec<Option<&str>>>(),
        ),
        Column::new("provider".into(), v.iter().map(|x| provider(x.first_offer)).collect::<Vec<Option<&str>>>()),
        Column::new("region".into(), v.iter().map(|x| region(x.first_offer)).collect::<Vec<Option<&str>>>()),
        Column::new("offer".into(), v.iter().map(|x| label(x.first_offer)).collect::<Vec<Option<String>>>()),
        Column::new(
            "market".into(),
            v.iter().map(|x| x.first_market.map(|m| m.as_str())).collect::<Vec<Option<&str>>>(),
        ),
        Column::new("first_running_s".into(), v.iter().map(|x| x.first_running_s).collect::<Vec<Option<f64>>>()),
        Column::new("end_s".into(), v.iter().map(|x| x.end_s).collect::<Vec<Option<f64>>>()),
        Column::new("instances".into(), v.iter().map(|x| x.instances).collect::<Vec<u32>>()),
        Column::new("failovers".into(), v.iter().map(|x| x.failovers).collect::<Vec<u32>>()),
        Column::new("replacements".into(), v.iter().map(|x| x.replacements).collect::<Vec<u32>>()),
        Column::new("interruptions".into(), v.iter().map(|x| x.interruptions).collect::<Vec<u32>>()),
        Column::new("served_s".into(), v.iter().map(|x| x.served_s).collect::<Vec<f64>>()),
        Column::new("requested_s".into(), v.iter().map(|x| x.requested_s).collect::<Vec<f64>>()),
        Column::new("cost_usd".into(), v.iter().map(|x| x.cost_usd).collect::<Vec<f64>>()),
    ])
}

/// The time series.
pub fn timeseries_frame(r: &RunResults) -> PolarsResult<DataFrame> {
    let s = &r.samples;
    let mut cols = vec![
        Column::new("time_s".into(), s.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("serving_vms".into(), s.iter().map(|x| x.serving_vms).collect::<Vec<u64>>()),
    ];
    for p in Provider::ALL {
        cols.push(Column::new(
            format!("instances_{p}").into(),
            s.iter().map(|x| x.instances[p.index()]).collect::<Vec<u64>>(),
        ));
    }
    for p in Provider::ALL {
        cols.push(Column::new(
            format!("cost_rate_{p}_usd_per_h").into(),
            s.iter().map(|x| x.cost_rate_usd_per_h[p.index()]).collect::<Vec<f64>>(),
        ));
    }
    cols.extend([
        Column::new(
            "commitment_fees_usd_per_h".into(),
            s.iter().map(|x| x.commitment_fees_usd_per_h).collect::<Vec<f64>>(),
        ),
        Column::new("requests_total".into(), s.iter().map(|x| x.requests_total).collect::<Vec<u64>>()),
        Column::new("rejected_total".into(), s.iter().map(|x| x.rejected_total).collect::<Vec<u64>>()),
        Column::new("failovers_total".into(), s.iter().map(|x| x.failovers_total).collect::<Vec<u64>>()),
        Column::new("interruptions_total".into(), s.iter().map(|x| x.interruptions_total).collect::<Vec<u64>>()),
        Column::new("billed_usd".into(), s.iter().map(|x| x.billed_usd).collect::<Vec<f64>>()),
    ]);
    DataFrame::new_infer_height(cols)
}

/// Spot price changes.
pub fn prices_frame(r: &RunResults, c: &Catalog) -> PolarsResult<DataFrame> {
    let p = &r.prices;
    DataFrame::new_infer_height(vec![
        Column::new("time_s".into(), p.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("offer".into(), p.iter().map(|x| offer_label(c, x.offer)).collect::<Vec<String>>()),
        Column::new("provider".into(), p.iter().map(|x| c.provider_of(x.offer).as_str()).collect::<Vec<&str>>()),
        Column::new("price_usd_per_h".into(), p.iter().map(|x| x.price_per_h).collect::<Vec<f64>>()),
    ])
}

/// Deployment failovers.
pub fn failovers_frame(r: &RunResults) -> PolarsResult<DataFrame> {
    let f = &r.failovers;
    DataFrame::new_infer_height(vec![
        Column::new("time_s".into(), f.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("deployment".into(), f.iter().map(|x| x.deployment.as_str()).collect::<Vec<&str>>()),
        Column::new("from".into(), f.iter().map(|x| x.from.as_str()).collect::<Vec<&str>>()),
        Column::new("to".into(), f.iter().map(|x| x.to.as_str()).collect::<Vec<&str>>()),
        Column::new("reason".into(), f.iter().map(|x| x.reason.as_str()).collect::<Vec<&str>>()),
        Column::new("time_to_detect_s".into(), f.iter().map(|x| x.time_to_detect_s).collect::<Vec<Option<f64>>>()),
        Column::new("time_to_recover_s".into(), f.iter().map(|x| x.time_to_recover_s).collect::<Vec<Option<f64>>>()),
    ])
}

/// Deployment time series.
pub fn deployments_frame(r: &RunResults) -> PolarsResult<DataFrame> {
    let d = &r.deployment_samples;
    DataFrame::new_infer_height(vec![
        Column::new("time_s".into(), d.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("deployment".into(), d.iter().map(|x| x.deployment.as_str()).collect::<Vec<&str>>()),
        Column::new("replicas_wanted".into(), d.iter().map(|x| x.replicas_wanted).collect::<Vec<u32>>()),
        Column::new("replicas_running".into(), d.iter().map(|x| x.replicas_running).collect::<Vec<u32>>()),
        Column::new("cost_rate_usd_per_h".into(), d.iter().map(|x| x.cost_rate_usd_per_h).collect::<Vec<f64>>()),
    ])
}

/// Migrations.
pub fn migrations_frame(r: &RunResults) -> PolarsResult<DataFrame> {
    let m = &r.migrations;
    DataFrame::new_infer_height(vec![
        Column::new("time_s".into(), m.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("started_s".into(), m.iter().map(|x| x.started_s).collect::<Vec<f64>>()),
        Column::new("deployment".into(), m.iter().map(|x| x.deployment.as_str()).collect::<Vec<&str>>()),
        Column::new("slot".into(), m.iter().map(|x| x.slot).collect::<Vec<u32>>()),
        Column::new("kind".into(), m.iter().map(|x| x.kind.as_str()).collect::<Vec<&str>>()),
        Column::new("from".into(), m.iter().map(|x| x.from.as_str()).collect::<Vec<&str>>()),
        Column::new("to".into(), m.iter().map(|x| x.to.as_str()).collect::<Vec<&str>>()),
        Column::new("downtime_s".into(), m.iter().map(|x| x.downtime_s).collect::<Vec<f64>>()),
        Column::new("transferred_gib".into(), m.iter().map(|x| x.transferred_gib).collect::<Vec<f64>>()),
        Column::new("egress_usd".into(), m.iter().map(|x| x.egress_usd).collect::<Vec<f64>>()),
        Column::new("overlap_s".into(), m.iter().map(|x| x.overlap_s).collect::<Vec<f64>>()),
    ])
}

/// Restores from backup.
pub fn restores_frame(r: &RunResults) -> PolarsResult<DataFrame> {
    let x = &r.restores;
    DataFrame::new_infer_height(vec![
        Column::new("time_s".into(), x.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
        Column::new("deployment".into(), x.iter().map(|x| x.deployment.as_str()).collect::<Vec<&str>>()),
        Column::new("slot".into(), x.iter().map(|x| x.slot).collect::<Vec<u32>>()),
        Column::new("from".into(), x.iter().map(|x| x.from.as_str()).collect::<Vec<&str>>()),
        Column::new("lost_at_s".into(), x.iter().map(|x| x.lost_at_s).collect::<Vec<f64>>()),
        Column::new("recovery_point_s".into(), x.iter().map(|x| x.recovery_point_s).collect::<Vec<Option<f64>>>()),
        Column::new("rpo_s".into(), x.iter().map(|x| x.rpo_s).collect::<Vec<Option<f64>>>()),
        Column::new("restore_time_s".into(), x.iter().map(|x| x.restore_time_s).collect::<Vec<f64>>()),
        Column::new("rto_s".into(), x.iter().map(|x| x.rto_s).collect::<Vec<Option<f64>>>()),
    ])
}

/// Writes every output of a run into `dir` (created if missing). Returns the files written.
pub fn write_all(dir: &Path, r: &RunResults, c: &Catalog, opts: OutputOptions) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Output { path: dir.to_owned(), message: e.to_string() })?;
    let mut written = Vec::new();
    let mut json = serde_json::to_string_pretty(&r.summary)
        .map_err(|e| Error::Output { path: dir.join("summary.json"), message: e.to_string() })?;
    json.push('\n');
    written.push(write_atomic(&dir.join("summary.json"), |f| f.write_all(json.as_bytes()).map_err(|e| e.to_string()))?);
    let tables = [
        ("vms", vms_frame(r, c)),
        ("timeseries", timeseries_frame(r)),
        ("spot_prices", prices_frame(r, c)),
        ("failovers", failovers_frame(r)),
        ("deployments", deployments_frame(r)),
        ("migrations", migrations_frame(r)),
        ("restores", restores_frame(r)),
    ];
    for (name, frame) in tables {
        let mut df = frame.map_err(|e| Error::Output { path: dir.join(name), message: e.to_string() })?;
        written.push(write_atomic(&dir.join(format!("{name}.parquet")), |f| {
            ParquetWriter::new(f)
                .with_compression(ParquetCompression::Zstd(None))
                .set_parallel(false)
                .finish(&mut df)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?);
        if opts.csv {
            written.push(write_atomic(&dir.join(format!("{name}.csv")), |f| {
                CsvWriter::new(f).include_header(true).finish(&mut df).map_err(|e| e.to_string())
            })?);
        }
    }
    Ok(written)
}

fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> std::result::Result<(), String>) -> Result<PathBuf> {
    let err = |message: String| Error::Output { path: path.to_owned(), message };
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("out")));
    let mut f = File::create(&tmp).map_err(|e| err(e.to_string()))?;
    write(&mut f).map_err(&err)?;
    f.sync_all().map_err(|e| err(e.to_string()))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    Ok(path.to_owned())
}
