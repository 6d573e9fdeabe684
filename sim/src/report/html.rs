//! `report.html`: one self-contained page (figures inlined as base64 PNG, CSS inline, no
//! external resource) that opens from disk in any browser. When every image has decoded, a
//! script sets `data-images-loaded="N/N"` on `<body>` and appends " ✓" to the title, which lets a
//! headless browser check the page.

use base64::Engine as _;
use serde_json::Value;

use super::figures::Figure;

/// A table for the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Heading above it.
    pub caption: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, already formatted.
    pub rows: Vec<Vec<String>>,
}

/// A figure to inline, with its PNG bytes and optional links to files beside the page.
#[derive(Clone, Debug)]
pub struct Embedded<'a> {
    /// The figure (title and id are used).
    pub figure: &'a Figure,
    /// PNG bytes.
    pub png: &'a [u8],
    /// Pixel size of the PNG.
    pub size: (u32, u32),
    /// Relative links shown under the figure, e.g. `("SVG", "figures/cost_rate.svg")`.
    pub links: Vec<(String, String)>,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}\
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}\
.sub{color:#666;margin-top:0}.tables{display:flex;flex-wrap:wrap;gap:12px 32px;align-items:flex-start}\
table{border-collapse:collapse;font-size:14px;margin:8px 0;display:block;overflow-x:auto;max-width:100%}caption{text-align:left;font-weight:600;padding:4px 0}\
td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f6f6f6}figure{margin:18px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{color:#555;font-size:14px}.notes{color:#8a5300}nav a{margin-right:12px}";

const SCRIPT: &str = "window.addEventListener('load',function(){\
var imgs=Array.prototype.slice.call(document.images);\
var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;\
document.body.setAttribute('data-images-loaded',ok+'/'+imgs.length);\
if(ok===imgs.length){document.title=document.title+' \\u2713';}});";

fn is_number(s: &str) -> bool {
    let s = s.trim_start_matches(['$', '-']).trim_end_matches([' ', '%', 's', 'h']);
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',' || c == ' ')
}

fn table_html(t: &Table) -> String {
    let mut h = format!("<table><caption>{}</caption>", escape(&t.caption));
    if !t.header.is_empty() {
        h.push_str("<tr>");
        for c in &t.header {
            h.push_str(&format!("<th>{}</th>", escape(c)));
        }
        h.push_str("</tr>");
    }
    for r in &t.rows {
        h.push_str("<tr>");
        for c in r {
            let class = if is_number(c) { " class=\"n\"" } else { "" };
            h.push_str(&format!("<td{class}>{}</td>", escape(c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// The whole page.
pub fn page(title: &str, subtitle: &str, notes: &[String], tables: &[Table], figures: &[Embedded<'_>]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str(&format!("<title>{}</title><style>{STYLE}</style></head>\n<body>\n", escape(title)));
    h.push_str(&format!("<h1>{}</h1><p class=\"sub\">{}</p>\n", escape(title), escape(subtitle)));
    if !figures.is_empty() {
        h.push_str("<nav>");
        for f in figures {
            h.push_str(&format!("<a href=\"#fig-{}\">{}</a>", escape(&f.figure.id), escape(&f.figure.title)));
        }
        h.push_str("</nav>\n");
    }
    if !notes.is_empty() {
        h.push_str("<ul class=\"notes\">");
        for n in notes {
            h.push_str(&format!("<li>{}</li>", escape(n)));
        }
        h.push_str("</ul>\n");
    }
    if !tables.is_empty() {
        h.push_str("<h2>Summary</h2><div class=\"tables\">\n");
        for t in tables {
            h.push_str(&table_html(t));
            h.push('\n');
        }
        h.push_str("</div>\n");
    }
    if !figures.is_empty() {
        h.push_str("<h2>Figures</h2>\n");
    }
    for f in figures {
        let links: Vec<String> =
            f.links.iter().map(|(name, href)| format!("<a href=\"{}\">{}</a>", escape(href), escape(name))).collect();
        h.push_str(&format!(
            "<figure id=\"fig-{id}\"><img src=\"data:image/png;base64,{data}\" alt=\"{t}\" width=\"{w}\" height=\"{hh}\">\
             <figcaption>{t}{sep}{links}</figcaption></figure>\n",
            id = escape(&f.figure.id),
            data = b64.encode(f.png),
            t = escape(&f.figure.title),
            w = f.size.0,
            hh = f.size.1,
            sep = if links.is_empty() { "" } else { " · " },
            links = links.join(" · "),
        ));
    }
    h.push_str(&format!("<script>{SCRIPT}</script>\n</body></html>\n"));
    h
}

/// A number for a table: integers as such, others with 4 significant decimals at most.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let decimals = if x.abs() >= 100.0 {
        2
    } else if x.abs() >= 1.0 {
        3
    } else {
        4
    };
    format!("{x:.decimals$}")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn seconds(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        None => "–".into(),
        Some(s) if s >= 3600.0 => format!("{} s ({:.2} h)", number(s), s / 3600.0),
        Some(s) => format!("{} s", number(s)),
    }
}

/// The summary's headline figures, then one table per object-valued key (cost by provider,
/// cloud calls, faults, deployments, ...), keys the page does not know included.
pub fn summary_tables(summary: &Value) -> Vec<Table> {
    let get = |k: &str| summary.get(k);
    let num = |k: &str| get(k).map_or_else(|| "–".into(), cell);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut shown: Vec<&str> = Vec::new();
    let mut row = |keys: &[&'static str], label: &str, value: String| {
        if keys.iter().any(|k| get(k).is_some()) {
            rows.push(vec![label.to_owned(), value]);
            shown.extend_from_slice(keys);
        }
    };
    row(&["scenario"], "scenario", num("scenario"));
    row(&["policy"], "policy", num("policy"));
    row(&["seed"], "seed", num("seed"));
    row(&["duration_s"], "simulated span", seconds(get("duration_s")));
    row(
        &["total_cost_usd"],
        "total cost",
        format!("$ {}", get("total_cost_usd").and_then(Value::as_f64).map_or("–".into(), |x| format!("{x:.2}"))),
    );
    row(
        &["commitment_fees_usd"],
        "commitment fees",
        format!("$ {}", get("commitment_fees_usd").and_then(Value::as_f64).map_or("–".into(), |x| format!("{x:.2}"))),
    );
    row(
        &["availability"],
        "availability",
        get("availability").and_then(Value::as_f64).map_or("–".into(), |a| format!("{:.4} %", a * 100.0)),
    );
    row(
        &["requests_total", "requests_served", "requests_rejected"],
        "requests",
        format!(
            "{} total, {} served, {} rejected",
            num("requests_total"),
            num("requests_served"),
            num("requests_rejected")
        ),
    );
    row(&["failovers"], "VM failovers", num("failovers"));
    row(&["mean_time_to_recover_s"], "time to recover, mean", seconds(get("mean_time_to_recover_s")));
    row(&["p99_time_to_recover_s"], "time to recover, p99", seconds(get("p99_time_to_recover_s")));
    row(&["spot_interruptions"], "spot interruptions", num("spot_interruptions"));
    row(&["migrations"], "migrations", num("migrations"));
    row(&["migration_downtime_s"], "migration downtime", seconds(get("migration_downtime_s")));
    row(&["mean_time_to_first_run_s"], "time to first run, mean", seconds(get("mean_time_to_first_run_s")));
    row(&["peak_instances"], "peak instances", num("peak_instances"));
    row(&["events_processed"], "events processed", num("events_processed"));
    let mut tables = Vec::new();
    let Some(obj) = summary.as_object() else { return tables };
    // Scalars the headline does not know, under their own names.
    for (k, v) in obj {
        if !shown.contains(&k.as_str()) && !v.is_object() && !v.is_array() {
            rows.push(vec![k.clone(), cell(v)]);
        }
    }
    tables.push(Table { caption: "Run".into(), header: Vec::new(), rows });
    let order = ["cost_by_provider_usd", "deployments", "faults", "cloud", "rejected_by_reason"];
    let mut keys: Vec<&String> =
        obj.keys().filter(|k| obj[k.as_str()].is_object() || obj[k.as_str()].is_array()).collect();
    keys.sort_by_key(|k| (order.iter().position(|o| o == k).unwrap_or(order.len()), (*k).clone()));
    for k in keys {
        if let Some(t) = value_table(&caption(k), &obj[k.as_str()]) {
            tables.push(t);
        }
    }
    tables
}

fn caption(key: &str) -> String {
    match key {
        "cost_by_provider_usd" => "Cost by provider (USD)".into(),
        "rejected_by_reason" => "Rejections by reason".into(),
        "cloud" => "Cloud calls".into(),
        "faults" => "Fault windows (s)".into(),
        "deployments" => "Deployments".into(),
        other => other.replace('_', " "),
    }
}

/// Few wide rows read better as columns: one row per field, one column per item (the first field,
/// e.g. the name, heads the columns).
fn transpose(caption: &str, head: Vec<String>, rows: Vec<Vec<String>>) -> Table {
    let header: Vec<String> =
        std::iter::once(String::new()).chain(rows.iter().map(|r| r.first().cloned().unwrap_or_default())).collect();
    let rows = (1..head.len())
        .map(|i| {
            std::iter::once(head[i].clone()).chain(rows.iter().map(|r| r.get(i).cloned().unwrap_or_default())).collect()
        })
        .collect();
    Table { caption: caption.to_owned(), header, rows }
}

/// A table for an object of scalars (key, value), an object of objects or an array of objects
/// (one row each, columns the union of their keys). `None` when empty.
pub fn value_table(caption: &str, v: &Value) -> Option<Table> {
    let rows_of = |items: Vec<(Option<String>, &Value)>| -> Option<Table> {
        let mut header: Vec<String> = Vec::new();
        let keyed = items.iter().any(|(k, _)| k.is_some());
        for (_, item) in &items {
            if let Some(o) = item.as_object() {
                for k in o.keys() {
                    if !header.contains(k) {
                        header.push(k.clone());
                    }
                }
            }
        }
        // Identifying columns first, the rest as the summary has them.
        let first = ["name", "strategy", "kind", "fault", "start_s", "end_s"];
        header.sort_by_key(|h| first.iter().position(|f| f == h).unwrap_or(first.len()));
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|(k, item)| {
                let mut r: Vec<String> = k.iter().cloned().collect();
                r.extend(header.iter().map(|h| item.get(h).map_or_else(|| "–".into(), cell)));
                r
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let mut head: Vec<String> = if keyed { vec![String::new()] } else { Vec::new() };
        head.extend(header.iter().map(|h| h.replace('_', " ")));
        Some(if head.len() > 8 && rows.len() <= 6 {
            transpose(caption, head, rows)
        } else {
            Table { caption: caption.to_owned(), header: head, rows }
        })
    };
    match v {
        Value::Object(o) if o.values().all(|x| !x.is_object() && !x.is_array()) => {
            let rows: Vec<Vec<String>> = o.iter().map(|(k, x)| vec![k.clone(), cell(x)]).collect();
            (!rows.is_empty()).then(|| Table { caption: caption.to_owned(), header: Vec::new(), rows })
        }
        Value::Object(o) => rows_of(o.iter().map(|(k, x)| (Some(k.clone()), x)).collect()),
        Value::Array(a) if a.iter().all(Value::is_object) => rows_of(a.iter().map(|x| (None, x)).collect()),
        Value::Array(a) => {
            let rows: Vec<Vec<String>> = a.iter().map(|x| vec![cell(x)]).collect();
            (!rows.is_empty()).then(|| Table { caption: caption.to_owned(), header: Vec::new(), rows })
        }
        _ => None,
    }
}
