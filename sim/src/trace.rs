//! # Workload traces
//!
//! Reads VM arrivals from public cluster traces (or from our own small format) into a list of
//! [`TraceRecord`]s: when a VM arrives, how long it lives, and how many vCPUs and MiB it asks for.
//! [`load`] reads a file, [`parse`] reads text already in memory; both take a [`TraceFormat`] and
//! [`TraceOptions`].
//!
//! The result is sorted by arrival (a stable sort, so ties keep file order) and shifted so that the
//! first arrival is at 0 s. With [`TraceOptions::limit`] set to `Some(n)`, only the first `n`
//! records in arrival order are kept; the whole file is still read and checked.
//!
//! Every error is a [`TraceError`] naming the file, the 1-based line, the column and what the column
//! accepts, for example:
//! ```text
//! scenarios/traces/x.csv:17: column `vmcorecount`: expected a whole number of cores >= 1, found "abc"
//! ```
//! No input makes the parser panic.
//!
//! ## Lines and fields, in every format
//! Fields are separated by commas. Line ends may be `\n` or `\r\n`; a UTF-8 byte-order mark at the
//! start of the file is ignored; blank lines are skipped; spaces around a field are ignored. A field
//! may be wrapped in double quotes (`"4"` reads as `4`; inside quotes a comma is part of the field
//! and `""` stands for one `"`). Each format has a fixed number of columns and a line with more or
//! fewer is an error.
//!
//! ## [`TraceFormat::AzureVmtable`]: Azure Public Dataset `vmtable.csv` (V1 2017, V2 2019)
//! No header; 11 columns: `vmid, subscriptionid, deploymentid, vmcreated, vmdeleted, maxcpu,
//! avgcpu, p95maxcpu, vmcategory, vmcorecount, vmmemory`. Only four are read:
//! - `vmcreated`, `vmdeleted`: seconds since the trace started (finite, >= 0, and
//!   `vmdeleted >= vmcreated`). The arrival is `vmcreated`, the lifetime `vmdeleted - vmcreated`
//!   (always `Some`: a VM alive at the end of the trace is "deleted" at its end).
//! - `vmcorecount`: a whole number of cores >= 1.
//! - `vmmemory`: GB (read as GiB, the unit of Azure VM sizes), a number > 0 such as `1.75`;
//!   converted to MiB as `ceil(GB × 1024)`.
//!
//! V2 gives both as buckets: plain numbers (`2`, `4`, `8`, `24` cores; `2`, `4`, `8`, `32`, `64` GB)
//! are read as they are, and an open bucket `>N` is read as **N + 1**, the smallest value the bucket
//! admits (`>24` cores → 25 vCPU, `>64` GB → 65 GB = 66 560 MiB). This under-states the largest VMs
//! rather than inventing sizes the trace does not give. The other columns are not checked.
//!
//! ## [`TraceFormat::GoogleTaskEvents`]: Google cluster-data 2011 `task_events`
//! No header; 13 columns: `timestamp, missing info, job ID, task index, machine ID, event type,
//! user, scheduling class, priority, CPU request, memory request, disk space request,
//! different-machine restriction`. Read are:
//! - `timestamp`: microseconds, a whole number from 0 to 2^63-1. 0 means "before the trace started"
//!   and is taken as time 0; rows at 2^63-1 ("after the trace ended") are skipped.
//! - `job ID`, `task index`: whole numbers; together they name a task.
//! - `event type`: 0 SUBMIT, 1 SCHEDULE, 2 EVICT, 3 FAIL, 4 FINISH, 5 KILL, 6 LOST,
//!   7 UPDATE_PENDING, 8 UPDATE_RUNNING.
//! - `CPU request`, `memory request`: fractions of the largest machine, from 0 to 1, or empty. An
//!   empty request takes the value from the latest earlier row of the same task that had one.
//!
//! A record runs from a task's SUBMIT (its arrival) to the task's first terminal event (2–6) after
//! it, whose time gives the lifetime; a task with no terminal event in the file has
//! `lifetime_s: None`. A SUBMIT after a terminal event (a re-submission, e.g. after an eviction)
//! starts a new record. A second SUBMIT while a record is open is ignored, and so are terminal
//! events of tasks whose SUBMIT is not in the file. A record's size is the request in force at its
//! SUBMIT: `vcpu = ceil(CPU × google_machine_vcpu)` and `memory_mib = ceil(memory ×
//! google_machine_memory_mib)`, each at least 1 (see [`TraceOptions`]); a SUBMIT with no request
//! value, on its row or an earlier row of the task, is an error. Note that the lifetime includes the
//! time the task waited to be scheduled, and that tasks submitted before the trace began (time 0)
//! look shorter than they were.
//!
//! ## [`TraceFormat::Simple`]: NovaCron's own format
//! A CSV file whose first line (after comments and blank lines) is exactly the header
//! `arrival_s,lifetime_s,vcpu,memory_mib`, followed by one VM per line:
//! - `arrival_s`: seconds, a finite number >= 0 (need not be sorted, need not start at 0);
//! - `lifetime_s`: seconds, a finite number >= 0, or empty for a VM that runs until the end of the
//!   simulation;
//! - `vcpu`: a whole number >= 1;
//! - `memory_mib`: a whole number >= 1.
//!
//! Lines whose first non-blank character is `#` are comments. For example:
//! ```text
//! # two VMs; the second runs to the end
//! arrival_s,lifetime_s,vcpu,memory_mib
//! 0,3600,2,4096
//! 12.5,,8,32768
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// One VM (or task) taken from a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRecord {
    /// Seconds after the trace's first arrival (so the first record has 0).
    pub arrival_s: f64,
    /// How long the VM runs, in seconds; `None` when it runs until the end of the simulation.
    pub lifetime_s: Option<f64>,
    /// Virtual CPUs requested, at least 1.
    pub vcpu: u32,
    /// Memory requested, in MiB, at least 1.
    pub memory_mib: u64,
}

