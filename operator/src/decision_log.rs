//! The decision log (`operator run --decision-log FILE`): every event the operator feeds an
//! engine and the actions the engine answered, one JSON object a line, self-contained enough for
//! `sim replay FILE` to rebuild each engine and check that it decides the same, action for action.
//!
//! Three kinds of line, told apart by `kind`:
//!
//! - `header`: `{"kind":"header","format":"novacron-decision-log","version":1,"catalog":…,
//!   "cost":…,"engine":…}`, the engine's inputs besides its events: the catalog (regions, zones,
//!   instance types, offers, latency), the cost model and the engine's settings (policy, retries,
//!   back-off), as the engine's own types serialize them. Written before the first engine line of
//!   a process, and again whenever an engine starts with other inputs.
//! - `engine`: `{"kind":"engine","deployment":UID,"object":"ns/name","at":MS}`: a fresh engine
//!   starts for this deployment from the latest header (the first reconcile of an object, an
//!   operator restart, a new term as leader).
//! - `decision`: `{"kind":"decision","deployment":UID,"at":MS,"event":…,"actions":[…]}`: the event
//!   fed to that deployment's engine at `at` (milliseconds since the Unix epoch) and the actions
//!   it produced, in order.
//!
//! A file may hold several processes' logs one after the other (it is appended to) and the lines
//! of several deployments interleaved; each deployment's lines are in the order its engine saw
//! them. Lines are written under one lock, so a header always precedes the engine lines that use
//! it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use engine::{Catalog, CostModel, EngineConfig, SimTime};
use serde_json::{Value, json};

use crate::tracker::Record;

/// The `format` of the header line.
pub const FORMAT: &str = "novacron-decision-log";
/// The version of the format this operator writes.
pub const VERSION: u32 = 1;

/// The header line of an engine's inputs.
pub fn header(catalog: &Catalog, cost: &CostModel, config: &EngineConfig) -> Value {
    json!({ "kind": "header", "format": FORMAT, "version": VERSION, "catalog": catalog, "cost": cost, "engine": config })
}

/// The line that starts a fresh engine for a deployment.
pub fn engine_started(deployment: &str, object: &str, at: SimTime) -> Value {
    json!({ "kind": "engine", "deployment": deployment, "object": object, "at": at })
}

/// The line of one event and its actions.
pub fn decision(deployment: &str, r: &Record) -> Value {
    json!({ "kind": "decision", "deployment": deployment, "at": r.at, "event": r.event, "actions": r.actions })
}

/// What one engine wrote since the last call: its start (with its inputs) if it is new, and its
/// records.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The deployment (the object's UID).
    pub deployment: &'a str,
    /// `namespace/name`, for people.
    pub object: &'a str,
    /// Set when the engine is new: its inputs, as [`header`] gives them, and its start time.
    pub started: Option<(Value, SimTime)>,
    /// Events and actions.
    pub records: &'a [Record],
}

/// An append-only decision log file.
#[derive(Debug)]
pub struct DecisionLog {
    path: PathBuf,
    /// The header last written by this process, under the lock every write takes.
    last_header: Mutex<Option<Value>>,
}

impl DecisionLog {
    /// A log appending to `path` (created when first written).
    pub fn new(path: PathBuf) -> Self {
        DecisionLog { path, last_header: Mutex::new(None) }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry: a header if the engine is new and its inputs differ from the last
    /// header written, its engine line, then its decisions.
    pub fn append(&self, e: &Entry<'_>) -> std::io::Result<()> {
        let mut last = self.last_header.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::new();
        let mut header_written = None;
        if let Some((inputs, at)) = &e.started {
            if last.as_ref() != Some(inputs) {
                text.push_str(&inputs.to_string());
                text.push('\n');
                header_written = Some(inputs.clone());
            }
            text.push_str(&engine_started(e.deployment, e.object, *at).to_string());
            text.push('\n');
        }
        for r in e.records {
            text.push_str(&decision(e.deployment, r).to_string());
            text.push('\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(text.as_bytes())?;
        if let Some(h) = header_written {
            *last = Some(h);
        }
        Ok(())
    }
}
