//! `sim report`: figures and a self-contained HTML page from a results folder.
//!
//! The report reads what a run wrote (`summary.json` and the Parquet tables described in
//! `docs/results.md`), never the simulator's memory, so `sim report DIR` on an old folder and
//! `sim run --report` give the same pages. It is done in three separate steps:
//!
//! 1. [`data::load`] reads the folder into plain rows; an absent or unusable table becomes
//!    [`data::Table::Missing`] with the reason, and only a folder without a readable
//!    `summary.json` is an error ([`Error::NotResults`]).
//! 2. [`figures`] turns rows into [`Figure`]s: series, stacked layers, shaded fault windows,
//!    timeline marks or bars, with titles, axis labels (with units) and ranges. This is where the
//!    content is decided, and what tests assert on. One colour per provider, the same everywhere.
//! 3. [`plots`] draws any figure as PNG and SVG (plotters); [`html`] inlines the PNGs into
//!    `report.html` with tables from the summary.
//!
//! A sweep can reuse steps 2 and 3: [`figures::policy_comparison`] draws bars with confidence
//! intervals from `(label, mean, ci_low, ci_high)` rows, and [`html::page`] lays out any tables
//! and figures.

pub mod cache;
pub mod data;
pub mod figures;
pub mod html;
pub mod plots;
pub mod sweep;

use std::path::{Path, PathBuf};

pub use data::{ResultsData, load};
pub use figures::{ComparisonRow, Figure, policy_comparison};
pub use plots::{SIZE, render_png, render_svg};

/// Errors of the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder is not a results folder.
    #[error("{}: not a results folder: {reason}", path.display())]
    NotResults {
        /// The folder given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A figure could not be drawn.
    #[error("figure {figure}: {message}")]
    Draw {
        /// Figure id.
        figure: String,
        /// Cause.
        message: String,
    },
    /// A file could not be written.
    #[error("{}: cannot write: {message}", path.display())]
    Write {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

impl Error {
    /// Whether the input was at fault (exit status 2) rather than the machine (1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::NotResults { .. })
    }
}

/// Result with the report's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where and how big.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Output folder [default: the results folder]: `report.html` and `figures/` go there.
    pub out: Option<PathBuf>,
    /// Figure size in pixels.
    pub size: (u32, u32),
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { out: None, size: SIZE }
    }
}

/// What [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct Report {
    /// `report.html`.
    pub html: PathBuf,
    /// The figures (`figures/<id>.png` and `.svg`).
    pub files: Vec<PathBuf>,
    /// The figures, as computed.
    pub figures: Vec<Figure>,
    /// Tables that could not be used.
    pub warnings: Vec<String>,
}

/// A rendered figure.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// SVG text.
    pub svg: String,
}

/// Draws a figure as PNG and SVG.
pub fn render(fig: &Figure, size: (u32, u32)) -> Result<Rendered> {
    let draw_err = |message: String| Error::Draw { figure: fig.id.clone(), message };
    Ok(Rendered { png: render_png(fig, size).map_err(draw_err)?, svg: render_svg(fig, size).map_err(draw_err)? })
}

/// Writes `figures/<id>.png` and `.svg` under `dir`; returns the two paths.
pub fn write_figure(dir: &Path, fig: &Figure, r: &Rendered) -> Result<[PathBuf; 2]> {
    let figs = dir.join("figures");
    std::fs::create_dir_all(&figs).map_err(|e| Error::Write { path: figs.clone(), message: e.to_string() })?;
    let png = figs.join(format!("{}.png", fig.id));
    let svg = figs.join(format!("{}.svg", fig.id));
    write(&png, &r.png)?;
    write(&svg, r.svg.as_bytes())?;
    Ok([png, svg])
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| Error::Write { path: path.to_owned(), message: e.to_string() };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads `results`, draws every figure and writes them with `report.html`.
///
/// A sweep's folder (with `runs.parquet`) gets the policy comparison instead: per scenario, bars of
/// each policy's mean total cost and availability with 95 % confidence intervals.
pub fn write_report(results: &Path, opts: &ReportOptions) -> Result<Report> {
    if sweep::is_sweep(results) {
        return sweep::write_sweep_report(results, opts);
    }
    let data = load(results)?;
    let figures = figures::all(&data);
    let s = &data.summary;
    let name = s.get("scenario").and_then(|v| v.as_str()).unwrap_or("results");
    let subtitle = format!(
        "policy {}, seed {}: figures from {}",
        s.get("policy").and_then(|v| v.as_str()).unwrap_or("?"),
        s.get("seed").map_or_else(|| "?".into(), |v| v.to_string()),
        results.display()
    );
    let out = opts.out.clone().unwrap_or_else(|| results.to_owned());
    let page = Page {
        title: format!("NovaCron report: {name}"),
        subtitle,
        notes: data.warnings(),
        tables: html::summary_tables(&data.summary),
    };
    write_page(&out, figures, page, opts.size)
}

/// What a report page says besides its figures.
pub(crate) struct Page {
    pub title: String,
    pub subtitle: String,
    pub notes: Vec<String>,
    pub tables: Vec<html::Table>,
}

/// Renders `figures`, writes them under `out/figures/` and the page with them inlined as
/// `out/report.html`.
pub(crate) fn write_page(out: &Path, figures: Vec<Figure>, page: Page, size: (u32, u32)) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| Error::Write { path: out.to_owned(), message: e.to_string() })?;
    let rendered = render_all(&figures, size)?;
    let mut files = Vec::new();
    for (f, r) in figures.iter().zip(&rendered) {
        files.extend(write_figure(out, f, r)?);
    }
    let embedded: Vec<html::Embedded<'_>> = figures
        .iter()
        .zip(&rendered)
        .map(|(f, r)| html::Embedded {
            figure: f,
            png: &r.png,
            size,
            links: vec![
                ("SVG".into(), format!("figures/{}.svg", f.id)),
                ("PNG".into(), format!("figures/{}.png", f.id)),
            ],
        })
        .collect();
    let text = html::page(&page.title, &page.subtitle, &page.notes, &page.tables, &embedded);
    let html_path = out.join("report.html");
    write(&html_path, text.as_bytes())?;
    Ok(Report { html: html_path, files, figures, warnings: page.notes })
}

/// Renders the figures on every core (rasterising the PNGs dominates).
fn render_all(figures: &[Figure], size: (u32, u32)) -> Result<Vec<Rendered>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, figures.len().max(1));
    let chunk = figures.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = figures
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|f| render(f, size)).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(figures.len());
        for h in handles {
            match h.join() {
                Ok(r) => out.extend(r?),
                Err(_) => return Err(Error::Draw { figure: "?".into(), message: "drawing thread panicked".into() }),
            }
        }
        Ok(out)
    })
}