/// The layout of a trace file; see the module documentation for each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// Azure Public Dataset V1/V2 `vmtable.csv` (`azure-vmtable`).
    AzureVmtable,
    /// Google cluster-data 2011 `task_events` (`google-task-events`).
    GoogleTaskEvents,
    /// NovaCron's `arrival_s,lifetime_s,vcpu,memory_mib` CSV with a header (`simple`).
    Simple,
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the trace: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line does not fit the format.
    #[error("{}:{line}: {}{message}", path.display(), ColumnLabel(column.as_deref()))]
    Parse {
        /// The file (or the name given to [`parse`]).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The column at fault, when the fault is in one column.
        column: Option<String>,
        /// What was expected and what was found.
        message: String,
    },
}

/// Result with a [`TraceError`].
pub type Result<T, E = TraceError> = std::result::Result<T, E>;

/// Renders "column `name`: " or nothing.
struct ColumnLabel<'a>(Option<&'a str>);

impl fmt::Display for ColumnLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "column `{name}`: "),
            None => Ok(()),
        }
    }
}

/// Settings for reading a trace.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    /// vCPUs of the largest machine, which Google's normalised CPU requests are fractions of.
    pub google_machine_vcpu: u32,
    /// MiB of the largest machine, which Google's normalised memory requests are fractions of.
    pub google_machine_memory_mib: u64,
    /// Keep only the first this many records in arrival order (the whole file is still checked).
    pub limit: Option<usize>,
}

impl Default for TraceOptions {
    /// 32 vCPU, 131 072 MiB (128 GiB), no limit.
    fn default() -> Self {
        Self { google_machine_vcpu: 32, google_machine_memory_mib: 131_072, limit: None }
    }
}

/// Reads a trace file of the given format: records sorted by arrival, the first at 0 s.
///
/// The file is read line by line, so large traces need not fit in memory as text.
pub fn load(path: &Path, format: TraceFormat, opts: &TraceOptions) -> Result<Vec<TraceRecord>, TraceError> {
    let io_err = |source| TraceError::Io { path: path.to_path_buf(), source };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let mut parser = Parser::new(path, format, opts);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf)
            .map_err(|_| parser.error(line_no, None, "the line is not valid UTF-8 text".to_owned()))?;
        parser.line(line_no, line)?;
    }
    parser.finish()
}

/// Reads a trace from text; `path` only names the source in errors.
pub fn parse(
    text: &str,
    path: &Path,
    format: TraceFormat,
    opts: &TraceOptions,
) -> Result<Vec<TraceRecord>, TraceError> {
    let mut parser = Parser::new(path, format, opts);
    for (i, line) in text.lines().enumerate() {
        parser.line(i + 1, line)?;
    }
    parser.finish()
}

// ---------------------------------------------------------------------------------------------
// Column names and limits

const AZURE_COLUMNS: [&str; 11] = [
    "vmid",
    "subscriptionid",
    "deploymentid",
    "vmcreated",
    "vmdeleted",
    "maxcpu",
    "avgcpu",
    "p95maxcpu",
    "vmcategory",
    "vmcorecount",
    "vmmemory",
];
const AZ_CREATED: usize = 3;
const AZ_DELETED: usize = 4;
const AZ_CORES: usize = 9;
const AZ_MEMORY: usize = 10;

const GOOGLE_COLUMNS: [&str; 13] = [
    "timestamp",
    "missing info",
    "job ID",
    "task index",
    "machine ID",
    "event type",
    "user",
    "scheduling class",
    "priority",
    "CPU request",
    "memory request",
    "disk space request",
    "different-machine restriction",
];
const G_TIME: usize = 0;
const G_JOB: usize = 2;
const G_TASK: usize = 3;
const G_EVENT: usize = 5;
const G_CPU: usize = 9;
const G_MEMORY: usize = 10;

/// Google's marker for "after the trace ended".
const GOOGLE_AFTER_END_US: u64 = i64::MAX as u64;

const SIMPLE_COLUMNS: [&str; 4] = ["arrival_s", "lifetime_s", "vcpu", "memory_mib"];
const SIMPLE_HEADER: &str = "arrival_s,lifetime_s,vcpu,memory_mib";

/// Largest memory size accepted, in MiB: 2^53, beyond which f64 stops counting in whole MiB.
const MAX_MIB: f64 = 9_007_199_254_740_992.0;

/// Longest piece of a bad field quoted back in an error message, in characters.
const FOUND_MAX_CHARS: usize = 40;

// ---------------------------------------------------------------------------------------------
// The line-by-line parser shared by `load` and `parse`

struct Parser<'a> {
    path: &'a Path,
    opts: &'a TraceOptions,
    state: State,
    /// Lines seen so far (to place end-of-file errors).
    lines: usize,
}

enum State {
    Azure(Vec<TraceRecord>),
    Google(Google),
    Simple { header_seen: bool, records: Vec<TraceRecord> },
}

/// What is known of one Google task while reading.
#[derive(Default)]
struct Task {
    cpu: Option<f64>,
    memory: Option<f64>,
    /// Index into `Google::records` of the record awaiting a terminal event.
    open: Option<usize>,
}

/// A Google record in integer microseconds, converted once the file is read.
struct GoogleRecord {
    submit_us: u64,
    submit_line: usize,
    end_us: Option<u64>,
    vcpu: u32,
    memory_mib: u64,
}

#[derive(Default)]
struct Google {
    tasks: HashMap<(u64, u64), Task>,
    records: Vec<GoogleRecord>,
}

impl<'a> Parser<'a> {
    fn new(path: &'a Path, format: TraceFormat, opts: &'a TraceOptions) -> Self {
        let state = match format {
            TraceFormat::AzureVmtable => State::Azure(Vec::new()),
            TraceFormat::GoogleTaskEvents => State::Google(Google::default()),
            TraceFormat::Simple => State::Simple { header_seen: false, records: Vec::new() },
        };
        Self { path, opts, state, lines: 0 }
    }

