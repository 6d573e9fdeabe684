//! Drawing a [`Figure`] with plotters, as PNG (an RGB buffer encoded with `png`) or SVG text.
//!
//! One drawing routine serves both backends. Text in PNGs is rasterised by plotters' `ab_glyph`
//! backend from the DejaVu Sans font bundled in `sim/assets/fonts/`, so no system font (nor
//! fontconfig) is needed; SVGs name the `sans-serif` family and let the viewer pick the font.
//! The legend sits in a column right of the plot, so it never hides data.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figures::{Content, Figure, MarkKind, Rgb, shade_legend};

/// Default figure size in pixels.
pub const SIZE: (u32, u32) = (1200, 640);

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const OUTAGE: RGBColor = RGBColor(220, 50, 47);
const FAULT: RGBColor = RGBColor(120, 120, 120);
const INK: RGBColor = RGBColor(40, 40, 40);
/// Legend colour of timeline bars (drawn in the mark's colour, lighter).
const SPAN: RGBColor = RGBColor(175, 175, 175);

fn font_ready() -> Result<(), String> {
    static READY: OnceLock<bool> = OnceLock::new();
    let ok = *READY.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err("the bundled font could not be loaded".into()) }
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The figure as a PNG file's bytes.
pub fn render_png(fig: &Figure, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    font_ready()?;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(fig, &root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&buf).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The figure as SVG text.
pub fn render_svg(fig: &Figure, (w, h): (u32, u32)) -> Result<String, String> {
    font_ready()?;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        draw(fig, &root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// What a legend entry looks like.
enum Swatch {
    Line(RGBColor),
    Fill(RGBColor, f64),
    Mark(MarkKind),
    Span,
    ErrorBar,
}

fn legend_entries(fig: &Figure) -> Vec<(String, Swatch)> {
    let shades =
        |s| shade_legend(s).into_iter().map(|(l, outage)| (l, Swatch::Fill(if outage { OUTAGE } else { FAULT }, 0.25)));
    match &fig.content {
        Content::NoData(_) => Vec::new(),
        Content::Lines { series, shades: sh } => series
            .iter()
            .filter_map(|s| s.label.clone().map(|l| (l, Swatch::Line(rgb(s.color)))))
            .chain(shades(sh))
            .collect(),
        // Top layer first, as the bands are stacked.
        Content::Stacked { layers } => {
            layers.iter().rev().map(|l| (l.label.clone(), Swatch::Fill(rgb(l.color), 0.85))).collect()
        }
        Content::Timeline { marks, shades: sh, colors, .. } => {
            let mut v: Vec<(String, Swatch)> =
                colors.iter().map(|(l, c)| (l.clone(), Swatch::Fill(rgb(*c), 1.0))).collect();
            for k in MarkKind::ALL {
                if marks.iter().any(|m| m.kind == k) {
                    v.push((k.name().into(), Swatch::Mark(k)));
                }
            }
            for k in MarkKind::ALL {
                if marks.iter().any(|m| m.kind == k && m.span.is_some()) {
                    v.push((k.span_name().into(), Swatch::Span));
                }
            }
            v.extend(shades(sh));
            v
        }
        Content::Bars { .. } => {
            vec![("mean".into(), Swatch::Fill(rgb(BAR), 0.85)), ("confidence interval".into(), Swatch::ErrorBar)]
        }
    }
}

const BAR: Rgb = Rgb(70, 110, 170);

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn draw<DB: DrawingBackend>(fig: &Figure, root: &Area<'_, DB>) -> Result<(), String> {
    root.fill(&WHITE).map_err(e2s)?;
    let title = TextStyle::from((FAMILY, 28).into_font()).color(&INK);
    let body = root.margin(8, 0, 0, 0).titled(&fig.title, title).map_err(e2s)?;
    let (w, h) = body.dim_in_pixel();
    if let Content::NoData(why) = &fig.content {
        let big = TextStyle::from((FAMILY, 40).into_font()).color(&FAULT).pos(Pos::new(HPos::Center, VPos::Center));
        let small = TextStyle::from((FAMILY, 18).into_font()).color(&FAULT).pos(Pos::new(HPos::Center, VPos::Center));
        let (cx, cy) = (w as i32 / 2, h as i32 / 2);
        body.draw_text("no data", &big, (cx, cy - 20)).map_err(e2s)?;
        body.draw_text(why, &small, (cx, cy + 25)).map_err(e2s)?;
        return Ok(());
    }
    let entries = legend_entries(fig);
    let label_style = TextStyle::from((FAMILY, 16).into_font()).color(&INK);
    let widest = entries
        .iter()
        .map(|(l, _)| body.estimate_text_size(l, &label_style).map(|s| s.0).unwrap_or(8 * l.len() as u32))
        .max()
        .unwrap_or(0);
    let legend_w = if entries.is_empty() { 0 } else { (widest + 60).min(w * 2 / 5) };
    let (plot, legend) = body.split_horizontally(w - legend_w);
    draw_chart(fig, &plot)?;
    draw_legend(&legend, &entries, &label_style)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    entries: &[(String, Swatch)],
    style: &TextStyle,
) -> Result<(), String> {
    let style = style.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let y = 30 + 26 * i as i32;
        let (x0, x1) = (8, 36);
        match swatch {
            Swatch::Line(c) => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(3))),
            Swatch::Fill(c, a) => area.draw(&Rectangle::new([(x0, y - 8), (x1, y + 8)], c.mix(*a).filled())),
            Swatch::Mark(MarkKind::Failover) => area.draw(&Circle::new(((x0 + x1) / 2, y), 7, INK.filled())),
            Swatch::Mark(MarkKind::Migration) => area.draw(&TriangleMarker::new(((x0 + x1) / 2, y), 9, INK.filled())),
            Swatch::Mark(MarkKind::Restore) => {
                let c = (x0 + x1) / 2;
                area.draw(&Rectangle::new([(c - 6, y - 6), (c + 6, y + 6)], INK.filled()))
            }
            Swatch::Span => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], SPAN.stroke_width(8))),
            Swatch::ErrorBar => area.draw(&PathElement::new(
                vec![
                    (x0 + 8, y - 9),
                    (x1 - 8, y - 9),
                    ((x0 + x1) / 2, y - 9),
                    ((x0 + x1) / 2, y + 9),
                    (x0 + 8, y + 9),
                    (x1 - 8, y + 9),
                ],
                INK.stroke_width(2),
            )),
        }
        .map_err(e2s)?;
        let shown = truncate(label, area, &style);
        area.draw_text(&shown, &style, (x1 + 10, y)).map_err(e2s)?;
    }
    Ok(())
}

