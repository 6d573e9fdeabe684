//! Sweeps: shards merge into the single-machine table byte for byte, thread counts change nothing,
//! the confidence intervals are right, bad sweep files exit 2 with a message that says where and
//! what, and `sim compare` / `sim merge` behave.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sim::sweep::exec::{Options, execute};
use sim::sweep::grid::{Grid, Shard};
use sim::sweep::stats::{Estimate, num, t_quantile};
use sim::sweep::table::{Cell, Journal, read_rows};

/// A small world: two clouds, one with API errors and a spot market, ~150 requests over 2 h.
const TINY: &str = r#"name = "NAME"
seed = 1
duration = "2h"
[engine]
retry_backoff = "10s"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "aws"
location = [40.0, -75.0]
api_error_rate = 0.05
[[regions]]
name = "r2"
provider = "gcp"
location = [45.0, -120.0]
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.10
capacity = 20
spot = { price = 0.03, interruption_rate_per_h = 0.2 }
[[offers]]
region = "r2"
instance_type = "small"
on_demand = 0.12
capacity = 40
[workload]
arrival = { process = "poisson", rate_per_s = 0.02 }
lifetime = { dist = "exponential", mean = "20m" }
[[workload.shapes]]
vcpu = 2
memory_gib = 4
spot_allowed = true
"#;

/// 2 scenarios × 2 values × 3 policies × 3 seeds = 36 runs.
const SWEEP: &str = r#"name = "t"
scenarios = ["tiny.toml", { file = "tiny2.toml", set = { "workload.arrival.rate_per_s" = 0.03 } }]
policies = ["cost-optimized", "availability", "lowest-price"]
seeds = { first = 1, count = 3 }

[params]
"engine.retry_backoff" = ["5s", "30s"]
"#;

/// A folder with the two tiny scenarios and `sweep.toml` holding `sweep`.
fn setup(sweep: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("tiny.toml"), TINY.replace("NAME", "tiny")).expect("write");
    std::fs::write(dir.path().join("tiny2.toml"), TINY.replace("NAME", "tiny2")).expect("write");
    std::fs::write(dir.path().join("sweep.toml"), sweep).expect("write");
    dir
}

fn grid(dir: &Path) -> Grid {
    let s = sim::sweep::spec::load(&dir.join("sweep.toml")).expect("sweep loads");
    Grid::build(s).expect("grid builds")
}

fn run(g: &Grid, out: &Path, shard: Option<Shard>, threads: usize) -> Vec<u8> {
    execute(g, out, Options { shard, threads, resume: false }, &mut |_, _| {}).expect("sweep runs");
    std::fs::read(out.join("runs.parquet")).expect("table written")
}