    fn error(&self, line: usize, column: Option<&str>, message: String) -> TraceError {
        parse_error(self.path, line, column, message)
    }

    /// "column `name`: expected {expected}, found "{found}"".
    fn bad(&self, line: usize, column: &str, expected: &str, found: &str) -> TraceError {
        self.error(line, Some(column), format!("expected {expected}, found {}", Found(found)))
    }

    /// Takes one line (with or without its line end).
    fn line(&mut self, line_no: usize, raw: &str) -> Result<()> {
        self.lines = line_no;
        let mut line = raw.strip_suffix('\n').unwrap_or(raw);
        line = line.strip_suffix('\r').unwrap_or(line);
        if line_no == 1 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.trim().is_empty() {
            return Ok(());
        }
        match &self.state {
            State::Azure(_) => {
                let record = self.azure_row(line_no, line)?;
                if let State::Azure(records) = &mut self.state {
                    records.push(record);
                }
            }
            State::Google(_) => self.google_row(line_no, line)?,
            State::Simple { header_seen, .. } => {
                if line.trim_start().starts_with('#') {
                    return Ok(());
                }
                if !*header_seen {
                    self.simple_header(line_no, line)?;
                    if let State::Simple { header_seen, .. } = &mut self.state {
                        *header_seen = true;
                    }
                } else {
                    let record = self.simple_row(line_no, line)?;
                    if let State::Simple { records, .. } = &mut self.state {
                        records.push(record);
                    }
                }
            }
        }
        Ok(())
    }

