//! `sim replay DECISIONS.jsonl`: feeds the events an operator recorded to fresh engines and
//! checks that every engine decides exactly what the operator's did, action for action.
//!
//! The operator's `--decision-log` writes one JSON object a line (format
//! `novacron-decision-log`, version 1): a `header` with the engine's inputs (catalog, cost model,
//! settings), an `engine` line each time a deployment's engine starts afresh, and a `decision` line
//! per event with the actions it produced. Replay builds an engine from the latest header at each
//! `engine` line, feeds each `decision`'s event at its time and compares the actions, as JSON, with
//! the recorded ones. A deployment whose engine decided otherwise is not replayed further (its
//! state has diverged); the others go on.
//!
//! The file is parsed strictly: unknown keys and kinds are refused, the catalog is checked as the
//! engine checks a scenario's, ids in events must exist in the catalog and a deployment's time may
//! not go back. A problem names the file, the line and what is wrong ([`ReplayError`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::{Catalog, CostModel, Engine, EngineConfig, Event, SimTime};
use serde::Deserialize;
use serde_json::Value;

/// The `format` a decision log's header names.
pub const FORMAT: &str = "novacron-decision-log";
/// The newest version of the format this replay reads.
pub const VERSION: u32 = 1;

/// Why a decision log cannot be replayed (bad input: `sim replay` exits with status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file cannot be read.
    #[error("{}: cannot read: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A line is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Result with [`ReplayError`].
pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// One line as written, before it is checked.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawLine {
    Header {
        format: String,
        version: u32,
        catalog: Box<Catalog>,
        cost: CostModel,
        engine: EngineConfig,
    },
    Engine {
        deployment: String,
        #[serde(default)]
        object: Option<String>,
        at: SimTime,
    },
    Decision {
        deployment: String,
        at: SimTime,
        event: Event,
        actions: Vec<Value>,
    },
}

/// A decision the replayed engine made otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// 1-based line of the decision.
    pub line: usize,
    /// The deployment (the object's UID).
    pub deployment: String,
    /// `namespace/name`, when the log says.
    pub object: Option<String>,
    /// When.
    pub at: SimTime,
    /// The event's kind (`timer-fired`, ...).
    pub event: String,
    /// What the log says the engine did.
    pub recorded: Vec<Value>,
    /// What the fresh engine did.
    pub replayed: Vec<Value>,
}

impl Mismatch {
    /// The first action that differs (0-based), with the two versions (`None` where a list is
    /// shorter).
    pub fn first_difference(&self) -> (usize, Option<&Value>, Option<&Value>) {
        let i = (0..self.recorded.len().max(self.replayed.len()))
            .find(|&i| self.recorded.get(i) != self.replayed.get(i))
            .unwrap_or(0);
        (i, self.recorded.get(i), self.replayed.get(i))
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (i, rec, rep) = self.first_difference();
        let show = |v: Option<&Value>| v.map_or_else(|| "nothing".to_owned(), Value::to_string);
        let object = self.object.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
        write!(
            f,
            "deployment {}{object} at {} ms, event {}: action {} differs ({} recorded, {} replayed)\n  recorded: {}\n  replayed: {}",
            self.deployment,
            self.at.as_millis(),
            self.event,
            i + 1,
            self.recorded.len(),
            self.replayed.len(),
            show(rec),
            show(rep)
        )
    }
}

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Non-empty lines read.
    pub lines: usize,
    /// Header lines.
    pub headers: usize,
    /// Engines started (`engine` lines).
    pub engines: usize,
    /// Distinct deployments.
    pub deployments: usize,
    /// Decisions replayed and compared.
    pub decisions: usize,
    /// Actions recorded in the decisions compared.
    pub actions: usize,
    /// Decisions not replayed because their deployment had diverged before.
    pub skipped: usize,
    /// The decisions made otherwise (the first of each diverged engine).
    pub mismatches: Vec<Mismatch>,
}

impl Summary {
    /// Every decision replayed matched.
    pub fn all_match(&self) -> bool {
        self.mismatches.is_empty()
    }
}

struct Inputs {
    catalog: Catalog,
    cost: CostModel,
    config: EngineConfig,
}

struct Replayed {
    engine: Engine,
    object: Option<String>,
    last: SimTime,
    diverged: bool,
}

/// Replays the decision log at `path`.
pub fn replay_file(path: &Path) -> Result<Summary> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReplayError::Read { path: path.to_owned(), message: e.to_string() })?;
    replay_str(path, &text)
}

