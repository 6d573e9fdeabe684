//! `sim`: run NovaCron scenarios from the command line.
//!
//! `sim SCENARIO.toml` is short for `sim run SCENARIO.toml`. Bad input (a scenario, a trace, an
//! option) exits with status 2 and a message naming the file, line and key; other failures with 1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use engine::{PolicyConfig, SimTime};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sim::output::{OutputOptions, write_all};
use sim::results::Summary;
use sim::run::{Progress, RunOptions};

#[derive(Parser)]
#[command(name = "sim", version, about = "NovaCron scheduler simulator", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write its results.
    Run(RunArgs),
    /// Check a scenario without running it.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// List the placement policies.
    Policies,
    /// Draw figures and a self-contained report.html from a results folder (docs/report.md).
    Report(ReportArgs),
    /// Run a grid of scenarios × policies × parameter values × seeds in parallel (docs/sweeps.md).
    Sweep(sim::sweep::cli::SweepArgs),
    /// Combine the shard outputs of `sim sweep --shard` into one table.
    Merge(sim::sweep::cli::MergeArgs),
    /// Compare two results folders or two sweeps side by side.
    Compare(sim::sweep::cli::CompareArgs),
    /// Replay an operator's decision log on fresh engines; exit 1 if any decision differs.
    Replay(sim::replay::ReplayArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// Seed for every random stream (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Placement policy with default parameters (overrides the scenario's); see `sim policies`.
    #[arg(long)]
    policy: Option<String>,
    /// Output folder [default: results/<scenario name>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the tables as CSV.
    #[arg(long)]
    csv: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    /// Also draw figures and report.html into the output folder (as `sim report`).
    #[arg(long)]
    report: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// A results folder (what `sim run` wrote).
    results: PathBuf,
    /// Output folder for report.html and figures/ [default: the results folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

const SUBCOMMANDS: [&str; 9] = ["run", "check", "policies", "sweep", "merge", "compare", "report", "replay", "help"];

fn main() -> ExitCode {
    // `sim FILE ...` means `sim run FILE ...`.
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.get(1)
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first.as_str())
    {
        args.insert(1, "run".to_owned());
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Run(a) => run(a),
        Command::Check { scenarios } => {
            let mut status = ExitCode::SUCCESS;
            for p in scenarios {
                match sim::scenario::load(&p) {
                    Ok(s) => println!(
                        "{}: ok ({}, {} offers, policy {})",
                        p.display(),
                        s.name,
                        s.catalog.offers.len(),
                        s.engine.policy.name()
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        status = ExitCode::from(2);
                    }
                }
            }
            status
        }
        Command::Sweep(a) => sim::sweep::cli::sweep(a),
        Command::Merge(a) => sim::sweep::cli::merge(a),
        Command::Compare(a) => sim::sweep::cli::compare(a),
        Command::Policies => {
            for n in PolicyConfig::NAMES {
                println!("{n}");
            }
            ExitCode::SUCCESS
        }
        Command::Report(a) => report(&a.results, a.out, a.quiet),
        Command::Replay(a) => sim::replay::cli(a),
    }
}