    /// Splits a line and checks it has exactly `names.len()` fields.
    fn fields<'l>(&self, line_no: usize, line: &'l str, names: &[&str]) -> Result<Vec<Cow<'l, str>>> {
        let fields = split_fields(line).map_err(|(index, message)| {
            self.error(line_no, names.get(index).copied(), format!("{message} (field {})", index + 1))
        })?;
        if fields.len() != names.len() {
            return Err(self.error(
                line_no,
                None,
                format!(
                    "expected {} comma-separated columns ({}), found {}",
                    names.len(),
                    names.join(", "),
                    fields.len()
                ),
            ));
        }
        Ok(fields)
    }

    fn azure_row(&self, line_no: usize, line: &str) -> Result<TraceRecord> {
        let f = self.fields(line_no, line, &AZURE_COLUMNS)?;
        let seconds = |i: usize| {
            non_negative(&f[i])
                .ok_or_else(|| self.bad(line_no, AZURE_COLUMNS[i], "a time in seconds, a finite number >= 0", &f[i]))
        };
        let created = seconds(AZ_CREATED)?;
        let deleted = seconds(AZ_DELETED)?;
        if deleted < created {
            let expected = format!("a deletion time >= vmcreated ({created} s)");
            return Err(self.bad(line_no, AZURE_COLUMNS[AZ_DELETED], &expected, &f[AZ_DELETED]));
        }
        let vcpu = self.azure_cores(line_no, &f[AZ_CORES])?;
        let memory_mib = self.azure_memory(line_no, &f[AZ_MEMORY])?;
        Ok(TraceRecord { arrival_s: created, lifetime_s: Some(deleted - created), vcpu, memory_mib })
    }

    fn azure_cores(&self, line_no: usize, field: &str) -> Result<u32> {
        let name = AZURE_COLUMNS[AZ_CORES];
        if let Some(bound) = field.strip_prefix('>') {
            return bound
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| self.bad(line_no, name, "a bucket `>N` with N a whole number of cores", field));
        }
        field
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| self.bad(line_no, name, "a whole number of cores >= 1", field))
    }

    fn azure_memory(&self, line_no: usize, field: &str) -> Result<u64> {
        let name = AZURE_COLUMNS[AZ_MEMORY];
        let (gb, expected) = match field.strip_prefix('>') {
            Some(bound) => (
                non_negative(bound.trim()).map(|n| n + 1.0),
                "a bucket `>N` with N a memory size in GB >= 0 (below 8e12)",
            ),
            None => (finite(field).filter(|&g| g > 0.0), "a memory size in GB > 0 (below 8e12)"),
        };
        gb.and_then(|gb| whole_ceil(gb * 1024.0))
            .filter(|mib| (1.0..=MAX_MIB).contains(mib))
            .map(|mib| mib as u64)
            .ok_or_else(|| self.bad(line_no, name, expected, field))
    }

    fn google_row(&mut self, line_no: usize, line: &str) -> Result<()> {
        let f = self.fields(line_no, line, &GOOGLE_COLUMNS)?;
        let time_us = f[G_TIME].parse::<u64>().ok().filter(|&t| t <= GOOGLE_AFTER_END_US).ok_or_else(|| {
            self.bad(
                line_no,
                GOOGLE_COLUMNS[G_TIME],
                "a time in microseconds, a whole number from 0 to 2^63-1",
                &f[G_TIME],
            )
        })?;
        if time_us == GOOGLE_AFTER_END_US {
            return Ok(());
        }
        let whole = |i: usize, expected: &str| {
            f[i].parse::<u64>().map_err(|_| self.bad(line_no, GOOGLE_COLUMNS[i], expected, &f[i]))
        };
        let job = whole(G_JOB, "a whole-number job ID")?;
        let task_index = whole(G_TASK, "a whole-number task index")?;
        let event = f[G_EVENT].parse::<u8>().ok().filter(|&e| e <= 8).ok_or_else(|| {
            self.bad(
                line_no,
                GOOGLE_COLUMNS[G_EVENT],
                "an event type from 0 to 8 (0 SUBMIT, 1 SCHEDULE, 2 EVICT, 3 FAIL, 4 FINISH, 5 KILL, 6 LOST, \
                 7 UPDATE_PENDING, 8 UPDATE_RUNNING)",
                &f[G_EVENT],
            )
        })?;
        let request = |i: usize| -> Result<Option<f64>> {
            if f[i].is_empty() {
                return Ok(None);
            }
            finite(&f[i]).filter(|r| (0.0..=1.0).contains(r)).map(Some).ok_or_else(|| {
                self.bad(line_no, GOOGLE_COLUMNS[i], "a normalised request from 0 to 1, or empty", &f[i])
            })
        };
        let cpu = request(G_CPU)?;
        let memory = request(G_MEMORY)?;

        let machine_vcpu = f64::from(self.opts.google_machine_vcpu);
        // u64 → f64 may round for sizes above 2^53 MiB; the result is still clamped to the u64 range.
        let machine_mib = self.opts.google_machine_memory_mib as f64;
        let path = self.path;
        let missing = |column: usize| {
            parse_error(
                path,
                line_no,
                Some(GOOGLE_COLUMNS[column]),
                "expected a normalised request from 0 to 1 on a SUBMIT row (empty only when an earlier row \
                 of the same task gave one), found \"\""
                    .to_owned(),
            )
        };

        let State::Google(google) = &mut self.state else {
            return Ok(());
        };
        let task = google.tasks.entry((job, task_index)).or_default();
        task.cpu = cpu.or(task.cpu);
        task.memory = memory.or(task.memory);
        match event {
            0 if task.open.is_none() => {
                let cpu = task.cpu.ok_or_else(|| missing(G_CPU))?;
                let memory = task.memory.ok_or_else(|| missing(G_MEMORY))?;
                // Both products lie in [0, machine size], so the casts cannot overflow.
                let vcpu = whole_ceil(cpu * machine_vcpu).unwrap_or(1.0).max(1.0) as u32;
                let memory_mib = whole_ceil(memory * machine_mib).unwrap_or(1.0).max(1.0) as u64;
                task.open = Some(google.records.len());
                google.records.push(GoogleRecord {
                    submit_us: time_us,
                    submit_line: line_no,
                    end_us: None,
                    vcpu,
                    memory_mib,
                });
            }
            2..=6 => {
                if let Some(index) = task.open.take()
                    && let Some(record) = google.records.get_mut(index)
                {
                    if time_us < record.submit_us {
                        let message = format!(
                            "expected a time >= the task's SUBMIT at {} µs (line {}), found {}",
                            record.submit_us,
                            record.submit_line,
                            Found(&f[G_TIME])
                        );
                        return Err(parse_error(path, line_no, Some(GOOGLE_COLUMNS[G_TIME]), message));
                    }
                    record.end_us = Some(time_us);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn simple_header(&self, line_no: usize, line: &str) -> Result<()> {
        let matches = split_fields(line)
            .map(|f| f.len() == SIMPLE_COLUMNS.len() && f.iter().zip(SIMPLE_COLUMNS).all(|(a, b)| a == b))
            .unwrap_or(false);
        if matches {
            Ok(())
        } else {
            Err(self.error(line_no, None, format!("expected the header line `{SIMPLE_HEADER}`, found {}", Found(line))))
        }
    }

    fn simple_row(&self, line_no: usize, line: &str) -> Result<TraceRecord> {
        let f = self.fields(line_no, line, &SIMPLE_COLUMNS)?;
        let arrival_s = non_negative(&f[0])
            .ok_or_else(|| self.bad(line_no, SIMPLE_COLUMNS[0], "a time in seconds, a finite number >= 0", &f[0]))?;
        let lifetime_s = if f[1].is_empty() {
            None
        } else {
            Some(non_negative(&f[1]).ok_or_else(|| {
                self.bad(
                    line_no,
                    SIMPLE_COLUMNS[1],
                    "a duration in seconds, a finite number >= 0, or empty to run until the end",
                    &f[1],
                )
            })?)
        };
        let vcpu = f[2].parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
            self.bad(line_no, SIMPLE_COLUMNS[2], "a whole number of vCPUs from 1 to 4294967295", &f[2])
        })?;
        let memory_mib = f[3].parse::<u64>().ok().filter(|&n| n >= 1).ok_or_else(|| {
            self.bad(line_no, SIMPLE_COLUMNS[3], "a whole number of MiB from 1 to 18446744073709551615", &f[3])
        })?;
        Ok(TraceRecord { arrival_s, lifetime_s, vcpu, memory_mib })
    }

    fn finish(self) -> Result<Vec<TraceRecord>> {
        let mut records = match self.state {
            State::Azure(records) => records,
            State::Simple { header_seen: false, .. } => {
                return Err(TraceError::Parse {
                    path: self.path.to_path_buf(),
                    line: self.lines.max(1),
                    column: None,
                    message: format!("expected the header line `{SIMPLE_HEADER}`, found the end of the file"),
                });
            }
            State::Simple { records, .. } => records,
            State::Google(google) => {
                // Shift in whole microseconds, before converting, so times stay exact.
                let first = google.records.iter().map(|r| r.submit_us).min().unwrap_or(0);
                google
                    .records
                    .into_iter()
                    .map(|r| TraceRecord {
                        arrival_s: micros_to_s(r.submit_us - first),
                        lifetime_s: r.end_us.map(|end| micros_to_s(end - r.submit_us)),
                        vcpu: r.vcpu,
                        memory_mib: r.memory_mib,
                    })
                    .collect()
            }
        };
        records.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
        if let Some(limit) = self.opts.limit {
            records.truncate(limit);
        }
        if let Some(first) = records.first().map(|r| r.arrival_s) {
            for r in &mut records {
                r.arrival_s -= first;
            }
        }
        Ok(records)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn parse_error(path: &Path, line: usize, column: Option<&str>, message: String) -> TraceError {
    TraceError::Parse { path: path.to_path_buf(), line, column: column.map(str::to_owned), message }
}

/// Quotes a bad field back, cut to [`FOUND_MAX_CHARS`] characters.
struct Found<'a>(&'a str);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(FOUND_MAX_CHARS) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Splits a line at commas, trimming spaces and removing double quotes around a field.
/// On an unterminated quote or text after a closing quote, gives the field index and a message.
fn split_fields(line: &str) -> Result<Vec<Cow<'_, str>>, (usize, String)> {
    if !line.contains('"') {
        return Ok(line.split(',').map(|f| Cow::Borrowed(f.trim())).collect());
    }
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let index = fields.len();
        let start = rest.trim_start();
        if let Some(quoted) = start.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    None => return Err((index, "unterminated quoted field".to_owned())),
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break &quoted[i + 1..];
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            };
            let after = after.trim_start();
            fields.push(Cow::Owned(value.trim().to_owned()));
            if after.is_empty() {
                return Ok(fields);
            }
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None => return Err((index, "unexpected text after a closing quote".to_owned())),
            }
        } else {
            match rest.split_once(',') {
                Some((field, next)) => {
                    fields.push(Cow::Borrowed(field.trim()));
                    rest = next;
                }
                None => {
                    fields.push(Cow::Borrowed(rest.trim()));
                    return Ok(fields);
                }
            }
        }
    }
}

