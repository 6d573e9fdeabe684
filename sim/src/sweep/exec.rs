//! Running a grid (or one shard of it) on a rayon pool.
//!
//! Workers run points and send their rows to the calling thread, which appends each to the journal
//! as it arrives (so an interrupted sweep loses nothing and `--resume` picks up from there), checks
//! the ranking's metric names against the first summary, and reports progress. The table is written
//! at the end, in grid order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use engine::PolicyConfig;
use rayon::prelude::*;

use super::grid::{Grid, Point, Shard};
use super::stats::ranking_text;
use super::table::{self, Cell, Journal, Manifest, Row, flatten, names_a_column};
use super::{Error, Result};
use crate::results::Summary;
use crate::run::RunOptions;
use crate::scenario::{Problem, ScenarioError};

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Only this slice of the grid.
    pub shard: Option<Shard>,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Keep the rows of an interrupted earlier attempt.
    pub resume: bool,
}

/// What a sweep produced.
#[derive(Debug)]
pub struct Outcome {
    /// Rows in grid order.
    pub rows: Vec<Row>,
    /// Runs simulated now.
    pub ran: usize,
    /// Runs taken from the journal of an earlier attempt.
    pub resumed: usize,
    /// Worker threads used.
    pub threads: usize,
    /// The manifest written.
    pub manifest: Manifest,
    /// The ranking (whole grids only).
    pub ranking: Option<String>,
    /// Files written.
    pub written: Vec<PathBuf>,
}

/// The manifest of a grid's table (or of one shard's).
pub fn manifest(grid: &Grid, shard: Option<Shard>) -> Manifest {
    let total = grid.len();
    Manifest {
        sweep: grid.sweep.name.clone(),
        grid_id: grid.id.clone(),
        runs_total: total,
        shard,
        runs: shard.map_or(total, |s| s.len(total)),
        scenarios: grid.sweep.scenarios.iter().map(|s| s.file.clone()).collect(),
        policies: grid.sweep.policies.clone(),
        params: param_names(grid),
        seeds: grid.sweep.seeds.clone(),
        ranking: grid.sweep.ranking.clone(),
    }
}

fn param_names(grid: &Grid) -> Vec<String> {
    grid.sweep.params.iter().map(|p| p.key.to_string()).collect()
}

/// The row of one finished run.
pub fn row_of(grid: &Grid, point: &Point<'_>, summary: &Summary) -> (Row, serde_json::Value) {
    let json = serde_json::to_value(summary).unwrap_or(serde_json::Value::Null);
    let mut row = Row::new();
    flatten("", &json, &mut row);
    row.insert("run".into(), Cell::U(point.index as u64));
    row.insert("scenario_file".into(), Cell::S(point.scenario.file.clone()));
    for (p, param) in grid.sweep.params.iter().enumerate() {
        row.insert(format!("param.{}", param.key), grid.param_cell(point.variant, p));
    }
    (row, json)
}

/// Runs one point.
pub fn run_point(grid: &Grid, point: &Point<'_>) -> Result<(Row, serde_json::Value), crate::Error> {
    let opts = RunOptions { seed: point.seed, policy: point.policy.and_then(PolicyConfig::default_for) };
    let results = crate::run(&point.variant.data, &opts, &mut ())?;
    Ok(row_of(grid, point, &results.summary))
}

