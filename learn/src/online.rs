//! Online learning under drift: track a deployed model's accuracy over a sliding window of
//! outcomes as they become known, and retrain it on recent outcomes when the accuracy falls under
//! a threshold, inside the simulator.
//!
//! ## The model and its accuracy
//! The model is a logistic regression of spot interruption ([`Kind::Logistic`], target
//! [`engine::policy::learned::Target::InterruptionProbability`]): it is the model whose accuracy
//! has a plain meaning (a prediction `p ≥ 0.5` says "interrupted"), and the policy scores a spot
//! candidate by its price plus `p × interruption_cost_usd / life`, so a wrong model costs
//! interruptions. Every spot candidate of every first placement is one prediction (the model in
//! force at the decision scores all of them). Its outcome is the dataset's hindsight label
//! ([`crate::dataset`]): whether the chosen instance got a notice, or for the other candidates a
//! draw from the hazard the cloud applied. An outcome becomes **known** when the VM's life ends
//! (its release, or the end of the run): a model is only ever judged and retrained on outcomes
//! known by then.
//!
//! ## The loop ([`LearningConfig`], named as the `AISchedulingPolicy`'s `learningConfig`)
//! Every `retrainingInterval` of simulated time, the accuracy of the model in force is measured on
//! the last `accuracyWindow` known outcomes of decisions it made itself. If the window is full and
//! the accuracy is under `accuracyThreshold`, and `onlineLearning` is on, a new model is trained
//! (same kind, same hyper-parameters) on the spot outcomes known now of decisions taken in the
//! last `trainingWindow`, and decides from then on.
//!
//! The engine stays pure: retraining happens here, and the run is replayed with a
//! [`ModelSource::Schedule`] (model 0 from time 0, model 1 from the first retraining, ...). The
//! simulator is deterministic, so the replay is the same run as before up to the retraining, then
//! continues with the new model; [`run`] checks that the replayed prefix equals the first run's
//! decision for decision and fails otherwise. A run with `k` retrainings costs `k + 1` simulations.
//!
//! The static baseline is the same seed with the first model throughout. [`DriftRun`] holds both
//! runs' accuracy and spend over time; [`write_timeline`] writes them to Parquet and [`plot`] draws
//! accuracy and cost before and after the regime change and the retrainings.

use std::path::Path;
use std::sync::Arc;

use engine::policy::learned::{ModelSource, ScheduledModel};
use engine::{LearnedConfig, ModelArtifact, PolicyConfig, SimDuration, SimTime};
use sim::run::RunOptions;
use sim::scenario::{FaultKind, Scenario};

use crate::classic::{self, Kind, Params};
use crate::dataset::{self, Dataset, Penalties, Row};
use crate::{Error, Result};

/// The online-learning settings, in the `AISchedulingPolicy` `learningConfig` vocabulary
/// (camelCase keys in JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LearningConfig {
    /// Retrain when the accuracy falls (off: only track it).
    #[serde(default = "yes")]
    pub online_learning: bool,
    /// How often the accuracy is checked (a duration: `"30m"`).
    #[serde(default = "default_interval")]
    pub retraining_interval: String,
    /// Retrain when the window's accuracy is under this (0..1).
    #[serde(default = "default_threshold")]
    pub accuracy_threshold: f64,
    /// Outcomes in the sliding window.
    #[serde(default = "default_window")]
    pub accuracy_window: usize,
    /// Retrain on the outcomes of decisions taken this long before the retraining (`"2h"`).
    #[serde(default = "default_training_window")]
    pub training_window: String,
}

fn yes() -> bool {
    true
}
fn default_interval() -> String {
    "30m".into()
}
fn default_threshold() -> f64 {
    0.8
}
fn default_window() -> usize {
    300
}
fn default_training_window() -> String {
    "2h".into()
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            online_learning: true,
            retraining_interval: default_interval(),
            accuracy_threshold: default_threshold(),
            accuracy_window: default_window(),
            training_window: default_training_window(),
        }
    }
}

