//! The runs table: one row per run, its columns derived from [`crate::results::Summary`]
//! generically, so a field added to the summary becomes a column without touching this file.
//!
//! A row is a map from column name to [`Cell`]. The table's columns are `run`, `scenario_file`,
//! `scenario`, `policy`, `seed`, one `param.<key>` per swept parameter, then every other column in
//! alphabetical order; a column's type follows from its cells (all unsigned integers: `u64`; any
//! float: `f64`; ...; only nulls: `f64`). The table is thus a pure function of its rows, which is
//! what makes a merged table byte-identical to a single-machine one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::grid::Shard;
use super::spec::Ranking;
use super::{Error, Result};

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// Missing.
    #[serde(rename = "n")]
    Null,
    /// Unsigned integer.
    #[serde(rename = "u")]
    U(u64),
    /// Signed integer.
    #[serde(rename = "i")]
    I(i64),
    /// Float (never NaN: NaN becomes null).
    #[serde(rename = "f")]
    F(f64),
    /// Boolean.
    #[serde(rename = "b")]
    B(bool),
    /// Text.
    #[serde(rename = "s")]
    S(String),
}

impl Cell {
    /// A number, for statistics (booleans count as 0/1).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::U(u) => Some(u as f64),
            Cell::I(i) => Some(i as f64),
            Cell::F(f) => Some(f),
            Cell::B(b) => Some(if b { 1.0 } else { 0.0 }),
            Cell::Null | Cell::S(_) => None,
        }
    }

    /// A TOML value (a parameter value) as a cell.
    pub fn from_toml(v: &toml_edit::Value) -> Cell {
        match v {
            toml_edit::Value::String(s) => Cell::S(s.value().clone()),
            toml_edit::Value::Integer(i) => Cell::I(*i.value()),
            toml_edit::Value::Float(f) if f.value().is_nan() => Cell::Null,
            toml_edit::Value::Float(f) => Cell::F(*f.value()),
            toml_edit::Value::Boolean(b) => Cell::B(*b.value()),
            other => Cell::S(other.to_string().trim().to_owned()),
        }
    }

    fn from_json(v: &serde_json::Value) -> Option<Cell> {
        Some(match v {
            serde_json::Value::Null => Cell::Null,
            serde_json::Value::Bool(b) => Cell::B(*b),
            serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) if !n.is_f64() => Cell::U(u),
                (_, Some(i), _) if !n.is_f64() => Cell::I(i),
                (_, _, Some(f)) if !f.is_nan() => Cell::F(f),
                _ => Cell::Null,
            },
            serde_json::Value::String(s) => Cell::S(s.clone()),
            _ => return None,
        })
    }

    /// Text for tables and messages.
    pub fn display(&self) -> String {
        match self {
            Cell::Null => "-".into(),
            Cell::U(u) => u.to_string(),
            Cell::I(i) => i.to_string(),
            Cell::F(f) => f.to_string(),
            Cell::B(b) => b.to_string(),
            Cell::S(s) => s.clone(),
        }
    }
}

/// One row: column name → value.
pub type Row = BTreeMap<String, Cell>;

/// Flattens a serialized value into `out`: scalars as they are, objects as `prefix.key`, lists of
/// objects that have a string `name` as `prefix.<name>.key`; other lists are left out.
pub fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Row) {
    let join = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                flatten(&join(k), x, out);
            }
        }
        serde_json::Value::Array(items) => {
            let named = !items.is_empty() && items.iter().all(|x| x.get("name").is_some_and(|n| n.is_string()));
            if named {
                for x in items {
                    let (Some(name), Some(obj)) = (x.get("name").and_then(|n| n.as_str()), x.as_object()) else {
                        continue;
                    };
                    for (k, y) in obj.iter().filter(|(k, _)| *k != "name") {
                        flatten(&format!("{}.{k}", join(name)), y, out);
                    }
                }
            }
        }
        scalar => {
            if let Some(c) = Cell::from_json(scalar) {
                out.insert(prefix.to_owned(), c);
            }
        }
    }
}

/// Whether `name` is (or may become, for a map or list) a column of a summary whose serialized
/// form is `summary`; used to check the ranking's metrics after the first run.
pub fn names_a_column(summary: &serde_json::Value, name: &str) -> bool {
    let head = name.split('.').next().unwrap_or(name);
    match summary.get(head) {
        Some(serde_json::Value::Object(_) | serde_json::Value::Array(_)) => name.len() > head.len(),
        Some(_) => name == head,
        None => false,
    }
}

/// The key columns that open the table, in order.
pub fn front_columns(params: &[String]) -> Vec<String> {
    let mut v: Vec<String> = ["run", "scenario_file", "scenario", "policy", "seed"].map(String::from).to_vec();
    v.extend(params.iter().map(|p| format!("param.{p}")));
    v
}

/// Column order of a table of `rows`.
pub fn column_order(rows: &[Row], params: &[String]) -> Vec<String> {
    let front = front_columns(params);
    let rest: BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).filter(|k| !front.contains(k)).collect();
    front.iter().cloned().chain(rest.into_iter().cloned()).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    U,
    I,
    F,
    B,
    S,
}

