//! `sim merge OUT SHARD_DIR...`: the shards of one grid back into one table.
//!
//! Every shard folder holds `runs.parquet` and `sweep.json`. The manifests must agree on everything
//! but the shard (same grid fingerprint, same shard count), every shard `0..N` must be given exactly
//! once, and each table must hold exactly its shard's runs. The rows are then put back in grid order
//! and written by the same code as a single-machine sweep, so the table is byte-identical to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::stats::ranking_text;
use super::table::{self, Cell, Manifest, Row};
use super::{Error, Result};

/// What a merge produced.
#[derive(Debug)]
pub struct Merged {
    /// The manifest of the whole grid.
    pub manifest: Manifest,
    /// Rows in grid order.
    pub rows: Vec<Row>,
    /// The ranking.
    pub ranking: String,
    /// Files written.
    pub written: Vec<PathBuf>,
}

/// Merges shard folders into `out`.
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<Merged> {
    if shards.is_empty() {
        return Err(Error::Usage("give the folders of every shard to merge".into()));
    }
    let mut manifests = Vec::new();
    for dir in shards {
        if same_dir(dir, out) {
            return Err(Error::Usage(format!("{}: the output folder cannot be one of the shards", out.display())));
        }
        if !dir.join(table::MANIFEST).is_file() {
            let why = if dir.join(table::JOURNAL).is_file() {
                "this shard has not finished (a journal but no sweep.json)"
            } else {
                "not a sweep output folder (no sweep.json)"
            };
            return Err(Error::Usage(format!("{}: {why}", dir.display())));
        }
        let m = Manifest::read(dir).map_err(|e| Error::Usage(e.to_string()))?;
        if m.shard.is_none() {
            return Err(Error::Usage(format!(
                "{}: holds a whole sweep, not a shard (made without --shard)",
                dir.display()
            )));
        }
        manifests.push(m);
    }

    // Same grid, same number of shards.
    let whole = |m: &Manifest| Manifest { shard: None, runs: m.runs_total, ..m.clone() };
    let first = whole(&manifests[0]);
    let count = manifests[0].shard.map_or(1, |s| s.count);
    for (dir, m) in shards.iter().zip(&manifests).skip(1) {
        let shard = m.shard.map_or(1, |s| s.count);
        if m.grid_id != first.grid_id || m.sweep != first.sweep {
            return Err(Error::Usage(format!(
                "{} is from sweep {:?} (grid {}) but {} is from sweep {:?} (grid {}): only shards of the same \
                 sweep file and scenarios can be merged",
                dir.display(),
                m.sweep,
                m.grid_id,
                shards[0].display(),
                first.sweep,
                first.grid_id
            )));
        }
        if shard != count {
            return Err(Error::Usage(format!(
                "{} is one of {shard} shards but {} is one of {count}: merge shards of one split",
                dir.display(),
                shards[0].display()
            )));
        }
        if whole(m) != first {
            return Err(Error::Usage(format!(
                "{} and {} describe different sweeps (their sweep.json differ beyond the shard)",
                dir.display(),
                shards[0].display()
            )));
        }
    }

    // Each shard exactly once.
    let mut by_index: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    for (dir, m) in shards.iter().zip(&manifests) {
        let i = m.shard.map_or(0, |s| s.index);
        if let Some(other) = by_index.insert(i, dir) {
            return Err(Error::Usage(format!(
                "shard {i}/{count} is given twice: {} and {}",
                other.display(),
                dir.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "missing shard{} {} of {count} (shards 0..{} must each be given once)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            count - 1
        )));
    }

    // Each table holds exactly its shard's runs.
    let total = first.runs_total;
    let mut all: BTreeMap<u64, Row> = BTreeMap::new();
    for (dir, m) in shards.iter().zip(&manifests) {
        let Some(shard) = m.shard else { continue };
        let rows = table::read_rows(&dir.join(table::TABLE))?;
        let expected: Vec<u64> = shard.runs(total).map(|i| i as u64).collect();
        let got: Vec<u64> = rows
            .iter()
            .map(|r| match r.get("run") {
                Some(Cell::U(u)) => *u,
                _ => u64::MAX,
            })
            .collect();
        if got != expected {
            return Err(Error::Usage(format!(
                "{}: its table holds {} runs, not the {} of shard {}/{} (an unfinished or altered shard)",
                dir.display(),
                got.len(),
                expected.len(),
                shard.index,
                shard.count
            )));
        }
        for (i, r) in got.into_iter().zip(rows) {
            all.insert(i, r);
        }
    }
    let rows: Vec<Row> = all.into_values().collect();
    let ranking = ranking_text(&rows, &first.params, &first.ranking);
    let written = table::write_table(out, &rows, &first, Some(&ranking))?;
    Ok(Merged { manifest: first, rows, ranking, written })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
