//! `sim report` and `sim run --report`: what each figure shows (series per provider, ranges,
//! shaded faults, timeline marks), that the SVGs carry their titles and legends, that the PNGs
//! decode with ink on them, that bad folders are refused with status 2 and missing tables give
//! "no data", and that `report.html` renders in a real browser (Debian's Chromium, installed by
//! the test when missing) with every image loaded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sim::report::figures::{self, Content, MarkKind, provider_color};
use sim::report::{ComparisonRow, Figure, SIZE, load, policy_comparison, render_png, render_svg};

/// Runs a shipped scenario into a fresh folder (with `extra` arguments) and returns the folder.
fn run(scenario: &str, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("run")
        .arg(crate::scenario_path(scenario))
        .args(["--quiet", "--out"])
        .arg(dir.path())
        .args(extra)
        .output()
        .expect("sim runs");
    assert!(out.status.success(), "sim run {scenario}: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn sim_report(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim")).arg("report").args(args).output().expect("sim report runs")
}

fn by_id<'a>(figs: &'a [Figure], id: &str) -> &'a Figure {
    figs.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no figure {id}"))
}

fn assert_ranges(f: &Figure) {
    let (x, y) = (f.x_range, f.y_range);
    assert!(x.0 < x.1 && y.0 < y.1, "{}: empty ranges {x:?} {y:?}", f.id);
    for label in [&f.x_label, &f.y_label] {
        assert!(label.contains('(') && label.ends_with(')'), "{}: axis label {label:?} lacks a unit", f.id);
    }
}

/// The text of every `<text>` element of an SVG, trimmed and unescaped.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..t.find("</text>")?];
            Some(body.trim().replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&"))
        })
        .collect()
}

/// Decoded PNG as RGB pixels.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    let ch = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => panic!("unexpected colour type {other:?}"),
    };
    let px = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| if ch >= 3 { [p[0], p[1], p[2]] } else { [p[0], p[0], p[0]] })
        .collect();
    (info.width, info.height, px)
}

fn non_white(px: &[[u8; 3]]) -> usize {
    px.iter().filter(|p| p.iter().any(|c| *c < 245)).count()
}

fn colourful(px: &[[u8; 3]]) -> usize {
    px.iter().filter(|p| p.iter().max().unwrap_or(&0) - p.iter().min().unwrap_or(&0) > 80).count()
}