fn sim(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sim")).args(args).output().expect("runs sim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "sim panicked: {stderr}");
    out
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn grid_order_and_table_columns() {
    let dir = setup(SWEEP);
    let g = grid(dir.path());
    assert_eq!(g.len(), 36);
    assert_eq!(g.describe(), "2 scenarios × 2 values of engine.retry_backoff × 3 policies × 3 seeds = 36 runs");
    // Scenario, then parameter value, then policy, then seed (fastest).
    let p = g.point(0);
    assert_eq!((p.scenario.file.as_str(), p.policy, p.seed), ("tiny.toml", Some("cost-optimized"), Some(1)));
    let p = g.point(1);
    assert_eq!(p.seed, Some(2));
    let p = g.point(3);
    assert_eq!((p.policy, p.seed), (Some("availability"), Some(1)));
    let p = g.point(9);
    assert_eq!(p.variant.values, vec![1]);
    assert_eq!(p.variant.data.engine.retry_backoff.as_secs_f64(), 30.0);
    let p = g.point(18);
    assert_eq!(p.scenario.file, "tiny2.toml");
    assert_eq!(p.variant.data.name, "tiny2");

    let out = tempfile::tempdir().expect("tmp");
    run(&g, out.path(), None, 2);
    let rows = read_rows(&out.path().join("runs.parquet")).expect("reads");
    assert_eq!(rows.len(), 36);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["run"], Cell::U(i as u64));
    }
    assert_eq!(rows[9]["param.engine.retry_backoff"], Cell::S("30s".into()));
    assert_eq!(rows[18]["scenario"], Cell::S("tiny2".into()));
    assert_eq!(rows[4]["policy"], Cell::S("availability".into()));
    assert_eq!(rows[4]["seed"], Cell::U(2));
    // Summary fields, maps flattened as name.key.
    for col in ["availability", "total_cost_usd", "cloud.create_calls", "cost_by_provider_usd.aws", "events_processed"]
    {
        assert!(rows[0].contains_key(col), "no column {col}");
    }
    use polars::prelude::SerReader;
    let file = std::fs::File::open(out.path().join("runs.parquet")).expect("open");
    let df = polars::prelude::ParquetReader::new(file).finish().expect("parquet");
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(names[..6], ["run", "scenario_file", "scenario", "policy", "seed", "param.engine.retry_backoff"]);
    let rest = &names[6..];
    assert!(rest.windows(2).all(|w| w[0] < w[1]), "metric columns are sorted: {rest:?}");
    // Each row is the run `sim run` would give for that point.
    let p = g.point(7);
    let s = sim::run(
        &p.variant.data,
        &sim::RunOptions { seed: p.seed, policy: p.policy.and_then(engine::PolicyConfig::default_for) },
        &mut (),
    )
    .expect("runs");
    assert_eq!(rows[7]["total_cost_usd"], Cell::F(s.summary.total_cost_usd));
    assert_eq!(rows[7]["requests_total"], Cell::U(s.summary.requests_total));
    for f in ["sweep.json", "ranking.txt"] {
        assert!(out.path().join(f).is_file(), "{f} written");
    }
    assert!(!out.path().join("journal.jsonl").exists(), "journal removed once the table is written");
}

#[test]
fn same_table_for_any_thread_count_and_every_time() {
    let dir = setup(SWEEP);
    let g = grid(dir.path());
    let outs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let one = run(&g, outs[0].path(), None, 1);
    let two = run(&g, outs[1].path(), None, 2);
    let four = run(&g, outs[2].path(), None, 4);
    let again = run(&grid(dir.path()), outs[3].path(), None, 3);
    assert!(one == two && two == four && four == again, "tables differ across thread counts");
    let m = |d: &tempfile::TempDir| std::fs::read(d.path().join("sweep.json")).expect("manifest");
    assert_eq!(m(&outs[0]), m(&outs[2]));
    let r = |d: &tempfile::TempDir| std::fs::read(d.path().join("ranking.txt")).expect("ranking");
    assert_eq!(r(&outs[0]), r(&outs[1]));
}

#[test]
fn merging_n_shards_gives_the_single_machine_table() {
    let dir = setup(SWEEP);
    let g = grid(dir.path());
    let single = tempfile::tempdir().expect("tmp");
    let table = run(&g, single.path(), None, 2);
    let manifest = std::fs::read(single.path().join("sweep.json")).expect("manifest");
    let frame = read_rows(&single.path().join("runs.parquet")).expect("rows");
    for n in [1, 3, 7] {
        let work = tempfile::tempdir().expect("tmp");
        // Shards run in reverse order with one thread each, as separate machines would.
        let mut dirs: Vec<PathBuf> = Vec::new();
        for i in (0..n).rev() {
            let d = work.path().join(format!("shard-{i}"));
            run(&g, &d, Some(Shard { index: i, count: n }), 1);
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join("sweep.json")).expect("shard manifest")).expect("json");
            assert_eq!(m["runs"], Shard { index: i, count: n }.len(36));
            dirs.push(d);
        }
        let merged = work.path().join("merged");
        let m = sim::sweep::merge::merge(&merged, &dirs).expect("merges");
        assert_eq!(m.rows, frame, "N = {n}: merged rows differ");
        assert!(std::fs::read(merged.join("runs.parquet")).expect("merged") == table, "N = {n}: bytes differ");
        assert_eq!(std::fs::read(merged.join("sweep.json")).expect("merged manifest"), manifest, "N = {n}");
    }
}