/// [`LearningConfig`] with its durations parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Checked {
    online: bool,
    interval: SimDuration,
    threshold: f64,
    window: usize,
    training_window: SimDuration,
}

impl LearningConfig {
    fn check(&self) -> Result<Checked> {
        let dur = |key: &str, text: &str| {
            SimDuration::parse(text).ok().filter(|d| *d > SimDuration::ZERO).ok_or_else(|| {
                Error::Input(format!("learningConfig.{key}: {text:?} is not a duration > 0 like \"30m\""))
            })
        };
        if !(self.accuracy_threshold.is_finite() && (0.0..=1.0).contains(&self.accuracy_threshold)) {
            return Err(Error::Input(format!(
                "learningConfig.accuracyThreshold: {} is not in [0, 1]",
                self.accuracy_threshold
            )));
        }
        if self.accuracy_window == 0 {
            return Err(Error::Input("learningConfig.accuracyWindow: must be at least 1".into()));
        }
        Ok(Checked {
            online: self.online_learning,
            interval: dur("retrainingInterval", &self.retraining_interval)?,
            threshold: self.accuracy_threshold,
            window: self.accuracy_window,
            training_window: dur("trainingWindow", &self.training_window)?,
        })
    }
}

/// Everything a drift experiment needs besides the scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftConfig {
    /// The online-learning settings.
    pub learning: LearningConfig,
    /// Seed of the evaluated runs.
    pub seed: u64,
    /// Seeds of the runs the first model is trained on.
    pub train_seeds: std::ops::Range<u64>,
    /// Behaviour policies of those runs (`None`: the scenario's own). Several, so that features
    /// that only reflect where one policy put the fleet (its share of a region, free slots) do
    /// not pass for risk.
    pub train_policies: Vec<Option<PolicyConfig>>,
    /// The first model learns from outcomes known by then (before the regime change).
    pub train_until: SimDuration,
    /// The policy's price of an interruption, $.
    pub interruption_cost_usd: f64,
    /// Hyper-parameters of the logistic regression.
    pub params: Params,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            learning: LearningConfig::default(),
            seed: 100,
            train_seeds: 1..3,
            train_policies: ["price-capacity-optimized", "lowest-price", "diversified", "cost-optimized"]
                .iter()
                .map(|p| PolicyConfig::default_for(p))
                .collect(),
            train_until: SimDuration::from_secs(6 * 3600),
            interruption_cost_usd: 0.5,
            params: Params::default(),
        }
    }
}

/// One prediction and its outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// When the decision was taken, s.
    pub decided_s: f64,
    /// When its outcome became known (the end of the VM's life), s.
    pub known_s: f64,
    /// The predicted interruption probability.
    pub p: f64,
    /// Whether it was interrupted.
    pub interrupted: bool,
    /// Which model of the schedule predicted it (0: the first).
    pub model: usize,
}

impl Outcome {
    fn correct(&self) -> bool {
        (self.p >= 0.5) == self.interrupted
    }
}

/// One retraining.
#[derive(Clone, Debug, PartialEq)]
pub struct Retraining {
    /// When, s.
    pub at_s: f64,
    /// The window's accuracy that triggered it.
    pub window_accuracy: f64,
    /// Spot outcomes it was trained on.
    pub train_rows: usize,
    /// Share of them interrupted.
    pub train_interrupted: f64,
}

/// One point of the timeline (at each of the scenario's samples).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Time, h.
    pub time_h: f64,
    /// Accuracy over the last `accuracyWindow` outcomes known by then, fixed model (`None`
    /// before any is known).
    pub accuracy_static: Option<f64>,
    /// The same with online learning.
    pub accuracy_online: Option<f64>,
    /// Long-term accuracy: over every outcome known by then, fixed model (the sliding window
    /// above is the short-term accuracy, as the seed's `shortTermAccuracy`/`longTermAccuracy`).
    pub long_term_static: Option<f64>,
    /// The same with online learning.
    pub long_term_online: Option<f64>,
    /// Spend rate $/h, fixed model.
    pub cost_rate_static: f64,
    /// Spend rate $/h, online.
    pub cost_rate_online: f64,
    /// Interruptions so far, fixed model.
    pub interruptions_static: u64,
    /// Interruptions so far, online.
    pub interruptions_online: u64,
    /// The model of the schedule in force online.
    pub model_online: usize,
}

