//! The `sweep`, `merge` and `compare` commands of the `sim` binary. Bad input exits with status 2,
//! other failures with 1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::exec::{Options, default_out, execute};
use super::grid::{Grid, Shard};
use super::{Error, compare, merge, spec};

/// `sim sweep`.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// The sweep file (TOML); see docs/sweeps.md.
    pub sweep: PathBuf,
    /// Output folder [default: results/sweeps/<name>/, or results/sweeps/<name>/shard-I-of-N/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (0 ≤ I < N): the runs whose grid index i has i mod N = I.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Worker threads [default: one per core].
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Keep the runs an interrupted earlier attempt finished (OUT/journal.jsonl).
    #[arg(long)]
    pub resume: bool,
    /// Check the sweep and every point of its grid, print its size, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `sim merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Output folder for the merged table.
    pub out: PathBuf,
    /// The shards' output folders (each with runs.parquet and sweep.json).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `sim compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// A results folder (summary.json) or a sweep (folder with runs.parquet, or the table).
    pub a: PathBuf,
    /// The same kind of thing as A.
    pub b: PathBuf,
    /// Only these metrics (repeatable) [default: every metric for runs, the ranking's for sweeps].
    #[arg(long = "metric", value_name = "NAME")]
    pub metrics: Vec<String>,
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// Runs `sim sweep`.
pub fn sweep(a: SweepArgs) -> ExitCode {
    let shard = match a.shard.as_deref().map(Shard::parse).transpose() {
        Ok(s) => s,
        Err(e) => return fail(&Error::Usage(e)),
    };
    if a.threads == Some(0) {
        return fail(&Error::Usage("--threads must be at least 1".into()));
    }
    let grid = match spec::load(&a.sweep).and_then(Grid::build) {
        Ok(g) => g,
        Err(e) => return fail(&Error::Input(e)),
    };
    let total = grid.len();
    let shard_note = shard.map_or(String::new(), |s| format!("; shard {}/{}: {} runs", s.index, s.count, s.len(total)));
    if a.dry_run {
        println!("{}: ok, sweep {}: {}{shard_note}", a.sweep.display(), grid.sweep.name, grid.describe());
        return ExitCode::SUCCESS;
    }
    let out = a.out.clone().unwrap_or_else(|| default_out(&grid, shard));
    let threads = a.threads.unwrap_or(0);
    if !a.quiet {
        println!("sweep {}: {}{shard_note}", grid.sweep.name, grid.describe());
    }
    let started = Instant::now();
    let mut bar = SweepBar::new(!a.quiet);
    let outcome =
        execute(&grid, &out, Options { shard, threads, resume: a.resume }, &mut |done, of| bar.update(done, of));
    bar.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if a.quiet {
        return ExitCode::SUCCESS;
    }
    if let Some(r) = &outcome.ranking {
        println!("\n{r}");
    }
    let secs = started.elapsed().as_secs_f64();
    let resumed =
        if outcome.resumed > 0 { format!(" (+{} resumed from the journal)", outcome.resumed) } else { String::new() };
    println!(
        "{} runs in {:.1} s wall ({:.1} runs/s on {} threads){resumed}; results in {}/",
        outcome.ran,
        secs,
        outcome.ran as f64 / secs.max(1e-9),
        outcome.threads,
        out.display()
    );
    if let Some(s) = shard {
        println!("shard {}/{} done; combine all {} with `sim merge OUT SHARD_DIR...`", s.index, s.count, s.count);
    }
    ExitCode::SUCCESS
}

/// Runs `sim merge`.
pub fn merge(a: MergeArgs) -> ExitCode {
    match merge::merge(&a.out, &a.shards) {
        Ok(m) => {
            if !a.quiet {
                println!("{}", m.ranking);
                println!(
                    "merged {} shards ({} runs of sweep {}) into {}/",
                    a.shards.len(),
                    m.rows.len(),
                    m.manifest.sweep,
                    a.out.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Runs `sim compare`.
pub fn compare(a: CompareArgs) -> ExitCode {
    match compare::compare(&a.a, &a.b, &a.metrics) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Progress of a sweep: an indicatif bar on a terminal, a line every 10 % otherwise.
struct SweepBar {
    bar: Option<ProgressBar>,
    terminal: bool,
    plain: bool,
    started: Instant,
    first: Option<usize>,
    last_tenth: usize,
}

impl SweepBar {
    fn new(enabled: bool) -> Self {
        let terminal = enabled && std::io::stderr().is_terminal();
        SweepBar {
            bar: None,
            terminal,
            plain: enabled && !terminal,
            started: Instant::now(),
            first: None,
            last_tenth: 0,
        }
    }

    /// Runs per second since the start, not counting runs resumed from a journal.
    fn rate(&mut self, done: usize) -> f64 {
        let first = *self.first.get_or_insert(done);
        (done - first) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn update(&mut self, done: usize, of: usize) {
        let rate = self.rate(done);
        if self.terminal {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = ProgressBar::with_draw_target(Some(of as u64), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} {pos}/{len} runs [{wide_bar}] {percent:>3}% · {msg} · {elapsed} · eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_position(done as u64);
            bar.set_message(format!("{rate:.1} runs/s"));
        } else if self.plain && of > 0 {
            let tenth = done * 10 / of;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                let eta = (of - done) as f64 / rate.max(1e-9);
                eprintln!("{done}/{of} runs ({}%), {rate:.1} runs/s, eta {eta:.0} s", tenth * 10);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