#[test]
fn merge_refuses_missing_duplicated_and_foreign_shards() {
    let dir = setup(SWEEP);
    let g = grid(dir.path());
    let other = setup(&SWEEP.replace("[\"5s\", \"30s\"]", "[\"5s\", \"60s\"]"));
    let g2 = grid(other.path());
    assert_ne!(g.id, g2.id, "a different grid has a different fingerprint");
    let work = tempfile::tempdir().expect("tmp");
    let d = |name: &str| work.path().join(name);
    for i in 0..3 {
        run(&g, &d(&format!("s{i}")), Some(Shard { index: i, count: 3 }), 2);
    }
    run(&g2, &d("foreign1"), Some(Shard { index: 1, count: 3 }), 2);
    run(&g, &d("half1"), Some(Shard { index: 1, count: 2 }), 2);
    run(&g, &d("whole"), None, 2);
    let err = |dirs: &[&str]| {
        let dirs: Vec<PathBuf> = dirs.iter().map(|n| d(n)).collect();
        let e = sim::sweep::merge::merge(&d("out"), &dirs).expect_err("refused");
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    };
    let e = err(&["s0", "s2"]);
    assert!(e.contains("missing shard 1 of 3"), "{e}");
    let e = err(&["s0", "s1", "s1", "s2"]);
    assert!(e.contains("shard 1/3 is given twice"), "{e}");
    let e = err(&["s0", "foreign1", "s2"]);
    assert!(e.contains("only shards of the same sweep file and scenarios can be merged"), "{e}");
    let e = err(&["s0", "half1", "s2"]);
    assert!(e.contains("is one of 2 shards but"), "{e}");
    let e = err(&["whole"]);
    assert!(e.contains("holds a whole sweep"), "{e}");
    let e = err(&["nothing-here"]);
    assert!(e.contains("no sweep.json"), "{e}");
    // A shard interrupted before its table was written.
    std::fs::create_dir_all(d("torn")).expect("mkdir");
    std::fs::write(d("torn").join("journal.jsonl"), "{}\n").expect("write");
    let e = err(&["torn"]);
    assert!(e.contains("has not finished"), "{e}");
    assert!(!d("out").exists(), "nothing written when refused");
}

#[test]
fn an_interrupted_sweep_resumes_from_its_journal() {
    let dir = setup(SWEEP);
    let g = grid(dir.path());
    let fresh = tempfile::tempdir().expect("tmp");
    let table = run(&g, fresh.path(), None, 2);
    let rows = read_rows(&fresh.path().join("runs.parquet")).expect("rows");
    // An attempt that got through 10 runs (out of order) and then died mid-line.
    let out = tempfile::tempdir().expect("tmp");
    {
        let (mut j, done) = Journal::open(out.path(), &g.id, None, false).expect("journal");
        assert!(done.is_empty());
        for i in [5usize, 0, 7, 1, 2, 3, 4, 6, 8, 35] {
            j.append(i, &rows[i]).expect("append");
        }
    }
    let mut text = std::fs::read_to_string(out.path().join("journal.jsonl")).expect("journal");
    text.push_str("{\"run\":9,\"row\":{\"avail");
    std::fs::write(out.path().join("journal.jsonl"), text).expect("write");
    let o = execute(&g, out.path(), Options { shard: None, threads: 2, resume: true }, &mut |_, _| {}).expect("runs");
    assert_eq!((o.resumed, o.ran), (10, 26));
    assert!(std::fs::read(out.path().join("runs.parquet")).expect("table") == table, "resumed table differs");
    // Without --resume a journal is ignored.
    let o = execute(&g, out.path(), Options { shard: None, threads: 2, resume: false }, &mut |_, _| {}).expect("runs");
    assert_eq!((o.resumed, o.ran), (0, 36));
}