/// Replays a decision log's text; `path` names it in errors.
pub fn replay_str(path: &Path, text: &str) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut inputs: Option<Inputs> = None;
    let mut engines: BTreeMap<String, Replayed> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |message: String| ReplayError::Line { path: path.to_owned(), line, message };
        if raw.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let parsed: RawLine = serde_json::from_str(raw).map_err(|e| bad(json_message(&e)))?;
        match parsed {
            RawLine::Header { format, version, catalog, cost, engine } => {
                if format != FORMAT {
                    return Err(bad(format!("format is {format:?}; a decision log's is {FORMAT:?}")));
                }
                if version == 0 || version > VERSION {
                    return Err(bad(format!("version {version}: this sim reads versions 1 to {VERSION}")));
                }
                let catalog = Catalog::new(
                    catalog.regions,
                    catalog.zones,
                    catalog.instance_types,
                    catalog.offers,
                    catalog.pools,
                    catalog.latency_ms,
                )
                .map_err(|e| bad(format!("catalog: {e}")))?;
                // The engine checks its settings: fail here, not at the first engine line.
                Engine::new(catalog.clone(), cost.clone(), engine.clone())
                    .map_err(|e| bad(format!("the engine refuses the header's settings: {e}")))?;
                inputs = Some(Inputs { catalog, cost, config: engine });
                summary.headers += 1;
            }
            RawLine::Engine { deployment, object, at } => {
                let Some(inp) = &inputs else {
                    return Err(bad("an engine line before any header line".into()));
                };
                let engine = Engine::new(inp.catalog.clone(), inp.cost.clone(), inp.config.clone())
                    .map_err(|e| bad(format!("the engine refuses the header's settings: {e}")))?;
                engines.insert(deployment, Replayed { engine, object, last: at, diverged: false });
                summary.engines += 1;
            }
            RawLine::Decision { deployment, at, event, actions } => {
                let Some(d) = engines.get_mut(&deployment) else {
                    return Err(bad(format!(
                        "deployment {deployment:?} has no engine line before this decision \
                         (each engine starts with {{\"kind\":\"engine\",\"deployment\":…}})"
                    )));
                };
                if at < d.last {
                    return Err(bad(format!(
                        "time goes back for deployment {deployment:?}: {} ms after {} ms",
                        at.as_millis(),
                        d.last.as_millis()
                    )));
                }
                d.last = at;
                if d.diverged {
                    summary.skipped += 1;
                    continue;
                }
                if let Some(inp) = &inputs {
                    check_ids(&event, &inp.catalog).map_err(bad)?;
                }
                let kind = event_kind(&event);
                let mut out = Vec::new();
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    d.engine.handle(at, event, &mut out);
                }));
                if handled.is_err() {
                    return Err(bad(format!("the engine cannot take this {kind} event (it panicked)")));
                }
                let replayed: Vec<Value> = out.iter().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)).collect();
                summary.decisions += 1;
                summary.actions += actions.len();
                if replayed != actions {
                    d.diverged = true;
                    summary.mismatches.push(Mismatch {
                        line,
                        deployment: deployment.clone(),
                        object: d.object.clone(),
                        at,
                        event: kind,
                        recorded: actions,
                        replayed,
                    });
                }
            }
        }
    }
    if summary.headers == 0 {
        return Err(ReplayError::Line {
            path: path.to_owned(),
            line: summary.lines.max(1),
            message: "no header line: not a decision log (written by `operator run --decision-log FILE`)".into(),
        });
    }
    summary.deployments = engines.len();
    Ok(summary)
}

/// serde_json's message without its "at line 1 column N" (the line is ours), with the column.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let base = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
    if e.column() == 0 { base.to_owned() } else { format!("{base} (column {})", e.column()) }
}

/// The event's tag (`timer-fired`, ...).
fn event_kind(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Ids an event names must exist in the catalog (the engine indexes by them).
fn check_ids(e: &Event, c: &Catalog) -> std::result::Result<(), String> {
    let region = |r: engine::RegionId| {
        if r.idx() < c.regions.len() {
            Ok(())
        } else {
            Err(format!("event names region #{} but the catalog has {} regions", r.0, c.regions.len()))
        }
    };
    match e {
        Event::RegionHealth { region: r, .. } => region(*r),
        Event::ManualFailover { to: Some(r), .. } => region(*r),
        Event::ZoneHealth { zone, .. } if zone.idx() >= c.zones.len() => {
            Err(format!("event names zone #{} but the catalog has {} zones", zone.0, c.zones.len()))
        }
        Event::PriceChanged { offer, price_per_h, .. } => {
            if offer.idx() >= c.offers.len() {
                Err(format!("event names offer #{} but the catalog has {} offers", offer.0, c.offers.len()))
            } else if !(price_per_h.is_finite() && *price_per_h >= 0.0) {
                Err(format!("price_per_h {price_per_h} must be a number >= 0"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// `sim replay`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A decision log written by `operator run --decision-log FILE` (JSON lines).
    pub log: PathBuf,
    /// Print only mismatches and errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `sim replay`: status 0 when every decision matches, 1 on a mismatch, 2 on a bad file.
pub fn cli(a: ReplayArgs) -> std::process::ExitCode {
    let s = match replay_file(&a.log) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    for m in &s.mismatches {
        println!("mismatch: {}:{}: {m}", a.log.display(), m.line);
    }
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let what = format!(
        "{} ({}), {}, {}",
        plural(s.engines, "engine", "engines"),
        plural(s.deployments, "deployment", "deployments"),
        plural(s.decisions, "decision", "decisions"),
        plural(s.actions, "action", "actions"),
    );
    if s.all_match() {
        if !a.quiet {
            println!("replayed {}: {what}; every decision matches", a.log.display());
        }
        std::process::ExitCode::SUCCESS
    } else {
        println!(
            "replayed {}: {what}; {} of {} diverged ({} later decisions of {} not replayed)",
            a.log.display(),
            s.mismatches.len(),
            plural(s.engines, "engine", "engines"),
            s.skipped,
            if s.mismatches.len() == 1 { "it" } else { "them" }
        );
        std::process::ExitCode::FAILURE
    }
}