/// Totals of one run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Total cost, $.
    pub cost_usd: f64,
    /// Availability.
    pub availability: f64,
    /// Spot interruptions.
    pub interruptions: u64,
    /// Accuracy of all predictions decided before the regime change (`None`: no prediction in
    /// the period, here and below).
    pub accuracy_before: Option<f64>,
    /// Accuracy of predictions decided from the regime change to the first retraining (the end
    /// when there is none).
    pub accuracy_drifted: Option<f64>,
    /// Accuracy of predictions decided from the first retraining to the end (for the fixed
    /// model: over the same period as the online run's).
    pub accuracy_after: Option<f64>,
    /// Cost of the period after the regime change, $ (integrated spend rate).
    pub cost_after_change_usd: f64,
    /// Short-term accuracy at the end: over the last `accuracyWindow` outcomes.
    pub short_term_accuracy: Option<f64>,
    /// Long-term accuracy at the end: over every outcome of the run.
    pub long_term_accuracy: Option<f64>,
}

/// A drift experiment's result.
#[derive(Clone, Debug)]
pub struct DriftRun {
    /// When the regime changes, s (the first fault's start; the scenario's end if none).
    pub change_s: f64,
    /// The retrainings, in order.
    pub retrainings: Vec<Retraining>,
    /// The timeline.
    pub points: Vec<Point>,
    /// Fixed model.
    pub static_totals: Totals,
    /// Online learning.
    pub online_totals: Totals,
    /// The models of the online schedule (the first is the initial model).
    pub models: Vec<ScheduledModel>,
}

fn learned(models: &[ScheduledModel], interruption_cost_usd: f64) -> PolicyConfig {
    let first = models[0].model.clone();
    let mut cfg = LearnedConfig::new((*first).clone());
    cfg.model = if models.len() == 1 { ModelSource::Loaded(first) } else { ModelSource::Schedule(models.to_vec()) };
    cfg.interruption_cost_usd = interruption_cost_usd;
    PolicyConfig::Learned(cfg)
}

/// Spot outcomes of a run, scored by the model of `models` in force at each decision, in row order.
fn outcomes(rows: &[Row], models: &[ScheduledModel]) -> Vec<Outcome> {
    rows.iter()
        .filter(|r| r.spot)
        .map(|r| {
            let at = SimTime((r.time_s * 1000.0).round() as u64);
            let k = models.partition_point(|m| m.from <= at).saturating_sub(1);
            Outcome {
                decided_s: r.time_s,
                known_s: r.time_s + r.life_h * 3600.0,
                p: models[k].model.predict(&r.features),
                interrupted: r.interrupted,
                model: k,
            }
        })
        .collect()
}

/// Accuracy of the last `window` outcomes known by `t` among `outcomes` passing `keep`, with how
/// many there were (`None` if none).
fn window_accuracy(
    outcomes: &[Outcome],
    by_known: &[usize],
    t: f64,
    window: usize,
    keep: impl Fn(&Outcome) -> bool,
) -> Option<(f64, usize)> {
    let known = by_known.partition_point(|&i| outcomes[i].known_s <= t);
    let picked: Vec<&Outcome> =
        by_known[..known].iter().rev().map(|&i| &outcomes[i]).filter(|o| keep(o)).take(window).collect();
    if picked.is_empty() {
        return None;
    }
    Some((picked.iter().filter(|o| o.correct()).count() as f64 / picked.len() as f64, picked.len()))
}

fn by_known(outcomes: &[Outcome]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..outcomes.len()).collect();
    idx.sort_by(|&a, &b| outcomes[a].known_s.total_cmp(&outcomes[b].known_s).then(a.cmp(&b)));
    idx
}