#[test]
fn confidence_intervals_match_known_values() {
    // Student t 0.975 quantiles (R: qt(0.975, df)).
    for (df, q) in [
        (1.0, 12.706_204_736_174_698),
        (2.0, 4.302_652_729_749_464),
        (4.0, 2.776_445_105_197_793),
        (9.0, 2.262_157_162_798_205),
        (29.0, 2.045_229_642_132_703),
        (100.0, 1.983_971_518_523_552),
    ] {
        let got = t_quantile(0.975, df);
        assert!((got - q).abs() < 1e-9 * q.max(1.0), "df {df}: {got} vs {q}");
    }
    assert!((t_quantile(0.025, 9.0) + 2.262_157_162_798_205).abs() < 1e-9);
    // Many degrees of freedom: the normal quantile.
    assert!((t_quantile(0.975, 1.0e8) - 1.959_963_984_540_054).abs() < 1e-6);
    assert!((t_quantile(0.995, 5.0) - 4.032_142_983_557_536).abs() < 1e-9);

    // 1..5: mean 3, sd √2.5, half width t(0.975, 4) · √2.5 / √5 = 2.776445105 / √2 = 1.963243...
    let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).expect("estimate");
    assert_eq!((e.n, e.mean), (5, 3.0));
    assert!((e.sd - 2.5f64.sqrt()).abs() < 1e-12);
    let half = e.half_width.expect("interval");
    assert!((half - 2.776_445_105_197_793 / 2f64.sqrt()).abs() < 1e-9, "{half}");
    assert_eq!(e.display(), "3.000 ± 1.963");
    // Ten seeds of a cost: 2 and 4 alternating: mean 3, sd √(10/9), half = 2.262157 · sd / √10 = 0.754052...
    let v: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 2.0 } else { 4.0 }).collect();
    let e10 = Estimate::of(&v).expect("estimate");
    assert!((e10.half_width.expect("ci") - 2.262_157_162_798_205 * (10.0f64 / 9.0).sqrt() / 10f64.sqrt()).abs() < 1e-9);
    // One value: a mean, no interval.
    let one = Estimate::of(&[7.0]).expect("estimate");
    assert_eq!(one.half_width, None);
    assert_eq!(one.overlaps(&e), None);
    // [1.04, 4.96] and [5.5, 6.5] do not overlap; [1.04, 4.96] and [4.5, 5.5] do.
    let at = |mean: f64, h: f64| Estimate { n: 3, mean, sd: 0.0, half_width: Some(h) };
    assert_eq!(e.overlaps(&at(6.0, 0.5)), Some(false));
    assert_eq!(e.overlaps(&at(5.0, 0.5)), Some(true));
    assert!(Estimate::of(&[]).is_none());
}

/// Writes `text` as `sweep.toml` next to the tiny scenarios and runs `sim sweep` on it.
fn bad(text: &str, extra: &[&str]) -> String {
    let dir = setup(text);
    let mut args = vec![os("sweep").to_owned(), dir.path().join("sweep.toml").into_os_string()];
    args.extend(["--out".into(), dir.path().join("out").into_os_string()]);
    args.extend(extra.iter().map(|a| a.into()));
    let out = Command::new(env!("CARGO_BIN_EXE_sim")).args(&args).output().expect("runs sim");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "sim panicked: {stderr}");
    assert_eq!(out.status.code(), Some(2), "exit 2 expected for:\n{text}\nstderr: {stderr}");
    stderr
}