#[test]
fn burst_figures_show_each_provider_with_stable_colours() {
    let dir = run("burst.toml", &[]);
    let data = load(dir.path()).expect("a results folder");
    let ts = data.timeseries.rows();
    assert!(!ts.is_empty());
    assert_eq!(data.vms.rows().len() as u64, data.summary["requests_total"].as_u64().expect("requests_total"));
    let figs = figures::all(&data);
    let ids: Vec<&str> = figs.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "cost_rate",
            "active_by_provider",
            "active_by_region",
            "availability",
            "failover_timeline",
            "spot_prices",
            "recovery_cdf"
        ]
    );

    // Cost rate: burst spends on aws, azure and gcp (no on-prem pool) and pays commitment fees.
    let cost = by_id(&figs, "cost_rate");
    assert_ranges(cost);
    assert_eq!(cost.legend(), ["aws", "azure", "gcp", "commitment fees", "capacity-crunch"]);
    assert_eq!(cost.x_label, "time since start (h)");
    assert_eq!(cost.x_range, (0.0, 6.0), "6 h run, in hours");
    for p in ["aws", "azure", "gcp"] {
        let s = cost.series(p).expect("series");
        assert_eq!(s.color, provider_color(p));
        assert_eq!(s.points.len(), ts.len(), "{p}: one point per sample");
        assert!(s.points.iter().any(|pt| pt.1 > 0.0), "{p} spent something");
        assert!(s.points.iter().all(|pt| pt.1 >= 0.0 && pt.1 <= cost.y_range.1), "{p} within the y range");
    }
    // 14.4 USD of fees over 6 h: 2.4 USD/h throughout.
    let fees = cost.series("commitment fees").expect("fees");
    assert!(fees.points.iter().all(|p| (p.1 - 2.4).abs() < 1e-9), "{:?}", &fees.points[..3]);
    // The capacity crunch from 2 h to 3 h is shaded.
    let Content::Lines { shades, .. } = &cost.content else { panic!("lines") };
    assert_eq!(shades.len(), 1);
    assert_eq!((shades[0].from, shades[0].to, shades[0].outage), (2.0, 3.0, false));

    // Stacked instances: bands in provider order, the top is the total at every sample.
    let stacked = by_id(&figs, "active_by_provider");
    assert_ranges(stacked);
    let Content::Stacked { layers } = &stacked.content else { panic!("stacked") };
    assert_eq!(layers.iter().map(|l| l.label.as_str()).collect::<Vec<_>>(), ["aws", "azure", "gcp"]);
    assert_eq!(layers[1].color, provider_color("azure"), "the same colour as in the cost figure");
    assert!(layers[0].lower.iter().all(|v| *v == 0.0));
    for w in layers.windows(2) {
        assert_eq!(w[0].upper, w[1].lower, "bands touch");
    }
    let top = &layers[2].upper;
    for (i, r) in ts.iter().enumerate() {
        assert_eq!(top[i], r.instances.iter().sum::<f64>(), "sample {i}");
    }
    let peak = top.iter().copied().fold(0.0, f64::max);
    assert_eq!(peak, data.summary["peak_instances"].as_f64().expect("peak"), "peak of the stack = summary's peak");
    assert!(stacked.y_range.1 >= peak);

    // By region: one band per region used, coloured by its provider; counts agree with vms.parquet.
    let regions = by_id(&figs, "active_by_region");
    assert_ranges(regions);
    let Content::Stacked { layers } = &regions.content else { panic!("stacked") };
    let names: Vec<&str> = layers.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(names, ["aws-us-east-1", "azure-eastus", "gcp-us-central1"]);
    assert_eq!(layers[2].color, provider_color("gcp"), "one region per provider: its provider's colour");
    let i = ts.len() / 2;
    let t = ts[i].time_s;
    let running_in = |region: &str| {
        data.vms
            .rows()
            .iter()
            .filter(|v| v.region.as_deref() == Some(region))
            .filter(|v| v.first_running_s.is_some_and(|s| s <= t) && v.end_s.is_none_or(|e| e > t))
            .count() as f64
    };
    assert_eq!(layers[0].upper[i] - layers[0].lower[i], running_in("aws-us-east-1"));
    assert_eq!(layers[1].upper[i] - layers[1].lower[i], running_in("azure-eastus"));

    // Availability: a percentage, near the summary's figure on average, with the fault shaded.
    let avail = by_id(&figs, "availability");
    assert_ranges(avail);
    let s = avail.series("VMs serving / wanted").expect("VM availability");
    assert!(s.points.iter().all(|p| (0.0..=100.0).contains(&p.1)));
    let mean = s.points.iter().map(|p| p.1).sum::<f64>() / s.points.len() as f64;
    let summary = 100.0 * data.summary["availability"].as_f64().expect("availability");
    assert!((mean - summary).abs() < 5.0, "mean of the curve {mean:.2} % vs summary {summary:.2} %");
    assert!(avail.y_range.1 > 100.0 && avail.y_range.0 <= s.points.iter().map(|p| p.1).fold(100.0, f64::min));

    // Spot prices: one step line per offer seen in spot_prices.parquet, in its provider's shades.
    let spot = by_id(&figs, "spot_prices");
    assert_ranges(spot);
    let Content::Lines { series, .. } = &spot.content else { panic!("lines") };
    let mut offers: Vec<&str> = data.spot_prices.rows().iter().map(|p| p.offer.as_str()).collect();
    offers.sort();
    offers.dedup();
    assert_eq!(series.len(), offers.len());
    for s in series {
        let label = s.label.as_deref().expect("labelled");
        assert!(offers.contains(&label), "{label}");
        for w in s.points.windows(2) {
            assert!(w[0].0 == w[1].0 || w[0].1 == w[1].1, "{label}: steps only, {w:?}");
        }
    }
    for p in ["aws", "azure", "gcp"] {
        let mine: Vec<_> = series.iter().filter(|s| s.label.as_deref().is_some_and(|l| l.starts_with(p))).collect();
        let n = mine.len();
        assert_eq!(n, 4, "{p}: two types in two zones");
        for (i, s) in mine.iter().enumerate() {
            assert_eq!(s.color, figures::variant(provider_color(p), i, n), "{p}: shades of its colour");
        }
    }

    // No deployments in burst: the failover figures say so.
    for id in ["failover_timeline", "recovery_cdf"] {
        let f = by_id(&figs, id);
        assert!(f.is_no_data(), "{id}: {:?}", f.content);
    }
}