fn accuracy_of(outcomes: &[Outcome], keep: impl Fn(&Outcome) -> bool) -> Option<f64> {
    let (n, ok) =
        outcomes.iter().filter(|o| keep(o)).fold((0usize, 0usize), |(n, ok), o| (n + 1, ok + usize::from(o.correct())));
    (n > 0).then(|| ok as f64 / n as f64)
}

/// Trains the logistic model on the spot rows of `ds` selected by `keep`.
fn train_on(ds: &Dataset, keep: impl Fn(&Row) -> bool, params: &Params) -> Result<(ModelArtifact, usize, f64)> {
    let idx: Vec<usize> = (0..ds.rows.len()).filter(|&i| ds.rows[i].spot && keep(&ds.rows[i])).collect();
    let positive = idx.iter().filter(|&&i| ds.rows[i].interrupted).count() as f64 / idx.len().max(1) as f64;
    let t = classic::train(ds, Kind::Logistic, params, &idx, &idx)?;
    Ok((t.artifact, idx.len(), positive))
}

/// Runs the drift experiment on `scenario`.
pub fn run(scenario: &Scenario, cfg: &DriftConfig) -> Result<DriftRun> {
    let lc = cfg.learning.check()?;
    let penalties = Penalties::default();
    let end_s = scenario.duration.as_secs_f64();
    let change_s = scenario
        .faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::SpotStorm { .. }))
        .map(|f| f.at.as_secs_f64())
        .fold(f64::INFINITY, f64::min)
        .min(end_s);

    // The first model: the behaviour policies on the training seeds, outcomes known by `train_until`.
    let mut rows = Vec::new();
    for seed in cfg.train_seeds.clone() {
        for policy in &cfg.train_policies {
            let opts = RunOptions { seed: Some(seed), policy: policy.clone() };
            rows.extend(dataset::record_run(scenario, &opts, penalties)?.0);
        }
    }
    let until = cfg.train_until.as_secs_f64();
    let initial = Dataset { rows, meta: Default::default() };
    let (m0, _, _) = train_on(&initial, |r| r.time_s + r.life_h * 3600.0 <= until, &cfg.params)?;
    let mut models = vec![ScheduledModel { from: SimTime::ZERO, model: Arc::new(m0) }];

    let opts = |models: &[ScheduledModel]| RunOptions {
        seed: Some(cfg.seed),
        policy: Some(learned(models, cfg.interruption_cost_usd)),
    };
    let (static_rows, static_res) = dataset::record_run(scenario, &opts(&models), penalties)?;
    let static_out = outcomes(&static_rows, &models);

    // Online: check every interval; on a retraining, replay with the longer schedule.
    let mut retrainings = Vec::new();
    let (mut rows, mut res) = (static_rows.clone(), static_res.clone());
    let mut t = lc.interval.as_secs_f64();
    while lc.online && t < end_s {
        let out = outcomes(&rows, &models);
        let order = by_known(&out);
        let current = models.len() - 1;
        let judged = window_accuracy(&out, &order, t, lc.window, |o| o.model == current);
        match judged {
            Some((acc, n)) if n == lc.window && acc < lc.threshold => {
                let ds = Dataset { rows: rows.clone(), meta: Default::default() };
                let from = t - lc.training_window.as_secs_f64();
                let (m, n_rows, share) =
                    train_on(&ds, |r| r.time_s >= from && r.time_s + r.life_h * 3600.0 <= t, &cfg.params)?;
                retrainings.push(Retraining {
                    at_s: t,
                    window_accuracy: acc,
                    train_rows: n_rows,
                    train_interrupted: share,
                });
                models.push(ScheduledModel { from: SimTime((t * 1000.0).round() as u64), model: Arc::new(m) });
                let (new_rows, new_res) = dataset::record_run(scenario, &opts(&models), penalties)?;
                let prefix = |rs: &[Row]| {
                    rs.iter()
                        .filter(|r| r.time_s < t)
                        .map(|r| (r.vm, r.offer, r.features, r.chosen))
                        .collect::<Vec<_>>()
                };
                if prefix(&new_rows) != prefix(&rows) {
                    return Err(Error::Training {
                        model: "online".into(),
                        message: format!(
                            "the replay with the new model diverged before {t} s: the run is not deterministic"
                        ),
                    });
                }
                (rows, res) = (new_rows, new_res);
            }
            _ => {}
        }
        t += lc.interval.as_secs_f64();
    }
    let online_out = outcomes(&rows, &models);

    // Timeline at the scenario's samples.
    let (so, oo) = (by_known(&static_out), by_known(&online_out));
    let points = static_res
        .samples
        .iter()
        .zip(&res.samples)
        .map(|(a, b)| {
            let t = a.time_s;
            Point {
                time_h: t / 3600.0,
                accuracy_static: window_accuracy(&static_out, &so, t, lc.window, |_| true).map(|x| x.0),
                accuracy_online: window_accuracy(&online_out, &oo, t, lc.window, |_| true).map(|x| x.0),
                long_term_static: window_accuracy(&static_out, &so, t, usize::MAX, |_| true).map(|x| x.0),
                long_term_online: window_accuracy(&online_out, &oo, t, usize::MAX, |_| true).map(|x| x.0),
                cost_rate_static: a.cost_rate_usd_per_h.iter().sum::<f64>() + a.commitment_fees_usd_per_h,
                cost_rate_online: b.cost_rate_usd_per_h.iter().sum::<f64>() + b.commitment_fees_usd_per_h,
                interruptions_static: a.interruptions_total,
                interruptions_online: b.interruptions_total,
                model_online: models.partition_point(|m| m.from.as_secs_f64() <= t).saturating_sub(1),
            }
        })
        .collect::<Vec<_>>();

    let first_retrain = retrainings.first().map_or(end_s, |r| r.at_s);
    let cost_after = |online: bool| {
        let mut acc = 0.0;
        for w in points.windows(2) {
            if w[0].time_h * 3600.0 >= change_s {
                let rate = if online { w[0].cost_rate_online } else { w[0].cost_rate_static };
                acc += rate * (w[1].time_h - w[0].time_h);
            }
        }
        acc
    };
    let totals = |out: &[Outcome], order: &[usize], res: &sim::results::RunResults, online: bool| Totals {
        cost_usd: res.summary.total_cost_usd,
        availability: res.summary.availability,
        interruptions: res.summary.spot_interruptions,
        accuracy_before: accuracy_of(out, |o| o.decided_s < change_s),
        accuracy_drifted: accuracy_of(out, |o| o.decided_s >= change_s && o.decided_s < first_retrain),
        accuracy_after: accuracy_of(out, |o| o.decided_s >= first_retrain),
        cost_after_change_usd: cost_after(online),
        short_term_accuracy: window_accuracy(out, order, f64::INFINITY, lc.window, |_| true).map(|x| x.0),
        long_term_accuracy: accuracy_of(out, |_| true),
    };
    Ok(DriftRun {
        change_s,
        static_totals: totals(&static_out, &so, &static_res, false),
        online_totals: totals(&online_out, &oo, &res, true),
        retrainings,
        points,
        models,
    })
}