/// `sim report` (and `sim run --report`): status 2 when the folder is not a results folder.
fn report(results: &std::path::Path, out: Option<PathBuf>, quiet: bool) -> ExitCode {
    let started = Instant::now();
    let opts = sim::report::ReportOptions { out, ..Default::default() };
    match sim::report::write_report(results, &opts) {
        Ok(r) => {
            if !quiet {
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "report: {} ({} figures in {}, {:.2} s)",
                    r.html.display(),
                    r.figures.len(),
                    r.html.with_file_name("figures").display(),
                    started.elapsed().as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn run(a: RunArgs) -> ExitCode {
    let scenario = match sim::scenario::load(&a.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match a.policy.as_deref().map(|n| (n, PolicyConfig::default_for(n))) {
        None => None,
        Some((_, Some(p))) => Some(p),
        Some((n, None)) => {
            eprintln!("error: --policy {n:?}: no such policy; policies are: {}", PolicyConfig::NAMES.join(", "));
            return ExitCode::from(2);
        }
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&scenario.name));
    let opts = RunOptions { seed: a.seed, policy };
    let started = Instant::now();
    let mut bar = Bar::new(scenario.duration.as_millis(), !a.quiet && std::io::stdout().is_terminal());
    let results = match sim::run(&scenario, &opts, &mut bar) {
        Ok(r) => r,
        Err(e @ sim::Error::Engine(_)) | Err(e @ sim::Error::Scenario(_)) => {
            bar.done();
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            bar.done();
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    bar.done();
    let elapsed = started.elapsed();
    let written = match write_all(&out, &results, &scenario.catalog, OutputOptions { csv: a.csv }) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !a.quiet {
        print_summary(&results.summary);
        let eps = results.summary.events_processed as f64 / elapsed.as_secs_f64().max(1e-9);
        println!(
            "\nsimulated {} in {:.2} s wall ({:.0} events/s); results in {}/ ({} files)",
            human_span(results.summary.duration_s),
            elapsed.as_secs_f64(),
            eps,
            out.display(),
            written.len()
        );
    }
    if a.report {
        return report(&out, None, a.quiet);
    }
    ExitCode::SUCCESS
}

fn human_span(secs: f64) -> String {
    if secs >= 3600.0 { format!("{:.1} h", secs / 3600.0) } else { format!("{:.0} s", secs) }
}

fn print_summary(s: &Summary) {
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.1} s"));
    let rows: Vec<(&str, String)> = vec![
        ("scenario", s.scenario.clone()),
        ("policy", s.policy.clone()),
        ("seed", s.seed.to_string()),
        (
            "requests",
            format!("{} total, {} served, {} rejected", s.requests_total, s.requests_served, s.requests_rejected),
        ),
        ("availability", format!("{:.4} %", s.availability * 100.0)),
        ("total cost", format!("$ {:.2}", s.total_cost_usd)),
        (
            "cost by provider",
            s.cost_by_provider_usd
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(k, v)| format!("{k} ${v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("peak instances", s.peak_instances.to_string()),
        ("spot interruptions", s.spot_interruptions.to_string()),
        (
            "failovers",
            format!(
                "{} (recover mean {}, p99 {})",
                s.failovers,
                opt(s.mean_time_to_recover_s),
                opt(s.p99_time_to_recover_s)
            ),
        ),
        ("spot replacements", s.replacements.to_string()),
        (
            "migrations",
            format!(
                "{} ({:.1} s downtime, ${:.2} egress)",
                s.migrations, s.migration_downtime_s, s.migration_egress_usd
            ),
        ),
        ("backups / restores", format!("{} / {}", s.backups_completed, s.restores)),
        ("time to first run", opt(s.mean_time_to_first_run_s)),
        (
            "cloud calls",
            format!(
                "{} creates: {} api errors, {} throttled, {} no capacity",
                s.cloud.create_calls, s.cloud.api_errors, s.cloud.throttled, s.cloud.insufficient_capacity
            ),
        ),
        ("events", s.events_processed.to_string()),
    ];
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("{}", "-".repeat(w + 50));
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    println!("{}", "-".repeat(w + 50));
}

/// A progress bar that appears only on a terminal and only once a run has taken a second.
struct Bar {
    bar: ProgressBar,
    started: Instant,
    enabled: bool,
    shown: bool,
}

impl Bar {
    fn new(total_ms: u64, enabled: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} simulated {percent:>3}% [{bar:40}] {msg} (eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar { bar, started: Instant::now(), enabled, shown: false }
    }
    fn done(&mut self) {
        if self.shown {
            self.bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn tick(&mut self, now: SimTime, events: u64) {
        if !self.enabled {
            return;
        }
        if !self.shown && self.started.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position(now.as_millis());
        self.bar.set_message(format!("{events} events"));
    }
}
