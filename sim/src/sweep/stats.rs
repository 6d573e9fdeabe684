//! Means with 95 % confidence intervals over seeds (Student t), grouping of runs, and the ranking
//! a sweep prints.
//!
//! The t quantile is computed, not tabulated: the regularized incomplete beta function (continued
//! fraction, as in Numerical Recipes) gives the t distribution's CDF, which bisection inverts. Sums
//! run in grid order, so the figures are the same whichever thread ran which seed.

use super::spec::{Best, Ranking};
use super::table::{Cell, Row};

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`0 < p < 1`, `df > 0`).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut hi = 2.0;
    while t_cdf(hi, df) < p && hi < 1e12 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Mean of a sample with its 95 % confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub sd: f64,
    /// Half width of the 95 % interval, `t(0.975, n−1) · sd / √n` (`None` for a single value).
    pub half_width: Option<f64>,
}

impl Estimate {
    /// The estimate of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Estimate { n, mean, sd: 0.0, half_width: None });
        }
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let half = t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt();
        Some(Estimate { n, mean, sd, half_width: Some(half) })
    }

    /// Whether the two 95 % intervals overlap (`None` when one has no interval).
    pub fn overlaps(&self, other: &Estimate) -> Option<bool> {
        let (a, b) = (self.half_width?, other.half_width?);
        Some(self.mean - a <= other.mean + b && other.mean - b <= self.mean + a)
    }

    /// `0.9812 ± 0.0021`: about four significant digits of the mean, at least two of the half width.
    pub fn display(&self) -> String {
        let mut d = decimals(self.mean.abs().max(self.half_width.unwrap_or(0.0)));
        if let Some(h) = self.half_width.filter(|h| *h > 0.0 && h.is_finite()) {
            d = d.max((1 - h.log10().floor() as i64).clamp(0, 6) as usize);
        }
        match self.half_width {
            Some(h) => format!("{:.d$} ± {:.d$}", self.mean, h),
            None => format!("{:.d$}", self.mean),
        }
    }
}

/// Decimals that show about four significant digits of `x`.
pub fn decimals(x: f64) -> usize {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    (3 - x.abs().log10().floor() as i64).clamp(0, 6) as usize
}

/// A number with about four significant digits.
pub fn num(x: f64) -> String {
    let d = decimals(x);
    format!("{x:.d$}")
}

/// Runs that differ only in their seed.
#[derive(Clone, Debug)]
pub struct Group {
    /// Scenario file, scenario name and parameter values (`key = value`): the ranking block.
    pub block: Vec<String>,
    /// Policy.
    pub policy: String,
    /// Indices of its rows.
    pub rows: Vec<usize>,
}

impl Group {
    /// Block and policy as one string, to match groups of two sweeps.
    pub fn key(&self) -> String {
        format!("{} · {}", self.block.join(" · "), self.policy)
    }

    /// The estimate of a column over the group's rows (nulls and text left out).
    pub fn estimate(&self, rows: &[Row], column: &str) -> Option<Estimate> {
        let v: Vec<f64> = self.rows.iter().filter_map(|&i| rows[i].get(column).and_then(Cell::as_f64)).collect();
        Estimate::of(&v)
    }
}

/// Groups rows by everything but the seed, in order of first appearance.
pub fn groups(rows: &[Row], params: &[String]) -> Vec<Group> {
    let text = |r: &Row, k: &str| r.get(k).map_or_else(|| "-".to_owned(), Cell::display);
    let mut out: Vec<Group> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let mut block = vec![format!("{} ({})", text(r, "scenario_file"), text(r, "scenario"))];
        block.extend(params.iter().map(|p| format!("{p} = {}", text(r, &format!("param.{p}")))));
        let policy = text(r, "policy");
        let key = (block.clone(), policy.clone());
        let g = *index.entry(key).or_insert_with(|| {
            out.push(Group { block, policy, rows: Vec::new() });
            out.len() - 1
        });
        out[g].rows.push(i);
    }
    out
}