/// Writes the timeline as Parquet: `time_h`, `accuracy_static`, `accuracy_online` (short-term:
/// the sliding window; null before any outcome is known), `long_term_static`, `long_term_online`
/// (every outcome known so far), `cost_rate_static`, `cost_rate_online` ($/h), `interruptions_static`,
/// `interruptions_online` (so far), `model_online` (index in the schedule).
pub fn write_timeline(run: &DriftRun, path: &Path) -> Result<()> {
    use polars::prelude::*;
    let p = &run.points;
    let err = |m: String| Error::Data { path: path.display().to_string(), message: m };
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("time_h".into(), p.iter().map(|x| x.time_h).collect::<Vec<f64>>()),
        Column::new("accuracy_static".into(), p.iter().map(|x| x.accuracy_static).collect::<Vec<Option<f64>>>()),
        Column::new("accuracy_online".into(), p.iter().map(|x| x.accuracy_online).collect::<Vec<Option<f64>>>()),
        Column::new("long_term_static".into(), p.iter().map(|x| x.long_term_static).collect::<Vec<Option<f64>>>()),
        Column::new("long_term_online".into(), p.iter().map(|x| x.long_term_online).collect::<Vec<Option<f64>>>()),
        Column::new("cost_rate_static".into(), p.iter().map(|x| x.cost_rate_static).collect::<Vec<f64>>()),
        Column::new("cost_rate_online".into(), p.iter().map(|x| x.cost_rate_online).collect::<Vec<f64>>()),
        Column::new("interruptions_static".into(), p.iter().map(|x| x.interruptions_static).collect::<Vec<u64>>()),
        Column::new("interruptions_online".into(), p.iter().map(|x| x.interruptions_online).collect::<Vec<u64>>()),
        Column::new("model_online".into(), p.iter().map(|x| x.model_online as u32).collect::<Vec<u32>>()),
    ])
    .map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::create(path).map_err(|e| err(format!("cannot create: {e}")))?;
    polars::prelude::ParquetWriter::new(file).finish(&mut df).map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// The accuracy and cost figures: fixed model and online learning over time, the regime change