#[test]
fn bad_sweep_files_exit_2_and_say_where_and_what() {
    let head = "name = \"t\"\nscenarios = [\"tiny.toml\"]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        // Unknown key: file, line, column, and the keys allowed.
        (format!("{head}seed = 3\n"), vec!["sweep.toml:3:1", "unknown field `seed`", "expected one of", "`seeds`"]),
        (format!("{head}[ranking]\nsort = \"x\"\n"), vec!["sweep.toml:4", "unknown field `sort`", "`metrics`"]),
        (
            format!("{head}policies = [\"cost-optimized\", \"cost-optimised\"]\n"),
            vec!["sweep.toml:3: policies[1]: no policy named \"cost-optimised\"; policies are: cost-optimized,"],
        ),
        (format!("{head}policies = \"some\"\n"), vec!["sweep.toml:3", "\"all\" or a list of policy names"]),
        (format!("{head}seeds = \"ten\"\n"), vec!["sweep.toml:3", "a list of seeds such as [1, 2, 3]"]),
        (
            format!("{head}seeds = {{ first = 1, count = 0 }}\n"),
            vec!["sweep.toml:3: seeds.count: must be between 1 and 1000000 (got 0)"],
        ),
        (
            "name = \"t\"\nscenarios = [\"tiny.toml\", \"missing.toml\"]\n".to_owned(),
            vec!["sweep.toml:2: scenarios[1]: cannot read", "missing.toml"],
        ),
        // Overrides are checked by the scenario checker and reported at the sweep file's line.
        (
            format!("{head}[params]\n\"engine.retry_backoff\" = [\"5s\",\n  \"5 parsecs\"]\n"),
            vec!["sweep.toml:5: params.\"engine.retry_backoff\"[1]: tiny.toml rejects \"5 parsecs\"", "retry_backoff"],
        ),
        (
            format!("{head}[params]\n\"engine.retry_backof\" = [\"5s\"]\n"),
            vec!["sweep.toml:4: params.\"engine.retry_backof\"[0]", "unknown field `retry_backof`", "`retry_backoff`"],
        ),
        (
            format!("{head}[params]\nengine.max_attempts = 5\n"),
            vec!["sweep.toml:4: params.engine.max_attempts: must be a list of the values to try", "[set]"],
        ),
        (
            format!("{head}[set]\n\"offers[5].capacity\" = 5\n"),
            vec!["sweep.toml:4: set.\"offers[5].capacity\"", "offers has 2 entries"],
        ),
        (format!("{head}[set]\n\"engine..x\" = 5\n"), vec!["sweep.toml:4", "is not a scenario key such as"]),
        (
            format!("{head}policies = \"all\"\n[set]\n\"policy.kind\" = \"first-fit\"\n"),
            vec!["sweep.toml:5: set.\"policy.kind\"", "`policies` replaces each scenario's [policy]"],
        ),
        (
            format!("{head}[ranking]\nby = \"total_cost_usd\"\n"),
            vec!["sweep.toml:4: ranking.by", "best = \"highest\"` or `best = \"lowest\"`"],
        ),
        // A metric that no run has: found after the first run, reported at its line.
        (
            format!("{head}[ranking]\nmetrics = [\"availability\",\n  \"total_cost\"]\n"),
            vec!["sweep.toml:5: ranking.metrics[1]: no column \"total_cost\"", "total_cost_usd"],
        ),
    ];
    for (text, needles) in cases {
        let stderr = bad(&text, &[]);
        for n in needles {
            assert!(stderr.contains(n), "expected {n:?} in:\n{stderr}\nfor:\n{text}");
        }
    }
    let stderr = bad(SWEEP, &["--shard", "3/3"]);
    assert!(stderr.contains("I must be below N"), "{stderr}");
    let stderr = bad(SWEEP, &["--shard", "x"]);
    assert!(stderr.contains("expected I/N"), "{stderr}");
}