fn kind_of(cells: impl Iterator<Item = Option<Cell>>) -> Kind {
    let mut k = Kind::Null;
    for c in cells.flatten() {
        let ck = match c {
            Cell::Null => continue,
            Cell::U(u) if u > i64::MAX as u64 && matches!(k, Kind::I) => Kind::F,
            Cell::U(_) => Kind::U,
            Cell::I(_) => Kind::I,
            Cell::F(_) => Kind::F,
            Cell::B(_) => Kind::B,
            Cell::S(_) => Kind::S,
        };
        k = match (k, ck) {
            (Kind::Null, x) => x,
            (a, b) if a == b => a,
            (Kind::U, Kind::I) | (Kind::I, Kind::U) => Kind::I,
            (Kind::U | Kind::I | Kind::F, Kind::U | Kind::I | Kind::F) => Kind::F,
            _ => Kind::S,
        };
    }
    k
}

/// The table of `rows` (in the order given) as a data frame.
pub fn frame(rows: &[Row], params: &[String]) -> PolarsResult<DataFrame> {
    let mut cols = Vec::new();
    for name in column_order(rows, params) {
        let get = |r: &Row| r.get(&name).cloned();
        let n: PlSmallStr = name.as_str().into();
        let col = match kind_of(rows.iter().map(get)) {
            Kind::U => Column::new(
                n,
                rows.iter()
                    .map(|r| match get(r) {
                        Some(Cell::U(u)) => Some(u),
                        _ => None,
                    })
                    .collect::<Vec<Option<u64>>>(),
            ),
            Kind::I => Column::new(
                n,
                rows.iter()
                    .map(|r| match get(r) {
                        Some(Cell::U(u)) => Some(u as i64),
                        Some(Cell::I(i)) => Some(i),
                        _ => None,
                    })
                    .collect::<Vec<Option<i64>>>(),
            ),
            Kind::F | Kind::Null => {
                Column::new(n, rows.iter().map(|r| get(r).and_then(|c| c.as_f64())).collect::<Vec<Option<f64>>>())
            }
            Kind::B => Column::new(
                n,
                rows.iter()
                    .map(|r| match get(r) {
                        Some(Cell::B(b)) => Some(b),
                        _ => None,
                    })
                    .collect::<Vec<Option<bool>>>(),
            ),
            Kind::S => Column::new(
                n,
                rows.iter()
                    .map(|r| match get(r) {
                        None | Some(Cell::Null) => None,
                        Some(c) => Some(c.display()),
                    })
                    .collect::<Vec<Option<String>>>(),
            ),
        };
        cols.push(col);
    }
    DataFrame::new_infer_height(cols)
}

/// Reads a runs table back into rows.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file).finish().map_err(|e| Error::io(path, e))?;
    let bad = |e: PolarsError| Error::io(path, e);
    let mut rows = vec![Row::new(); df.height()];
    for col in df.columns() {
        let name = col.name().to_string();
        let cells: Vec<Option<Cell>> = match col.dtype() {
            DataType::UInt64 => {
                let ca = col.u64().map_err(bad)?;
                (0..ca.len()).map(|i| ca.get(i).map(Cell::U)).collect()
            }
            DataType::Int64 => {
                let ca = col.i64().map_err(bad)?;
                (0..ca.len()).map(|i| ca.get(i).map(Cell::I)).collect()
            }
            DataType::Float64 => {
                let ca = col.f64().map_err(bad)?;
                (0..ca.len()).map(|i| ca.get(i).map(Cell::F)).collect()
            }
            DataType::Boolean => {
                let ca = col.bool().map_err(bad)?;
                (0..ca.len()).map(|i| ca.get(i).map(Cell::B)).collect()
            }
            DataType::String => {
                let ca = col.str().map_err(bad)?;
                (0..ca.len()).map(|i| ca.get(i).map(|s| Cell::S(s.to_owned()))).collect()
            }
            other => return Err(Error::io(path, format!("column {name} has an unexpected type {other}"))),
        };
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.insert(name.clone(), cell.unwrap_or(Cell::Null));
        }
    }
    Ok(rows)
}

/// `sweep.json`: what a runs table holds. Shards of one grid differ only in `shard` and `runs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Sweep name.
    pub sweep: String,
    /// Grid fingerprint.
    pub grid_id: String,
    /// Runs in the whole grid.
    pub runs_total: usize,
    /// Which shard this is (`null`: the whole grid).
    pub shard: Option<Shard>,
    /// Runs in this table.
    pub runs: usize,
    /// Scenario files as written in the sweep file.
    pub scenarios: Vec<String>,
    /// Policies (empty: each scenario's own).
    pub policies: Vec<String>,
    /// Swept scenario keys.
    pub params: Vec<String>,
    /// Seeds (empty: each scenario's own).
    pub seeds: Vec<u64>,
    /// What the ranking shows.
    pub ranking: Ranking,
}

impl Manifest {
    /// Reads `dir/sweep.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let p = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| Error::io(&p, format!("not a sweep manifest: {e}")))
    }
}