/// The label, cut with an ellipsis so that it fits the area.
fn truncate<DB: DrawingBackend>(label: &str, area: &Area<'_, DB>, style: &TextStyle) -> String {
    let room = area.dim_in_pixel().0.saturating_sub(50);
    let fits = |s: &str| area.estimate_text_size(s, style).map(|d| d.0 <= room).unwrap_or(true);
    if fits(label) {
        return label.to_owned();
    }
    let chars: Vec<char> = label.chars().collect();
    for n in (1..chars.len()).rev() {
        let s: String = chars[..n].iter().collect::<String>() + "…";
        if fits(&s) {
            return s;
        }
    }
    "…".into()
}

fn draw_chart<DB: DrawingBackend>(fig: &Figure, area: &Area<'_, DB>) -> Result<(), String> {
    let (x0, x1) = ordered(fig.x_range);
    let (y0, y1) = ordered(fig.y_range);
    let tick = TextStyle::from((FAMILY, 15).into_font()).color(&INK);
    let desc = TextStyle::from((FAMILY, 18).into_font()).color(&INK);
    let lanes: &[String] = match &fig.content {
        Content::Timeline { lanes, .. } => lanes,
        _ => &[],
    };
    let bars: Vec<String> = match &fig.content {
        Content::Bars { rows } => rows.iter().map(|r| r.label.clone()).collect(),
        _ => Vec::new(),
    };
    let lane_w = lanes.iter().map(|l| area.estimate_text_size(l, &tick).map(|s| s.0).unwrap_or(0)).max().unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(60)
        .y_label_area_size(if lanes.is_empty() { 80 } else { (lane_w + 40).min(area.dim_in_pixel().0 / 3) })
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e2s)?;
    let category = |names: &[String], v: f64| -> String {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    // Trailing spaces keep lane names off the axis (there are no tick marks to do it).
    let lane_fmt = |v: &f64| {
        let name = category(lanes, *v);
        if name.is_empty() { name } else { name + "   " }
    };
    let bar_fmt = |v: &f64| category(&bars, *v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .label_style(tick.clone())
        .axis_desc_style(desc)
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240))
        .max_light_lines(1);
    // Categories sit at integer positions: label those, and draw no tick marks (they would also
    // fall between categories).
    if !lanes.is_empty() {
        mesh.y_labels(4 * lanes.len() + 4)
            .y_label_formatter(&lane_fmt)
            .disable_y_mesh()
            .set_tick_mark_size(LabelAreaPosition::Left, 0);
    }
    if !bars.is_empty() {
        mesh.x_labels(4 * bars.len() + 4)
            .x_label_formatter(&bar_fmt)
            .disable_x_mesh()
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0);
    }
    mesh.draw().map_err(e2s)?;

    let shade_rects = |shades: &[super::figures::Shade]| {
        shades
            .iter()
            .map(|s| {
                let c = if s.outage { OUTAGE } else { FAULT };
                Rectangle::new([(s.from.max(x0), y0), (s.to.min(x1), y1)], c.mix(0.18).filled())
            })
            .collect::<Vec<_>>()
    };
    match &fig.content {
        Content::NoData(_) => {}
        Content::Lines { series, shades } => {
            chart.draw_series(shade_rects(shades)).map_err(e2s)?;
            for s in series {
                let style = rgb(s.color).stroke_width(2);
                chart.draw_series(LineSeries::new(s.points.iter().copied(), style)).map_err(e2s)?;
            }
        }
        Content::Stacked { layers } => {
            for l in layers {
                let mut pts: Vec<(f64, f64)> = l.x.iter().copied().zip(l.upper.iter().copied()).collect();
                pts.extend(l.x.iter().copied().zip(l.lower.iter().copied()).rev());
                chart.draw_series(std::iter::once(Polygon::new(pts, rgb(l.color).mix(0.85).filled()))).map_err(e2s)?;
                let top = l.x.iter().copied().zip(l.upper.iter().copied());
                chart.draw_series(LineSeries::new(top, rgb(l.color).stroke_width(1))).map_err(e2s)?;
            }
        }
        Content::Timeline { marks, shades, .. } => {
            chart.draw_series(shade_rects(shades)).map_err(e2s)?;
            for i in 0..lanes.len() {
                let y = i as f64;
                chart
                    .draw_series(std::iter::once(PathElement::new(vec![(x0, y), (x1, y)], RGBColor(200, 200, 200))))
                    .map_err(e2s)?;
            }
            let spans = marks.iter().filter_map(|m| {
                let (a, b) = m.span?;
                let y = m.lane as f64;
                Some(PathElement::new(vec![(a.max(x0), y), (b.min(x1), y)], rgb(m.color).mix(0.45).stroke_width(8)))
            });
            chart.draw_series(spans).map_err(e2s)?;
            let label_style = TextStyle::from((FAMILY, 13).into_font()).color(&INK);
            let labels = timeline_labels(marks, (x1 - x0) * 0.03);
            let mut per_lane = vec![0usize; lanes.len()];
            for (i, m) in marks.iter().enumerate() {
                let at = (m.at, m.lane as f64);
                let c = rgb(m.color);
                // Labels alternate above and below their lane so neighbours do not overlap.
                let label = labels[i].clone().unwrap_or_default();
                let nth = per_lane.get_mut(m.lane).map_or(0, |n| {
                    *n += usize::from(!label.is_empty());
                    *n
                });
                let dy = if nth % 2 == 1 { -30 } else { 14 };
                let text = Text::new(label, (-10, dy), label_style.clone());
                match m.kind {
                    MarkKind::Failover => chart
                        .draw_series(std::iter::once(EmptyElement::at(at) + Circle::new((0, 0), 7, c.filled()) + text)),
                    MarkKind::Migration => chart.draw_series(std::iter::once(
                        EmptyElement::at(at) + TriangleMarker::new((0, 0), 9, c.filled()) + text,
                    )),
                    MarkKind::Restore => chart.draw_series(std::iter::once(
                        EmptyElement::at(at) + Rectangle::new([(-6, -6), (6, 6)], c.filled()) + text,
                    )),
                }
                .map_err(e2s)?;
            }
        }
        Content::Bars { rows } => {
            let bars = rows.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, r.mean)], rgb(BAR).mix(0.85).filled())
            });
            chart.draw_series(bars).map_err(e2s)?;
            let whiskers = rows.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                let cap = 0.1;
                PathElement::new(
                    vec![
                        (x - cap, r.ci_low),
                        (x + cap, r.ci_low),
                        (x, r.ci_low),
                        (x, r.ci_high),
                        (x - cap, r.ci_high),
                        (x + cap, r.ci_high),
                    ],
                    INK.stroke_width(2),
                )
            });
            chart.draw_series(whiskers).map_err(e2s)?;
        }
    }
    Ok(())
}