/// A finite number (Rust also parses `inf` and `NaN`, which are refused here).
fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A finite number >= 0 (`-0` reads as 0).
fn non_negative(s: &str) -> Option<f64> {
    finite(s).filter(|&x| x >= 0.0).map(|x| x + 0.0)
}

/// Rounds up to a whole number, except that a value within floating-point noise of a whole number
/// (such as 0.1 × 30 = 3.0000000000000004) is taken as that number. `None` if not finite.
fn whole_ceil(x: f64) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let nearest = x.round();
    if (x - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) { Some(nearest) } else { Some(x.ceil()) }
}

fn micros_to_s(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("scenarios/traces/x.csv")
    }

    fn run(text: &str, format: TraceFormat) -> Result<Vec<TraceRecord>> {
        parse(text, path(), format, &TraceOptions::default())
    }

    fn rec(arrival_s: f64, lifetime_s: Option<f64>, vcpu: u32, memory_mib: u64) -> TraceRecord {
        TraceRecord { arrival_s, lifetime_s, vcpu, memory_mib }
    }

    /// The error's line, column and Display text.
    fn err(text: &str, format: TraceFormat) -> (usize, Option<String>, String) {
        match run(text, format) {
            Err(e @ TraceError::Parse { .. }) => {
                let shown = e.to_string();
                let TraceError::Parse { line, column, .. } = e else { unreachable!() };
                (line, column, shown)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn sample(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/traces").join(name)
    }

    // --- Azure ---------------------------------------------------------------------------------

    #[test]
    fn azure_exact_records() {
        let text = "\
a,s,d,600,4200,99.1,10.2,50.3,Interactive,2,4
b,s,d,300,300,1,1,1,Delay-insensitive,1,1.75
c,s,d,900,87300,1,1,1,Unknown,24,0.75
";
        let got = run(text, TraceFormat::AzureVmtable).expect("parses");
        assert_eq!(
            got,
            vec![
                // sorted by vmcreated, shifted by 300 s
                rec(0.0, Some(0.0), 1, 1792),      // 1.75 GB × 1024
                rec(300.0, Some(3600.0), 2, 4096), // 4200 - 600
                rec(600.0, Some(86400.0), 24, 768),
            ]
        );
    }

    #[test]
    fn azure_v2_buckets() {
        let text = "a,s,d,0,60,1,1,1,Unknown,>24,>64\nb,s,d,0,60,1,1,1,Unknown,8,32\n";
        let got = run(text, TraceFormat::AzureVmtable).expect("parses");
        assert_eq!(got, vec![rec(0.0, Some(60.0), 25, 65 * 1024), rec(0.0, Some(60.0), 8, 32 * 1024)]);
    }

    #[test]
    fn azure_display_matches_the_documented_shape() {
        let mut text = "a,s,d,0,60,1,1,1,Unknown,2,4\n".repeat(16);
        text.push_str("a,s,d,0,60,1,1,1,Unknown,abc,4\n");
        let (line, column, shown) = err(&text, TraceFormat::AzureVmtable);
        assert_eq!((line, column.as_deref()), (17, Some("vmcorecount")));
        assert_eq!(
            shown,
            "scenarios/traces/x.csv:17: column `vmcorecount`: expected a whole number of cores >= 1, found \"abc\""
        );
    }

    #[test]
    fn azure_errors() {
        let az = TraceFormat::AzureVmtable;
        let (line, column, shown) = err("a,s,d,100,50,1,1,1,Unknown,2,4", az);
        assert_eq!((line, column.as_deref()), (1, Some("vmdeleted")));
        assert!(shown.contains("expected a deletion time >= vmcreated (100 s), found \"50\""), "{shown}");

        let (_, column, _) = err("a,s,d,-1,50,1,1,1,Unknown,2,4", az);
        assert_eq!(column.as_deref(), Some("vmcreated"));
        let (_, column, _) = err("a,s,d,1,inf,1,1,1,Unknown,2,4", az);
        assert_eq!(column.as_deref(), Some("vmdeleted"));
        let (_, column, _) = err("a,s,d,1,2,1,1,1,Unknown,0,4", az);
        assert_eq!(column.as_deref(), Some("vmcorecount"));
        let (_, column, shown) = err("a,s,d,1,2,1,1,1,Unknown,>x,4", az);
        assert_eq!(column.as_deref(), Some("vmcorecount"));
        assert!(shown.contains("a bucket `>N`"), "{shown}");
        let (_, column, _) = err("a,s,d,1,2,1,1,1,Unknown,2,0", az);
        assert_eq!(column.as_deref(), Some("vmmemory"));
        let (_, column, _) = err("a,s,d,1,2,1,1,1,Unknown,2,NaN", az);
        assert_eq!(column.as_deref(), Some("vmmemory"));
        let (_, column, _) = err("a,s,d,1,2,1,1,1,Unknown,2,1e300", az);
        assert_eq!(column.as_deref(), Some("vmmemory"));

        let (line, column, shown) = err("\n\na,s,d,1,2,1,1,1,Unknown,2", az);
        assert_eq!((line, column), (3, None));
        assert!(shown.contains("expected 11 comma-separated columns (vmid, "), "{shown}");
        assert!(shown.ends_with("found 10"), "{shown}");
        let (_, column, _) = err("a,s,d,1,2,1,1,1,Unknown,2,4,extra", az);
        assert_eq!(column, None);
    }

    #[test]
    fn bom_crlf_blank_lines_and_quotes() {
        let text = "\u{feff}a,s,d,0,60,1,1,1,Unknown,\"2\",4\r\n\r\n  \r\n\"x,y\",s,d,10,20,1,1,1,\"Delay-insensitive\",4,\" 8 \"\r\n";
        let got = run(text, TraceFormat::AzureVmtable).expect("parses");
        assert_eq!(got, vec![rec(0.0, Some(60.0), 2, 4096), rec(10.0, Some(10.0), 4, 8192)]);

        let (line, column, shown) = err("a,s,d,0,60,1,1,1,Unknown,\"2,4", TraceFormat::AzureVmtable);
        assert_eq!((line, column.as_deref()), (1, Some("vmcorecount")));
        assert!(shown.contains("unterminated quoted field (field 10)"), "{shown}");
        let (_, column, _) = err("a,s,d,0,60,1,1,1,Unknown,\"2\"x,4", TraceFormat::AzureVmtable);
        assert_eq!(column.as_deref(), Some("vmcorecount"));
    }

    // --- Google --------------------------------------------------------------------------------

    /// A task_events row with the columns we read and plausible filler elsewhere.
    fn g(time: &str, job: u64, task: u64, event: u8, cpu: &str, mem: &str) -> String {
        format!("{time},,{job},{task},,{event},user,2,9,{cpu},{mem},0.0001,0\n")
    }

    #[test]
    fn google_exact_records() {
        let opts = TraceOptions { google_machine_vcpu: 32, google_machine_memory_mib: 1000, limit: None };
        let text = [
            g("0", 1, 0, 0, "0.125", "0.5"),           // before the trace: time 0
            g("0", 1, 0, 1, "", ""),                   // SCHEDULE, inherits
            g("600000000", 2, 0, 0, "0.03", "0.0011"), // 0.96 → 1 vCPU, 1.1 → 2 MiB
            g("600500000", 2, 0, 1, "", ""),
            g("700000000", 2, 0, 2, "", ""),           // EVICT: record 2 lives 100 s
            g("700000001", 2, 0, 0, "", ""),           // re-submission inherits 0.03 / 0.0011
            g("800000000", 1, 0, 4, "", ""),           // FINISH task (1,0) at 800 s
            g("800000000", 1, 0, 5, "", ""),           // KILL with no open record: ignored
            g("9223372036854775807", 2, 0, 4, "", ""), // after the end: skipped
            g("900000000", 3, 7, 0, "0", "0"),         // zero requests → 1 vCPU, 1 MiB
        ]
        .concat();
        let got = parse(&text, path(), TraceFormat::GoogleTaskEvents, &opts).expect("parses");
        assert_eq!(
            got,
            vec![
                rec(0.0, Some(800.0), 4, 500),
                rec(600.0, Some(100.0), 1, 2),
                rec(700.000001, None, 1, 2),
                rec(900.0, None, 1, 1),
            ]
        );
    }

    #[test]
    fn google_shift_when_first_submit_is_late() {
        let text = [g("600000000", 5, 1, 0, "0.5", "0.25"), g("601500000", 5, 1, 3, "", "")].concat();
        let got = run(&text, TraceFormat::GoogleTaskEvents).expect("parses");
        assert_eq!(got, vec![rec(0.0, Some(1.5), 16, 32768)]);
    }

    #[test]
    fn google_errors() {
        let gt = TraceFormat::GoogleTaskEvents;
        let (line, column, shown) = err(&g("5", 1, 0, 0, "", "0.5"), gt);
        assert_eq!((line, column.as_deref()), (1, Some("CPU request")));
        assert!(shown.contains("SUBMIT row"), "{shown}");
        let (_, column, _) = err(&g("5", 1, 0, 0, "0.5", ""), gt);
        assert_eq!(column.as_deref(), Some("memory request"));
        let (_, column, _) = err(&g("5", 1, 0, 0, "1.5", "0.5"), gt);
        assert_eq!(column.as_deref(), Some("CPU request"));
        let (_, column, _) = err(&g("-5", 1, 0, 0, "0.5", "0.5"), gt);
        assert_eq!(column.as_deref(), Some("timestamp"));
        let (_, column, _) = err(&g("9223372036854775808", 1, 0, 0, "0.5", "0.5"), gt);
        assert_eq!(column.as_deref(), Some("timestamp"));
        let (_, column, shown) = err(&g("5", 1, 0, 9, "0.5", "0.5"), gt);
        assert_eq!(column.as_deref(), Some("event type"));
        assert!(shown.contains("0 SUBMIT"), "{shown}");
        let (_, column, _) = err("5,,x,0,,0,u,0,0,0.1,0.1,0,0\n", gt);
        assert_eq!(column.as_deref(), Some("job ID"));
        let (_, column, _) = err("5,,1,-1,,0,u,0,0,0.1,0.1,0,0\n", gt);
        assert_eq!(column.as_deref(), Some("task index"));
        let (line, column, shown) = err(&[g("50", 1, 0, 0, "0.5", "0.5"), g("40", 1, 0, 4, "", "")].concat(), gt);
        assert_eq!((line, column.as_deref()), (2, Some("timestamp")));
        assert!(shown.contains("SUBMIT at 50 µs (line 1)"), "{shown}");
        let (_, column, shown) = err("5,,1,0,,0,u,0,0,0.1,0.1,0\n", gt);
        assert_eq!(column, None);
        assert!(shown.contains("expected 13 comma-separated columns"), "{shown}");
    }

    // --- Simple --------------------------------------------------------------------------------

    #[test]
    fn simple_exact_records() {
        let text = "# comment\n\narrival_s,lifetime_s,vcpu,memory_mib\n  # indented comment\n20,3600,2,4096\n12.5,,8,32768\n20,1.5,1,512\n";
        let got = run(text, TraceFormat::Simple).expect("parses");
        assert_eq!(
            got,
            vec![
                rec(0.0, None, 8, 32768),
                rec(7.5, Some(3600.0), 2, 4096), // ties keep file order
                rec(7.5, Some(1.5), 1, 512),
            ]
        );
        assert_eq!(run("arrival_s,lifetime_s,vcpu,memory_mib", TraceFormat::Simple).expect("parses"), vec![]);
    }

    #[test]
    fn simple_errors() {
        let s = TraceFormat::Simple;
        let (line, column, shown) = err("", s);
        assert_eq!((line, column), (1, None));
        assert!(shown.contains("found the end of the file"), "{shown}");
        let (line, _, shown) = err("# only\n\n", s);
        assert_eq!(line, 2);
        assert!(shown.contains("expected the header line `arrival_s,lifetime_s,vcpu,memory_mib`"), "{shown}");
        let (line, column, shown) = err("arrival,lifetime_s,vcpu,memory_mib\n", s);
        assert_eq!((line, column), (1, None));
        assert!(shown.ends_with("found \"arrival,lifetime_s,vcpu,memory_mib\""), "{shown}");

        let h = "arrival_s,lifetime_s,vcpu,memory_mib\n";
        for (row, col) in [
            ("-1,1,1,1", "arrival_s"),
            ("NaN,1,1,1", "arrival_s"),
            ("1,-1,1,1", "lifetime_s"),
            ("1,inf,1,1", "lifetime_s"),
            ("1,1,0,1", "vcpu"),
            ("1,1,1.5,1", "vcpu"),
            ("1,1,4294967296,1", "vcpu"),
            ("1,1,1,0", "memory_mib"),
            ("1,1,1,-4", "memory_mib"),
        ] {
            let (line, column, _) = err(&format!("{h}{row}\n"), s);
            assert_eq!((line, column.as_deref()), (2, Some(col)), "{row}");
        }
        let (line, column, shown) = err(&format!("{h}1,1,1\n"), s);
        assert_eq!((line, column), (2, None));
        assert!(shown.ends_with("found 3"), "{shown}");
    }

    #[test]
    fn limit_keeps_first_arrivals() {
        let text = "arrival_s,lifetime_s,vcpu,memory_mib\n30,1,1,1\n10,1,2,1\n20,1,3,1\n";
        let opts = TraceOptions { limit: Some(2), ..TraceOptions::default() };
        let got = parse(text, path(), TraceFormat::Simple, &opts).expect("parses");
        assert_eq!(got, vec![rec(0.0, Some(1.0), 2, 1), rec(10.0, Some(1.0), 3, 1)]);
        let opts = TraceOptions { limit: Some(0), ..TraceOptions::default() };
        assert_eq!(parse(text, path(), TraceFormat::Simple, &opts).expect("parses"), vec![]);
    }

    #[test]
    fn long_found_values_are_cut() {
        let long = "9".repeat(100);
        let (_, _, shown) = err(&format!("arrival_s,lifetime_s,vcpu,memory_mib\n1,1,{long},1\n"), TraceFormat::Simple);
        assert!(shown.ends_with(&format!("found \"{}\"…", "9".repeat(40))), "{shown}");
    }

    #[test]
    fn format_names_in_serde() {
        let json = |f: TraceFormat| serde_json::to_string(&f).expect("serialises");
        assert_eq!(json(TraceFormat::AzureVmtable), "\"azure-vmtable\"");
        assert_eq!(json(TraceFormat::GoogleTaskEvents), "\"google-task-events\"");
        assert_eq!(json(TraceFormat::Simple), "\"simple\"");
    }

    // --- Files ---------------------------------------------------------------------------------

    #[test]
    fn load_reports_missing_files_and_bad_utf8() {
        let missing = Path::new("/nonexistent/trace.csv");
        let e = load(missing, TraceFormat::Simple, &TraceOptions::default()).expect_err("must fail");
        assert!(matches!(e, TraceError::Io { .. }));
        assert!(e.to_string().starts_with("/nonexistent/trace.csv: cannot read the trace: "), "{e}");

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("bad.csv");
        std::fs::write(&file, b"arrival_s,lifetime_s,vcpu,memory_mib\r\n1,2,3,4\r\n5,\xff,1,1\r\n").expect("writes");
        let e = load(&file, TraceFormat::Simple, &TraceOptions::default()).expect_err("must fail");
        assert!(matches!(e, TraceError::Parse { line: 3, column: None, .. }), "{e}");
    }

    #[test]
    fn load_and_parse_agree() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("t.csv");
        let text = "\u{feff}arrival_s,lifetime_s,vcpu,memory_mib\r\n5,2,3,4\r\n1,,1,1";
        std::fs::write(&file, text).expect("writes");
        let opts = TraceOptions::default();
        let loaded = load(&file, TraceFormat::Simple, &opts).expect("loads");
        assert_eq!(loaded, parse(text, &file, TraceFormat::Simple, &opts).expect("parses"));
        assert_eq!(loaded, vec![rec(0.0, None, 1, 1), rec(4.0, Some(2.0), 3, 4)]);
    }

    fn check_sample(name: &str, format: TraceFormat, at_least: usize) -> Vec<TraceRecord> {
        let records = load(&sample(name), format, &TraceOptions::default()).expect("loads");
        assert!(records.len() >= at_least, "{name}: {} records", records.len());
        assert_eq!(records[0].arrival_s, 0.0);
        assert!(records.windows(2).all(|w| w[0].arrival_s <= w[1].arrival_s));
        assert!(records.iter().all(|r| r.vcpu >= 1 && r.memory_mib >= 1));
        assert!(records.iter().all(|r| r.lifetime_s.is_none_or(|l| l >= 0.0)));
        records
    }

    #[test]
    fn samples_parse() {
        let azure = check_sample("azure-vmtable-sample.csv", TraceFormat::AzureVmtable, 250);
        assert!(azure.iter().all(|r| r.lifetime_s.is_some()));
        assert!(azure.iter().all(|r| r.arrival_s < 86_400.0));
        let google = check_sample("google-task-events-sample.csv", TraceFormat::GoogleTaskEvents, 250);
        assert!(google.iter().any(|r| r.lifetime_s.is_none()));
        let simple = check_sample("simple-sample.csv", TraceFormat::Simple, 400);
        assert!(simple.iter().any(|r| r.lifetime_s.is_none()));
        assert!(simple.iter().all(|r| r.arrival_s <= 6.0 * 3600.0));
    }

    // --- No panics -----------------------------------------------------------------------------

    const NASTY: [&str; 28] = [
        "",
        " ",
        "abc",
        "-1",
        "-0",
        "0",
        "1.5",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "infinity",
        "1e999",
        "-1e999",
        "1e-999",
        "99999999999999999999999999",
        "18446744073709551616",
        "9223372036854775807",
        "4294967296",
        ">",
        ">x",
        ">4294967295",
        ">1e308",
        "\"",
        "\"5\"",
        "\"\"\"",
        "é∞\u{feff}",
        "\r",
    ];

    fn good_lines() -> Vec<(TraceFormat, String)> {
        vec![
            (TraceFormat::AzureVmtable, "a,s,d,600,4200,99.1,10.2,50.3,Interactive,2,1.75".to_owned()),
            (TraceFormat::GoogleTaskEvents, g("600000000", 1, 0, 0, "0.125", "0.5").trim_end().to_owned()),
            (TraceFormat::GoogleTaskEvents, g("700000000", 1, 0, 4, "", "").trim_end().to_owned()),
            (TraceFormat::Simple, "12.5,,8,32768".to_owned()),
        ]
    }

    fn framed(format: TraceFormat, body: &str) -> String {
        match format {
            TraceFormat::Simple => format!("arrival_s,lifetime_s,vcpu,memory_mib\n{body}\n"),
            TraceFormat::GoogleTaskEvents => format!("{}{body}\n", g("1", 1, 0, 0, "0.5", "0.5")),
            TraceFormat::AzureVmtable => format!("{body}\n"),
        }
    }

    #[test]
    fn mangled_inputs_never_panic() {
        let formats = [TraceFormat::AzureVmtable, TraceFormat::GoogleTaskEvents, TraceFormat::Simple];
        let opts = [
            TraceOptions::default(),
            TraceOptions { google_machine_vcpu: 0, google_machine_memory_mib: 0, limit: Some(0) },
            TraceOptions { google_machine_vcpu: u32::MAX, google_machine_memory_mib: u64::MAX, limit: Some(1) },
        ];
        let mut cases = 0;
        for (format, line) in good_lines() {
            let mut bodies = Vec::new();
            // every truncation
            for (cut, _) in line.char_indices() {
                bodies.push(line[..cut].to_owned());
            }
            bodies.push(format!("{line},extra"));
            bodies.push(format!("{line},"));
            bodies.push(format!(",{line}"));
            bodies.push(line.replace(',', ";"));
            // every field replaced by every nasty value
            let fields: Vec<&str> = line.split(',').collect();
            for i in 0..fields.len() {
                for nasty in NASTY {
                    let mut f = fields.clone();
                    f[i] = nasty;
                    bodies.push(f.join(","));
                }
            }
            for body in &bodies {
                for target in formats {
                    for o in &opts {
                        let text = framed(format, body);
                        let _ = parse(&text, path(), target, o).map_err(|e| e.to_string());
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 1000, "{cases}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}", which in 0usize..3, limit in proptest::option::of(0usize..4)) {
            let format = [TraceFormat::AzureVmtable, TraceFormat::GoogleTaskEvents, TraceFormat::Simple][which];
            let opts = TraceOptions { limit, ..TraceOptions::default() };
            let _ = parse(&text, path(), format, &opts).map_err(|e| e.to_string());
        }

        #[test]
        fn csv_like_text_never_panics(
            rows in proptest::collection::vec(
                proptest::collection::vec("[0-9]{0,25}|-?[0-9]*\\.?[0-9]*(e[+-]?[0-9]{1,4})?|>[0-9]{0,12}|\"[0-9a-z,]{0,4}\"?|NaN|inf|[a-z ]{0,3}", 0..15),
                0..6,
            ),
            which in 0usize..3,
        ) {
            let format = [TraceFormat::AzureVmtable, TraceFormat::GoogleTaskEvents, TraceFormat::Simple][which];
            let body: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
            let text = framed(format, &body.join("\r\n"));
            let result = parse(&text, path(), format, &TraceOptions::default());
            if let Ok(records) = result {
                proptest::prop_assert!(records.iter().all(|r| r.vcpu >= 1 && r.memory_mib >= 1 && r.arrival_s >= 0.0));
                proptest::prop_assert!(records.iter().all(|r| r.arrival_s.is_finite() && r.lifetime_s.is_none_or(|l| l.is_finite() && l >= 0.0)));
            }
        }
    }
}