/// File names in a sweep's output folder.
pub const TABLE: &str = "runs.parquet";
/// The manifest.
pub const MANIFEST: &str = "sweep.json";
/// The ranking as printed.
pub const RANKING: &str = "ranking.txt";
/// Rows of finished runs, appended as they finish; removed once the table is written.
pub const JOURNAL: &str = "journal.jsonl";

/// Writes `runs.parquet` and `sweep.json` (and `ranking.txt` when given) into `dir`.
pub fn write_table(dir: &Path, rows: &[Row], manifest: &Manifest, ranking: Option<&str>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut df = frame(rows, &manifest.params).map_err(|e| Error::io(dir.join(TABLE), e))?;
    let mut written = vec![write_atomic(&dir.join(TABLE), |f| {
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .set_parallel(false)
            .finish(&mut df)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?];
    let mut json = serde_json::to_string_pretty(manifest).map_err(|e| Error::io(dir.join(MANIFEST), e))?;
    json.push('\n');
    written.push(write_atomic(&dir.join(MANIFEST), |f| f.write_all(json.as_bytes()).map_err(|e| e.to_string()))?);
    if let Some(text) = ranking {
        written.push(write_atomic(&dir.join(RANKING), |f| f.write_all(text.as_bytes()).map_err(|e| e.to_string()))?);
    }
    Ok(written)
}

fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> std::result::Result<(), String>) -> Result<PathBuf> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(&mut f).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(path.to_owned())
}

/// The journal: a header naming the grid and shard, then one line per finished run.
pub struct Journal {
    file: File,
    path: PathBuf,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct JournalHeader {
    grid_id: String,
    shard: Option<Shard>,
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    run: usize,
    row: Row,
}

impl Journal {
    /// Opens the journal of `dir`. With `resume`, rows of an earlier, interrupted attempt at the same
    /// grid and shard are returned (a torn last line is dropped); otherwise the journal starts anew.
    pub fn open(
        dir: &Path,
        grid_id: &str,
        shard: Option<Shard>,
        resume: bool,
    ) -> Result<(Journal, BTreeMap<usize, Row>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(JOURNAL);
        let header = JournalHeader { grid_id: grid_id.to_owned(), shard };
        let mut done = BTreeMap::new();
        if resume && path.is_file() {
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let mut lines = std::io::BufReader::new(f).lines();
            let same = lines
                .next()
                .and_then(|l| l.ok())
                .and_then(|l| serde_json::from_str::<JournalHeader>(&l).ok())
                .is_some_and(|h| h == header);
            if same {
                for line in lines.map_while(|l| l.ok()) {
                    match serde_json::from_str::<JournalLine>(&line) {
                        Ok(j) => {
                            done.insert(j.run, j.row);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        // Rewrite the journal with what is kept, so a torn line never stays in the middle.
        let mut file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut text = serde_json::to_string(&header).map_err(|e| Error::io(&path, e))?;
        text.push('\n');
        for (run, row) in &done {
            let line =
                serde_json::to_string(&JournalLine { run: *run, row: row.clone() }).map_err(|e| Error::io(&path, e))?;
            text.push_str(&line);
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        Ok((Journal { file, path }, done))
    }

    /// Appends one finished run.
    pub fn append(&mut self, run: usize, row: &Row) -> Result<()> {
        let mut line =
            serde_json::to_string(&JournalLine { run, row: row.clone() }).map_err(|e| Error::io(&self.path, e))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }

    /// Removes the journal (the table is written).
    pub fn remove(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattening() {
        let v = serde_json::json!({
            "a": 1, "b": 1.5, "c": null, "d": "x", "e": true, "neg": -3,
            "m": { "k": 2.0, "n": { "deep": 1 } },
            "named": [ { "name": "web", "x": 1 }, { "name": "api", "x": 2 } ],
            "plain": [ 1, 2 ]
        });
        let mut row = Row::new();
        flatten("", &v, &mut row);
        assert_eq!(row["a"], Cell::U(1));
        assert_eq!(row["b"], Cell::F(1.5));
        assert_eq!(row["c"], Cell::Null);
        assert_eq!(row["neg"], Cell::I(-3));
        assert_eq!(row["m.k"], Cell::F(2.0));
        assert_eq!(row["m.n.deep"], Cell::U(1));
        assert_eq!(row["named.api.x"], Cell::U(2));
        assert!(!row.keys().any(|k| k.starts_with("plain")));
        assert!(names_a_column(&v, "m.anything"));
        assert!(names_a_column(&v, "a"));
        assert!(!names_a_column(&v, "a.b"));
        assert!(!names_a_column(&v, "zz"));
    }

    #[test]
    fn column_kinds() {
        let k = |cells: Vec<Cell>| kind_of(cells.into_iter().map(Some));
        assert!(k(vec![Cell::U(1), Cell::Null]) == Kind::U);
        assert!(k(vec![Cell::U(1), Cell::F(0.5)]) == Kind::F);
        assert!(k(vec![Cell::U(1), Cell::I(-1)]) == Kind::I);
        assert!(k(vec![Cell::Null]) == Kind::Null);
        assert!(k(vec![Cell::S("a".into()), Cell::U(1)]) == Kind::S);
    }
}