#[test]
fn failover_timeline_and_recovery_cdf_of_a_provider_outage() {
    let dir = run("provider-outage.toml", &[]);
    let data = load(dir.path()).expect("results");
    let moves = data.failovers.rows();
    assert!(!moves.is_empty(), "the scenario fails over");
    let figs = figures::all(&data);

    let tl = by_id(&figs, "failover_timeline");
    let Content::Timeline { lanes, marks, shades, colors } = &tl.content else { panic!("timeline: {:?}", tl.content) };
    assert_eq!(lanes, &["web"]);
    assert_eq!(marks.len(), moves.len());
    assert!(marks.iter().all(|m| m.kind == MarkKind::Failover && m.lane == 0));
    // The first move leaves aws for azure (coloured azure); the failback returns to aws.
    assert_eq!(marks[0].color, provider_color("azure"), "{}", marks[0].label);
    assert!(marks[0].label.contains("aws-us-east-1 → azure-eastus"), "{}", marks[0].label);
    let back = marks.iter().find(|m| m.label.contains("failback")).expect("a failback");
    assert_eq!(back.color, provider_color("aws"));
    assert!(colors.iter().any(|(l, _)| l == "to azure") && colors.iter().any(|(l, _)| l == "to aws"));
    // The outage (2 h to 3 h) is shaded; each mark sits at its decision (hours), with a bar from the
    // outage's start (decision - time to detect) to recovery.
    assert!(shades.iter().any(|s| s.from == 2.0 && s.to == 3.0));
    for (m, f) in marks.iter().zip(moves) {
        assert_eq!(m.at, f.time_s / 3600.0);
        let start = f.time_s - f.time_to_detect_s.unwrap_or(0.0);
        assert_eq!(m.span, f.time_to_recover_s.map(|r| (start / 3600.0, (start + r) / 3600.0)), "{}", m.label);
    }
    assert!(marks[0].span.is_some_and(|(a, b)| a <= 2.0 + 1e-9 && b > a), "the outage's failover recovered");
    assert!(tl.x_range.0 <= 0.0 && tl.x_range.1 >= marks.iter().map(|m| m.at).fold(0.0, f64::max));

    let cdf = by_id(&figs, "recovery_cdf");
    assert_ranges(cdf);
    let recovered: Vec<f64> = moves.iter().filter_map(|m| m.time_to_recover_s).collect();
    let s = cdf.series(&format!("web failovers (n = {})", recovered.len())).expect("web's CDF");
    assert_eq!(s.points.first(), Some(&(0.0, 0.0)));
    let last = s.points.last().expect("points");
    assert_eq!(last.1, 100.0, "ends at 100 %");
    let max = recovered.iter().copied().fold(0.0, f64::max);
    assert!((last.0 - max).abs() < 1e-9 && cdf.x_range.1 > max, "x in seconds up to the slowest recovery");
    assert!(s.points.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1), "monotone");

    let avail = by_id(&figs, "availability");
    assert!(avail.series("web replicas running / wanted").is_some(), "{:?}", avail.legend());
}

#[test]
fn migrations_and_restores_join_the_timeline_and_the_cdf() {
    // migration.toml moves replicas live, warm and cold; dr-region-loss.toml restores from backup.
    let dir = run("migration.toml", &[]);
    let data = load(dir.path()).expect("results");
    let moved = data.migrations.rows();
    assert!(!moved.is_empty(), "the scenario migrates");
    let tl = figures::failover_timeline(&data);
    let Content::Timeline { lanes, marks, .. } = &tl.content else { panic!("timeline: {:?}", tl.content) };
    let migrations: Vec<_> = marks.iter().filter(|m| m.kind == MarkKind::Migration).collect();
    assert_eq!(migrations.len(), moved.len(), "one triangle per migrated replica");
    for m in moved {
        let lane = format!("{} migrations", m.deployment.as_deref().expect("deployment"));
        assert!(lanes.contains(&lane), "{lane} in {lanes:?}");
        let mark = migrations
            .iter()
            .find(|x| x.at == m.time_s / 3600.0 && lanes[x.lane] == lane)
            .expect("a mark where the migration finished");
        assert!(mark.label.ends_with(&format!("({})", m.kind)), "{}", mark.label);
        assert_eq!(mark.span, m.started_s.filter(|s| *s < m.time_s).map(|s| (s / 3600.0, m.time_s / 3600.0)));
    }
    assert!(tl.legend().contains(&"migration".to_owned()));

    let dir = run("dr-region-loss.toml", &[]);
    let data = load(dir.path()).expect("results");
    let restored = data.restores.rows();
    assert!(!restored.is_empty(), "the scenario restores from backup");
    let tl = figures::failover_timeline(&data);
    let Content::Timeline { marks, .. } = &tl.content else { panic!("timeline: {:?}", tl.content) };
    assert_eq!(marks.iter().filter(|m| m.kind == MarkKind::Restore).count(), restored.len());
    let cdf = figures::recovery_cdf(&data);
    let rtos = restored.iter().filter(|r| r.rto_s.is_some()).count();
    let s = cdf.series(&format!("restores, RTO (n = {rtos})")).expect("restores' CDF");
    assert_eq!(s.points.last().map(|p| p.1), Some(100.0));
}