/// The ranking: per scenario and parameter values, the policies ordered by `ranking.by`, each metric
/// as mean ± 95 % CI half width over seeds.
pub fn ranking_text(rows: &[Row], params: &[String], ranking: &Ranking) -> String {
    let gs = groups(rows, params);
    let mut blocks: Vec<(Vec<String>, Vec<&Group>)> = Vec::new();
    for g in &gs {
        match blocks.iter_mut().find(|(b, _)| *b == g.block) {
            Some((_, v)) => v.push(g),
            None => blocks.push((g.block.clone(), vec![g])),
        }
    }
    let arrow = match ranking.best {
        Best::Highest => "▼",
        Best::Lowest => "▲",
    };
    let mut out = String::new();
    let mut ranks: Vec<(String, Vec<f64>)> = Vec::new();
    for (block, mut members) in blocks {
        let seeds = members.iter().map(|g| g.rows.len()).max().unwrap_or(0);
        let key = |g: &Group| g.estimate(rows, &ranking.by).map(|e| e.mean);
        // Stable sort: ties keep grid order; groups without the metric go last.
        members.sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) => match ranking.best {
                Best::Highest => y.total_cmp(&x),
                Best::Lowest => x.total_cmp(&y),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        out.push_str(&format!(
            "{} · {} seed{} · mean ± 95% CI (Student t)\n",
            block.join(" · "),
            seeds,
            if seeds == 1 { "" } else { "s" }
        ));
        let mut header = vec!["rank".to_owned(), "policy".to_owned()];
        header
            .extend(ranking.metrics.iter().map(|m| if *m == ranking.by { format!("{m} {arrow}") } else { m.clone() }));
        let mut table = vec![header];
        let keys: Vec<Option<f64>> = members.iter().map(|g| key(g)).collect();
        for (i, g) in members.iter().enumerate() {
            // Equal means share a rank: the printed rank is the first of the tied places, the mean
            // rank below uses the average of the tied places (so ties do not favour file order).
            let first = keys.iter().position(|k| *k == keys[i]).unwrap_or(i);
            let last = keys.iter().rposition(|k| *k == keys[i]).unwrap_or(i);
            let mut line = vec![(first + 1).to_string(), g.policy.clone()];
            line.extend(
                ranking.metrics.iter().map(|m| g.estimate(rows, m).map_or_else(|| "-".to_owned(), |e| e.display())),
            );
            table.push(line);
            let place = (first + last) as f64 / 2.0 + 1.0;
            match ranks.iter_mut().find(|(p, _)| *p == g.policy) {
                Some((_, v)) => v.push(place),
                None => ranks.push((g.policy.clone(), vec![place])),
            }
        }
        out.push_str(&render(&table, 2));
        out.push('\n');
    }
    let nblocks = ranks.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    if nblocks > 1 && ranks.len() > 1 {
        let mut mean: Vec<(String, f64, usize)> =
            ranks.into_iter().map(|(p, v)| (p, v.iter().sum::<f64>() / v.len() as f64, v.len())).collect();
        mean.sort_by(|a, b| a.1.total_cmp(&b.1));
        out.push_str(&format!(
            "mean rank by {} over {nblocks} scenario/parameter blocks (ties share the average place)\n",
            ranking.by
        ));
        let mut table = vec![vec!["policy".to_owned(), "mean rank".to_owned(), "blocks".to_owned()]];
        for (p, r, n) in mean {
            table.push(vec![p, format!("{r:.2}"), n.to_string()]);
        }
        out.push_str(&render(&table, 1));
    }
    out
}

/// Lays out a table: the first `left` columns left-aligned, the others right-aligned.
pub fn render(table: &[Vec<String>], left: usize) -> String {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| table.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = width[c].saturating_sub(cell.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if c < left {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(block: &str, policy: &str, v: f64) -> Row {
        [
            ("scenario_file", Cell::S(block.into())),
            ("scenario", Cell::S(block.into())),
            ("policy", Cell::S(policy.into())),
            ("cost", Cell::F(v)),
        ]
        .into_iter()
        .map(|(k, c)| (k.to_owned(), c))
        .collect()
    }

    #[test]
    fn ranking_orders_policies_and_shares_tied_places() {
        let rows = vec![
            row("a", "p", 2.0),
            row("a", "p", 4.0),
            row("a", "q", 1.0),
            row("a", "q", 1.0),
            row("a", "r", 3.0),
            row("a", "r", 3.0),
            row("b", "p", 5.0),
            row("b", "q", 5.0),
            row("b", "r", 1.0),
        ];
        let r = Ranking { metrics: vec!["cost".into()], by: "cost".into(), best: Best::Lowest };
        let text = ranking_text(&rows, &[], &r);
        let a: Vec<&str> = text.lines().skip(2).take(3).collect();
        assert!(a[0].starts_with("1     q") && a[0].ends_with("1.000 ± 0.000"), "{text}");
        assert!(a[1].starts_with("2     p") && a[1].ends_with("3.00 ± 12.71"), "{text}");
        assert!(a[2].starts_with("2     r"), "p and r tie at 3: {text}");
        // Block b: r first, p and q tie for second; mean ranks: q (1 + 2.5) / 2, r (2.5 + 1) / 2, p 2.5.
        let mean_rank = |p: &str| {
            let line = text.lines().rev().find(|l| l.starts_with(&format!("{p} "))).unwrap_or_default();
            line.split_whitespace().nth(1).unwrap_or_default().to_owned()
        };
        assert_eq!((mean_rank("q"), mean_rank("r"), mean_rank("p")), ("1.75".into(), "1.75".into(), "2.50".into()));
    }
}
