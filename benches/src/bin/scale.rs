//! Runs scenario files once each, in release, and prints how fast and how big the run was.
//!
//! ```text
//! cargo run --release -p benches --bin scale -- SCENARIO.toml [SCENARIO2.toml ...]
//! ```
//!
//! For each file: wall time of the run (loading excluded, printed apart), events processed,
//! events per second, requests total / served / rejected, availability, and the peak resident
//! set size (`VmHWM` from `/proc/self/status`). The peak is reset before each scenario where the
//! kernel allows it (writing `5` to `/proc/self/clear_refs`); otherwise it is the peak of the
//! whole process so far, and the report says so. The reset only brings the mark down to the
//! current RSS, which still holds memory the allocator kept from earlier scenarios: for an exact
//! peak per scenario, give one file per run. Nothing is written to disk: this crate builds the
//! simulator without polars. Errors go to stderr and the exit status is 2.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        eprintln!("usage: scale SCENARIO.toml [SCENARIO2.toml ...]");
        return ExitCode::from(2);
    }
    for (i, path) in paths.iter().enumerate() {
        if let Err(message) = measure(Path::new(path), i == 0) {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Loads, runs and reports one scenario; `first` says whether it is the process's first.
fn measure(path: &Path, first: bool) -> Result<(), String> {
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let t0 = Instant::now();
    let scenario = sim::scenario::load(path).map_err(|e| e.to_string())?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let results = sim::run(&scenario, &sim::RunOptions::default(), &mut ()).map_err(|e| e.to_string())?;
    let wall_s = t1.elapsed().as_secs_f64();
    let s = &results.summary;
    let events = s.events_processed;
    println!("{}", path.display());
    println!(
        "  scenario        {} (policy {}, seed {}, {:.0} s simulated)",
        s.scenario, s.policy, s.seed, s.duration_s
    );
    println!("  load            {load_s:.3} s");
    println!("  wall            {wall_s:.3} s");
    println!("  events          {events}");
    println!("  events/s        {:.0}", events as f64 / wall_s.max(1e-9));
    println!(
        "  requests        {} total, {} served, {} rejected",
        s.requests_total, s.requests_served, s.requests_rejected
    );
    println!("  availability    {:.6}", s.availability);
    println!("  peak instances  {}", s.peak_instances);
    match peak_rss_kib() {
        Some(kib) => {
            let scope = match (peak_reset, first) {
                (_, true) => "this scenario",
                (true, false) => "this scenario, over what earlier ones left allocated",
                (false, false) => "whole process so far",
            };
            println!("  peak RSS        {:.1} MiB ({scope})", kib as f64 / 1024.0);
        }
        None => println!("  peak RSS        unknown (no VmHWM in /proc/self/status)"),
    }
    Ok(())
}

/// `VmHWM` of this process in KiB, if the kernel reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