#[test]
fn svg_and_png_carry_titles_legends_and_ink() {
    let dir = run("provider-outage.toml", &[]);
    let data = load(dir.path()).expect("results");
    for f in figures::all(&data) {
        let svg = render_svg(&f, SIZE).expect("svg");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", f.id);
        assert!(svg_texts(&svg).contains(&f.title), "{}: title missing", f.id);
        if f.is_no_data() {
            assert!(svg_texts(&svg).iter().any(|t| t == "no data"), "{}", f.id);
        } else {
            let texts = svg_texts(&svg);
            for label in f.legend().iter().chain([&f.x_label, &f.y_label]).filter(|l| !l.is_empty()) {
                assert!(texts.contains(label), "{}: no text {label:?} in {texts:?}", f.id);
            }
        }
        let (w, h, px) = decode_png(&render_png(&f, SIZE).expect("png"));
        assert_eq!((w, h), SIZE);
        let ink = non_white(&px);
        let least = if f.is_no_data() { 1_000 } else { px.len() / 100 };
        assert!(ink > least, "{}: {ink} non-white pixels of {}", f.id, px.len());
        if let Content::Lines { series, .. } = &f.content {
            // Lines are drawn in their exact colour.
            for s in series {
                let c = [s.color.0, s.color.1, s.color.2];
                assert!(px.contains(&c), "{}: no pixel of {:?}'s colour {c:?}", f.id, s.label);
            }
        }
    }
}

#[test]
fn policy_comparison_bars_with_confidence_intervals() {
    let rows: Vec<ComparisonRow> = vec![
        ("cost-optimized".to_owned(), 49.9, 47.0, 52.5).into(),
        ("balanced".to_owned(), 61.2, 58.0, 64.0).into(),
        ("availability".to_owned(), 80.0, 71.5, 90.25).into(),
        ("broken".to_owned(), f64::NAN, 1.0, 2.0).into(),
    ];
    let f = policy_comparison("cost_by_policy", "Total cost by policy (mean, 95 % CI)", "total cost (USD)", &rows);
    let Content::Bars { rows: bars } = &f.content else { panic!("bars: {:?}", f.content) };
    assert_eq!(
        bars.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["cost-optimized", "balanced", "availability"]
    );
    assert_eq!(f.y_range.0, 0.0, "bars start at zero");
    assert!(f.y_range.1 > 90.25, "the highest interval fits: {:?}", f.y_range);
    assert!(f.x_range.0 < 0.0 && f.x_range.1 > 2.0);
    let texts = svg_texts(&render_svg(&f, SIZE).expect("svg"));
    for text in [
        "Total cost by policy (mean, 95 % CI)",
        "total cost (USD)",
        "cost-optimized",
        "balanced",
        "availability",
        "mean",
        "confidence interval",
    ] {
        assert!(texts.iter().any(|t| t == text), "svg lacks {text:?}: {texts:?}");
    }
    let (_, _, px) = decode_png(&render_png(&f, SIZE).expect("png"));
    assert!(colourful(&px) > 10_000, "bars are drawn");
    assert!(policy_comparison("x", "X", "x (1)", &[]).is_no_data());
}