/// Which marks carry a label: the first of each run of marks on one lane with the same label, each
/// within `gap` of the previous (replicas moved together), with "×n" when the run has several.
/// No labels at all past 30, where they would only overlap.
fn timeline_labels(marks: &[super::figures::Mark], gap: f64) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by(|&a, &b| marks[a].lane.cmp(&marks[b].lane).then(marks[a].at.total_cmp(&marks[b].at)));
    let mut labels = vec![None; marks.len()];
    let mut i = 0;
    while i < order.len() {
        let first = &marks[order[i]];
        let mut j = i + 1;
        while j < order.len() {
            let (m, prev) = (&marks[order[j]], &marks[order[j - 1]]);
            if m.lane != first.lane || m.label != first.label || m.at - prev.at > gap {
                break;
            }
            j += 1;
        }
        let n = j - i;
        labels[order[i]] = Some(if n > 1 { format!("{} ×{n}", first.label) } else { first.label.clone() });
        i = j;
    }
    if labels.iter().flatten().count() > 30 { vec![None; marks.len()] } else { labels }
}

/// A non-empty, finite range.
fn ordered((a, b): (f64, f64)) -> (f64, f64) {
    let (a, b) = (if a.is_finite() { a } else { 0.0 }, if b.is_finite() { b } else { 1.0 });
    if b > a { (a, b) } else { (a, a + 1.0) }
}