#[test]
fn cli_sweep_shard_merge_and_compare() {
    let dir = setup(SWEEP);
    let p = |n: &str| dir.path().join(n);
    let out = sim(&[os("sweep"), p("sweep.toml").as_os_str(), os("--out"), p("all").as_os_str(), os("-j"), os("2")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in
        ["36 runs", "mean ± 95% CI (Student t)", "availability ▼", "rank", "runs/s", "mean rank by availability"]
    {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    // --dry-run checks and counts.
    let out = sim(&[os("sweep"), p("sweep.toml").as_os_str(), os("--dry-run"), os("--shard"), os("1/4")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("= 36 runs; shard 1/4: 9 runs"));
    // Two shards and a merge.
    for i in 0..2 {
        let shard = format!("{i}/2");
        let out = sim(&[
            os("sweep"),
            p("sweep.toml").as_os_str(),
            os("--shard"),
            os(&shard),
            os("-q"),
            os("--out"),
            p(&format!("s{i}")).as_os_str(),
        ]);
        assert!(out.status.success());
    }
    let out = sim(&[os("merge"), p("merged").as_os_str(), p("s1").as_os_str(), p("s0").as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("merged 2 shards (36 runs of sweep t)"));
    assert_eq!(std::fs::read(p("merged/runs.parquet")).ok(), std::fs::read(p("all/runs.parquet")).ok());
    let out = sim(&[os("merge"), p("m2").as_os_str(), p("s1").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing shard 0 of 2"));

    // A sweep against itself: every delta 0, every interval overlaps.
    let out = sim(&[os("compare"), p("all").as_os_str(), p("merged").as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tiny.toml (tiny) · engine.retry_backoff = 5s · cost-optimized"), "{text}");
    assert!(text.contains("CIs overlap") && !text.contains("NO"), "{text}");
    // A sweep where the first offer costs 10×: cost intervals no longer overlap.
    std::fs::write(p("dear.toml"), SWEEP.replace("[params]", "[set]\n\"offers[0].on_demand\" = 1.0\n[params]"))
        .expect("write");
    let out = sim(&[os("sweep"), p("dear.toml").as_os_str(), os("-q"), os("--out"), p("dear").as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = sim(&[
        os("compare"),
        p("all").as_os_str(),
        p("dear/runs.parquet").as_os_str(),
        os("--metric"),
        os("total_cost_usd"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("total_cost_usd")).collect();
    assert_eq!(lines.len(), 12, "one line per scenario, value and policy:\n{text}");
    assert!(lines.iter().all(|l| l.matches(" ± ").count() == 2), "{text}");
    // The policies that use the dear offer pay visibly more; the others may not.
    assert!(lines.iter().any(|l| l.ends_with("NO")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("availability ")), "--metric restricts the metrics:\n{text}");

    // Two results folders: metric, A, B, delta, change.
    for (name, policy) in [("ra", "cost-optimized"), ("rb", "availability")] {
        let out = sim(&[
            os("run"),
            p("tiny.toml").as_os_str(),
            os("--policy"),
            os(policy),
            os("-q"),
            os("--out"),
            p(name).as_os_str(),
        ]);
        assert!(out.status.success());
    }
    let out = sim(&[os("compare"), p("ra").as_os_str(), p("rb").as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = |d: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p(d).join("summary.json")).expect("summary")).expect("json")
    };
    let (a, b) = (summary("ra"), summary("rb"));
    assert!(text.contains("(tiny, cost-optimized, 1)") && text.contains("(tiny, availability, 1)"), "{text}");
    let header = text.lines().find(|l| l.starts_with("metric")).expect("header");
    assert!(["A", "B", "delta", "change"].iter().all(|h| header.contains(h)), "{header}");
    let cost = text.lines().find(|l| l.starts_with("total_cost_usd")).expect("cost line");
    let (x, y) = (a["total_cost_usd"].as_f64().expect("cost"), b["total_cost_usd"].as_f64().expect("cost"));
    assert!(cost.contains(&num(x)) && cost.contains(&num(y)), "{cost} vs {x} {y}");
    assert!(text.lines().any(|l| l.starts_with("cloud.create_calls")), "{text}");
    // Unlike things are refused.
    let out = sim(&[os("compare"), p("ra").as_os_str(), p("all").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let out = sim(&[os("compare"), p("ra").as_os_str(), p("nowhere").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a results folder"));
}

#[test]
fn shipped_sweeps_cover_every_policy_and_scenario() {
    let root = crate::root();
    let s = sim::sweep::spec::load(&root.join("scenarios/sweeps/policies.toml")).expect("policies.toml parses");
    let g = Grid::build(s).expect("every point of policies.toml checks");
    assert_eq!(g.sweep.policies, engine::PolicyConfig::NAMES.map(String::from).to_vec());
    assert!(g.sweep.seeds.len() >= 10);
    let mut shipped: Vec<String> = std::fs::read_dir(root.join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    shipped.sort();
    let mut swept: Vec<String> = g
        .sweep
        .scenarios
        .iter()
        .map(|s| Path::new(&s.file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    swept.sort();
    assert_eq!(
        swept, shipped,
        "scenarios/sweeps/policies.toml must list every shipped scenario (cap large ones with `set`)"
    );
    let s = sim::sweep::spec::load(&root.join("scenarios/sweeps/spot-notice.toml")).expect("spot-notice.toml parses");
    assert_eq!(Grid::build(s).expect("checks").len(), 1000);
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_cli() {
    let dir = crate::root().join("deploy/sweep");
    let load = |f: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join(f)).expect("manifest")).expect("yaml")
    };
    let (job, merge, pvc) = (load("job.yaml"), load("merge-job.yaml"), load("pvc.yaml"));
    let spec = &job["spec"];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_u64().expect("completions");
    let container = &spec["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_sequence().expect("args").iter().filter_map(|a| a.as_str()).collect();
    // `sim sweep FILE --shard $(JOB_COMPLETION_INDEX)/N --out ...`, N = completions.
    assert_eq!(args[0], "sweep");
    let shard = args.iter().position(|a| *a == "--shard").map(|i| args[i + 1]).expect("--shard");
    assert_eq!(shard, format!("$(JOB_COMPLETION_INDEX)/{n}"));
    let out = args.iter().position(|a| *a == "--out").map(|i| args[i + 1]).expect("--out");
    assert!(out.contains("$(JOB_COMPLETION_INDEX)"), "each shard has its own folder: {out}");
    // The sweep file is a shipped one (the image copies scenarios/ to /novacron/scenarios).
    let file = args[1].strip_prefix("/novacron/").expect("in the image's scenarios");
    let sweep = sim::sweep::spec::load(&crate::root().join(file)).expect("the shipped sweep parses");
    assert!(out.starts_with(&format!("/results/{}/", sweep.name)), "{out}");
    // The same volume, mounted where the paths point, in both jobs.
    let claim = pvc["metadata"]["name"].as_str().expect("pvc name");
    for j in [&job, &merge] {
        let pod = &j["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(), Some(claim));
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["mountPath"].as_str(), Some("/results"));
    }
    assert_eq!(pvc["spec"]["accessModes"][0].as_str(), Some("ReadWriteMany"));
    let merge_cmd = merge["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str().expect("merge command");
    let shard_dirs = out.replace("$(JOB_COMPLETION_INDEX)", "*");
    assert!(merge_cmd.starts_with("exec sim merge ") && merge_cmd.ends_with(&shard_dirs), "{merge_cmd}");
}

#[test]
fn a_sweeps_report_compares_policies_with_confidence_intervals() {
    let dir = setup(SWEEP);
    let out = dir.path().join("out");
    run(&grid(dir.path()), &out, None, 2);
    let r = sim::report::write_report(&out, &Default::default()).expect("report");
    // 2 scenarios × 2 retry_backoff values = 4 groups, each with a cost and an availability figure.
    assert_eq!(r.figures.len(), 8);
    let first = &r.figures[0];
    assert!(first.title.contains("tiny") && first.title.contains("engine.retry_backoff = 5s"), "{}", first.title);
    let table = std::fs::read_to_string(&r.html).expect("html");
    for p in ["cost-optimized", "availability", "lowest-price"] {
        assert!(table.contains(p), "report lacks {p}");
    }
    assert!(table.contains("95 %"));
    // The bars are the runs' statistics: recompute the first group's (tiny, 5s) bars by hand.
    let summaries: Vec<serde_json::Value> = (0..9)
        .map(|i| {
            let g = grid(dir.path());
            let p = g.point(i);
            sim::sweep::exec::run_point(&g, &p).expect("runs").1
        })
        .collect();
    let sim::report::figures::Content::Bars { rows } = &first.content else { panic!("bars expected") };
    assert_eq!(
        rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["cost-optimized", "availability", "lowest-price"]
    );
    for (k, row) in rows.iter().enumerate() {
        let costs: Vec<f64> = summaries
            .iter()
            .filter(|s| s["policy"] == row.label.as_str())
            .map(|s| s["total_cost_usd"].as_f64().expect("cost"))
            .collect();
        assert_eq!(costs.len(), 3, "bar {k}: three seeds");
        let e = Estimate::of(&costs).expect("estimate");
        assert!((row.mean - e.mean).abs() < 1e-9, "bar {k}: {} vs {}", row.mean, e.mean);
        assert!((row.ci_high - row.ci_low - 2.0 * e.half_width.expect("n = 3")).abs() < 1e-9);
    }
    for f in &r.figures {
        let svg = std::fs::read_to_string(out.join("figures").join(format!("{}.svg", f.id))).expect("svg");
        for p in ["cost-optimized", "availability", "lowest-price"] {
            assert!(svg.contains(p), "{}: no bar for {p}", f.id);
        }
    }
}