#[test]
fn missing_tables_give_no_data_and_bad_folders_exit_2() {
    let dir = run("burst.toml", &[]);
    let p = dir.path();
    std::fs::remove_file(p.join("spot_prices.parquet")).expect("rm");
    let _ = std::fs::remove_file(p.join("failovers.parquet"));
    std::fs::write(p.join("timeseries.parquet"), b"not parquet").expect("write");
    let out = sim_report(&[p.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timeseries.parquet: unreadable") && err.contains("spot_prices.parquet: absent"), "{err}");
    let data = load(p).expect("still a results folder");
    let figs = figures::all(&data);
    for id in ["cost_rate", "active_by_provider", "spot_prices", "failover_timeline", "recovery_cdf"] {
        assert!(by_id(&figs, id).is_no_data(), "{id}");
    }
    assert!(!by_id(&figs, "active_by_region").is_no_data(), "vms.parquet is intact");
    let html = std::fs::read_to_string(p.join("report.html")).expect("report.html");
    assert!(html.contains("spot_prices.parquet: absent"), "the page lists what is missing");
    assert!(p.join("figures/spot_prices.svg").is_file());

    let empty = tempfile::tempdir().expect("tmp");
    let bad_json = tempfile::tempdir().expect("tmp");
    std::fs::write(bad_json.path().join("summary.json"), "{ not json").expect("write");
    let missing = empty.path().join("nowhere");
    for (dir, why) in
        [(empty.path(), "no summary.json"), (bad_json.path(), "not valid JSON"), (missing.as_path(), "no such folder")]
    {
        let out = sim_report(&[dir.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{}", dir.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a results folder") && err.contains(why), "{err}");
        assert!(!dir.join("report.html").exists());
    }
}

#[test]
fn report_is_deterministic() {
    let dir = run("burst.toml", &[]);
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    for out in [a.path(), b.path()] {
        let o = sim_report(&[dir.path().as_os_str(), "--quiet".as_ref(), "--out".as_ref(), out.as_os_str()]);
        assert!(o.status.success() && o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in ["report.html", "figures/cost_rate.png", "figures/spot_prices.svg"] {
        assert_eq!(std::fs::read(a.path().join(f)).expect("a"), std::fs::read(b.path().join(f)).expect("b"), "{f}");
    }
}

// ---- the browser ----

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Debian's Chromium, installed with apt-get when missing (the test command runs as root on a clean
/// machine). A lock file keeps concurrent test processes from installing at once.
fn chromium() -> PathBuf {
    if let Some(p) = on_path("chromium") {
        return p;
    }
    let lock = File::create(std::env::temp_dir().join("novacron-chromium-install.lock")).expect("lock file");
    lock.lock().expect("lock");
    if let Some(p) = on_path("chromium") {
        return p;
    }
    eprintln!("chromium is missing: installing it with apt-get");
    let status = Command::new("sh")
        .args(["-c", "apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .expect("apt-get runs");
    assert!(status.success(), "apt-get install chromium failed ({status}); the report test needs a browser");
    on_path("chromium").expect("chromium on PATH after installing it")
}

/// Runs headless Chromium on `url` with `args`, killed after two minutes. Its output goes to files
/// (a pipe nobody reads while waiting would fill up and block it).
fn chromium_run(exe: &Path, profile: &Path, args: &[&str], url: &str) -> Output {
    let (stdout, stderr) = (profile.join("stdout.txt"), profile.join("stderr.txt"));
    let mut child = Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("stdout file"))
        .stderr(File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let read = |p: &Path| std::fs::read(p).unwrap_or_default();
            return Output { status, stdout: read(&stdout), stderr: read(&stderr) };
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium took over two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn report_renders_in_chromium_with_every_image_loaded() {
    let exe = chromium();
    let dir = run("burst.toml", &["--report"]);
    let html = dir.path().join("report.html");
    assert!(html.is_file(), "sim run --report writes report.html");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "self-contained");
    let figures = page.matches("<img ").count();
    assert_eq!(figures, 7);
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().expect("profile");

    // The page's script marks the body once every image has decoded.
    let dom = chromium_run(&exe, profile.path(), &["--dump-dom"], &url);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom_text.contains(&format!("data-images-loaded=\"{figures}/{figures}\"")),
        "images did not all load:\n{}\n{}",
        dom_text.chars().take(600).collect::<String>(),
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(dom_text.contains("<title>NovaCron report: burst ✓</title>"));
    assert!(dom_text.contains("Cost by provider"), "summary tables rendered");

    let shot = profile.path().join("shot.png");
    let out = chromium_run(
        &exe,
        profile.path(),
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,2000"],
        &url,
    );
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let (w, h, px) = decode_png(&std::fs::read(&shot).expect("screenshot"));
    assert_eq!((w, h), (1280, 2000));
    let ink = non_white(&px);
    assert!(ink > px.len() / 20, "screenshot nearly blank: {ink} non-white pixels of {}", px.len());
    // The first figures are in view: their provider colours are on screen, not only text.
    assert!(colourful(&px) > 5_000, "no figure visible: {} colourful pixels", colourful(&px));
}