/// Runs the grid (or `opts.shard` of it) and writes `runs.parquet`, `sweep.json` and, for a whole
/// grid, `ranking.txt` into `out`. `progress(done, total)` is called as runs finish.
pub fn execute(grid: &Grid, out: &Path, opts: Options, progress: &mut dyn FnMut(usize, usize)) -> Result<Outcome> {
    let total = grid.len();
    let shard = opts.shard.unwrap_or(Shard { index: 0, count: 1 });
    let mine: Vec<usize> = shard.runs(total).collect();
    let (mut journal, mut done) = Journal::open(out, &grid.id, opts.shard, opts.resume)?;
    done.retain(|i, _| i % shard.count == shard.index && *i < total);
    let resumed = done.len();
    let todo: Vec<usize> = mine.iter().copied().filter(|i| !done.contains_key(i)).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start worker threads: {e}")))?;
    let threads = pool.current_num_threads();
    progress(done.len(), mine.len());

    let mut metrics_checked = false;
    if let Some(row) = done.values().next() {
        // Resumed: check the metric names against a journal row (a map column may be absent).
        let known =
            |m: &str| row.keys().any(|k| k == m || k.starts_with(&format!("{}.", m.split('.').next().unwrap_or(m))));
        check_metrics(grid, known, row.keys().cloned().collect())?;
        metrics_checked = true;
    }

    let cancel = AtomicBool::new(false);
    let mut failure: Option<Error> = None;
    let mut failed_at = usize::MAX;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let (todo, cancel, pool) = (&todo, &cancel, &pool);
        s.spawn(move || {
            pool.install(|| {
                todo.par_iter().for_each_with(tx, |tx, &i| {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let point = grid.point(i);
                    let _ = tx.send((i, run_point(grid, &point)));
                })
            })
        });
        for (i, r) in rx {
            match r {
                Ok((row, json)) => {
                    if !metrics_checked {
                        metrics_checked = true;
                        let columns = top_level_columns(&json);
                        if let Err(e) = check_metrics(grid, |m| names_a_column(&json, m), columns) {
                            cancel.store(true, Ordering::Relaxed);
                            failure = Some(e);
                            failed_at = 0;
                        }
                    }
                    if let Err(e) = journal.append(i, &row) {
                        cancel.store(true, Ordering::Relaxed);
                        if failure.is_none() {
                            failure = Some(e);
                        }
                    }
                    done.insert(i, row);
                    progress(done.len(), mine.len());
                }
                Err(e) => {
                    cancel.store(true, Ordering::Relaxed);
                    // Report the first failing run in grid order, whichever thread got there first.
                    if i < failed_at {
                        failed_at = i;
                        failure = Some(Error::Run { run: i, what: grid.point(i).describe(), source: Box::new(e) });
                    }
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let rows: Vec<Row> = done.into_values().collect();
    debug_assert_eq!(rows.len(), mine.len());
    let manifest = manifest(grid, opts.shard);
    let ranking = opts.shard.is_none().then(|| ranking_text(&rows, &manifest.params, &manifest.ranking));
    let written = table::write_table(out, &rows, &manifest, ranking.as_deref())?;
    journal.remove()?;
    Ok(Outcome { rows, ran: todo.len(), resumed, threads, manifest, ranking, written })
}

/// Names of the columns a summary gives, with `.*` for maps and lists.
fn top_level_columns(json: &serde_json::Value) -> Vec<String> {
    json.as_object()
        .map(|m| {
            m.iter().map(|(k, v)| if v.is_object() || v.is_array() { format!("{k}.*") } else { k.clone() }).collect()
        })
        .unwrap_or_default()
}

fn check_metrics(grid: &Grid, known: impl Fn(&str) -> bool, columns: Vec<String>) -> Result<()> {
    let r = &grid.sweep.ranking;
    let problems: Vec<Problem> = r
        .metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| !known(m))
        .map(|(i, m)| Problem {
            path: grid.sweep.path.clone(),
            line: grid.sweep.ranking_lines.get(i).copied().flatten(),
            key: if *m == r.by { "ranking.by".into() } else { format!("ranking.metrics[{i}]") },
            message: format!("no column {m:?} in the runs table; columns are: {}", columns.join(", ")),
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(Error::Input(ScenarioError::Invalid { problems })) }
}

/// Runs in a folder: the default output folder of a sweep.
pub fn default_out(grid: &Grid, shard: Option<Shard>) -> PathBuf {
    let base = Path::new("results").join("sweeps").join(&grid.sweep.name);
    match shard {
        Some(s) => base.join(format!("shard-{}-of-{}", s.index, s.count)),
        None => base,
    }
}