/// shaded, each retraining marked by a thin shade.
pub fn figures(run: &DriftRun, threshold: f64) -> Vec<sim::report::figures::Figure> {
    use sim::report::figures::{Content, Figure, Rgb, Series, Shade};
    let end_h = run.points.last().map_or(1.0, |p| p.time_h).max(1e-3);
    let mut shades =
        vec![Shade { from: run.change_s / 3600.0, to: end_h, label: "after the regime change".into(), outage: false }];
    for r in &run.retrainings {
        let h = r.at_s / 3600.0;
        shades.push(Shade { from: h, to: h + end_h / 150.0, label: "retraining".into(), outage: true });
    }
    let (fixed, online) = (Rgb(110, 110, 110), Rgb(0, 120, 212));
    let line = |label: &str, color, f: &dyn Fn(&Point) -> Option<f64>| Series {
        label: Some(label.into()),
        color,
        points: run.points.iter().filter_map(|p| f(p).map(|v| (p.time_h, v))).collect(),
    };
    let acc = Figure {
        id: "drift_accuracy".into(),
        title: format!("Interruption-model accuracy over the last outcomes (threshold {threshold})"),
        x_label: "time (h)".into(),
        y_label: "accuracy".into(),
        x_range: (0.0, end_h),
        y_range: (0.0, 1.0),
        content: Content::Lines {
            series: vec![
                line("fixed model", fixed, &|p| p.accuracy_static),
                line("online learning", online, &|p| p.accuracy_online),
                line("fixed model, long-term", Rgb(190, 190, 190), &|p| p.long_term_static),
                line("online learning, long-term", Rgb(120, 180, 235), &|p| p.long_term_online),
                Series {
                    label: Some("threshold".into()),
                    color: Rgb(220, 50, 47),
                    points: vec![(0.0, threshold), (end_h, threshold)],
                },
            ],
            shades: shades.clone(),
        },
    };
    let max_rate = run.points.iter().map(|p| p.cost_rate_static.max(p.cost_rate_online)).fold(0.0, f64::max);
    let cost = Figure {
        id: "drift_cost".into(),
        title: "Spend rate".into(),
        x_label: "time (h)".into(),
        y_label: "$/h".into(),
        x_range: (0.0, end_h),
        y_range: (0.0, (max_rate * 1.1).max(1e-3)),
        content: Content::Lines {
            series: vec![
                line("fixed model", fixed, &|p| Some(p.cost_rate_static)),
                line("online learning", online, &|p| Some(p.cost_rate_online)),
            ],
            shades,
        },
    };
    vec![acc, cost]
}

/// Draws [`figures`] into `dir` as PNG and SVG; returns the files written.
pub fn plot(run: &DriftRun, threshold: f64, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    crate::plots::write_figures(&figures(run, threshold), dir)
}
