//! `learn`: record datasets from simulated runs, train models, evaluate them against the
//! hand-written policies. Bad input (a scenario, a dataset, a model file, an option) exits with
//! status 2 and a message naming the file and what is wrong.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use engine::PolicyConfig;
use learn::classic::{self, Kind, Params};
use learn::dataset::{self, Dataset, Penalties};
use learn::{Error, evaluate, mlp};

#[derive(Parser)]
#[command(name = "learn", about = "Learned placement for NovaCron: datasets, training, evaluation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModelKind {
    Tree,
    Forest,
    Linear,
    Logistic,
    Mlp,
    Bandit,
    Boosted,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios and record one row per candidate of every first placement.
    Dataset {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seeds, `A..B` (B excluded) or one number.
        #[arg(long, default_value = "1..4")]
        seeds: String,
        /// Behaviour policies that make the real decisions (repeatable; default: each scenario's own).
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Dollars per spot interruption in the target.
        #[arg(long, default_value_t = Penalties::default().interruption_usd)]
        interruption_penalty: f64,
        /// Dollars per outage hitting the VM's location in the target.
        #[arg(long, default_value_t = Penalties::default().outage_usd)]
        outage_penalty: f64,
        /// Output Parquet file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a model on a dataset and write the engine's model artifact (JSON).
    Train {
        /// Dataset (Parquet from `learn dataset`).
        #[arg(long)]
        data: PathBuf,
        /// Which model.
        #[arg(long, value_enum)]
        model: ModelKind,
        /// Output artifact.
        #[arg(long)]
        out: PathBuf,
        /// Share of decisions held out for testing.
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Trees: cost classes.
        #[arg(long, default_value_t = Params::default().classes)]
        classes: usize,
        /// Trees: deepest level.
        #[arg(long, default_value_t = Params::default().max_depth)]
        max_depth: usize,
        /// Trees: least rows in a leaf.
        #[arg(long, default_value_t = Params::default().min_leaf)]
        min_leaf: f32,
        /// Forest: trees.
        #[arg(long, default_value_t = Params::default().trees)]
        trees: usize,
        /// Logistic: L2 penalty.
        #[arg(long, default_value_t = Params::default().alpha)]
        alpha: f64,
        /// MLP: hidden layer widths.
        #[arg(long, value_delimiter = ',', default_value = "128,64,32")]
        hidden: Vec<usize>,
        /// MLP: learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// MLP: batch size.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// MLP: most epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// MLP: share of training decisions for validation.
        #[arg(long, default_value_t = 0.1)]
        validation_split: f64,
        /// MLP: epochs without improvement before stopping.
        #[arg(long, default_value_t = 5)]
        patience: usize,
        /// MLP and bandit: training curve (Parquet, plotted beside it as PNG and SVG); default
        /// beside the artifact (`<out>.curve.parquet`).
        #[arg(long)]
        curve: Option<PathBuf>,
        /// Bandit: reward weights cost,performance,availability,energy.
        #[arg(long, value_delimiter = ',', default_value = "1,0,0.5,0")]
        reward_weights: Vec<f64>,
        /// Boosted: perpetual's budget (more budget, more and deeper trees).
        #[arg(long, default_value_t = learn::boosted::BoostedConfig::default().budget)]
        budget: f32,
        /// Seed (forest sampling, MLP initialisation and shuffling).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Time the engine's scoring of one decision with 100 candidates (rows of a dataset).
    Bench {
        /// Model artifact.
        #[arg(long)]
        model: PathBuf,
        /// Dataset to take candidate features from.
        #[arg(long)]
        data: PathBuf,
        /// Candidates per decision.
        #[arg(long, default_value_t = 100)]
        candidates: usize,
    },
    /// Online learning under drift: run a scenario with an interruption model, track its accuracy
    /// over a sliding window of outcomes, retrain when it falls under the threshold; compare with
    /// the fixed model. Writes `drift.parquet`, `drift_accuracy.png/svg`, `drift_cost.png/svg`,
    /// `summary.json` and the models into `--out`.
    Drift {
        /// The drift scenario.
        scenario: PathBuf,
        /// Seed of the compared runs.
        #[arg(long, default_value_t = learn::online::DriftConfig::default().seed)]
        seed: u64,
        /// Seeds the first model is trained on (scenario's own policy), `A..B`.
        #[arg(long, default_value = "1..3")]
        train_seeds: String,
        /// The first model learns from outcomes known by then.
        #[arg(long, default_value = "6h")]
        train_until: String,
        /// The AISchedulingPolicy's `learningConfig` as JSON (inline or a file), e.g.
        /// `{"onlineLearning": true, "retrainingInterval": "30m", "accuracyThreshold": 0.8,
        /// "accuracyWindow": 300, "trainingWindow": "2h"}`; missing keys take these defaults.
        #[arg(long)]
        learning_config: Option<String>,
        /// Dollars the policy charges a spot candidate per expected interruption.
        #[arg(long, default_value_t = 0.5)]
        interruption_cost: f64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run learned and hand-written policies on scenarios and compare them.
    Evaluate {
        /// Scenario files (not trained on).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seeds.
        #[arg(long, default_value = "100..110")]
        seeds: String,
        /// Model artifacts to run as `learned` policies (repeatable).
        #[arg(long = "model")]
        models: Vec<PathBuf>,
        /// Hand-written policies to compare with (repeatable).
        #[arg(long = "baseline", default_values_t = ["cost-optimized".to_string(), "balanced".to_string(), "price-capacity-optimized".to_string(), "lowest-price".to_string(), "capacity-optimized".to_string()])]
        baselines: Vec<String>,
        /// Penalties for the regret, as in the dataset.
        #[arg(long, default_value_t = Penalties::default().interruption_usd)]
        interruption_penalty: f64,
        /// See `--interruption-penalty`.
        #[arg(long, default_value_t = Penalties::default().outage_usd)]
        outage_penalty: f64,
        /// The SLA: a VM served less than this share of the time its owner wanted it after its
        /// first boot (or never running) is an SLA violation.
        #[arg(long, default_value_t = 0.99)]
        sla: f64,
        /// Also write every run's figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn policy(name: &str) -> Result<PolicyConfig, Error> {
    PolicyConfig::default_for(name).ok_or_else(|| {
        Error::Input(format!("no policy named {name:?}; policies are: {}", PolicyConfig::NAMES.join(", ")))
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Dataset { scenarios, seeds, policies, interruption_penalty, outage_penalty, out } => {
            let seeds = dataset::parse_seeds(&seeds)?;
            let scen = dataset::load_scenarios(&scenarios)?;
            let policies: Vec<Option<PolicyConfig>> = if policies.is_empty() {
                vec![None]
            } else {
                policies.iter().map(|p| policy(p).map(Some)).collect::<Result<_, _>>()?
            };
            let penalties = Penalties { interruption_usd: interruption_penalty, outage_usd: outage_penalty };
            let t = Instant::now();
            let ds = dataset::build(&scen, seeds, &policies, penalties)?;
            ds.write(&out)?;
            let decisions = ds.rows.iter().filter(|r| r.candidate == 0).count();
            println!(
                "{}: {} rows, {} decisions, {:.1} s (feature schema v{})",
                out.display(),
                ds.rows.len(),
                decisions,
                t.elapsed().as_secs_f64(),
                engine::policy::learned::FEATURE_SCHEMA_VERSION
            );
        }
        Cmd::Train {
            data,
            model,
            out,
            test_fraction,
            classes,
            max_depth,
            min_leaf,
            trees,
            alpha,
            hidden,
            lr,
            batch_size,
            epochs,
            validation_split,
            patience,
            curve,
            reward_weights,
            budget,
            seed,
        } => {
            if !(0.0..1.0).contains(&test_fraction) {
                return Err(Error::Input("--test-fraction must be in [0, 1)".into()).into());
            }
            let ds = Dataset::read(&data)?;
            let (train, test) = ds.split(test_fraction);
            let t = Instant::now();
            let (artifact, metrics) = match model {
                ModelKind::Mlp => {
                    let cfg = mlp::MlpConfig {
                        hidden_layers: hidden,
                        learning_rate: lr,
                        batch_size,
                        epochs,
                        validation_split,
                        patience,
                        seed,
                    };
                    let m = mlp::train(&ds, &cfg, &train, &test)?;
                    let curve = curve.unwrap_or_else(|| out.with_extension("curve.parquet"));
                    mlp::write_curve(&m.curve, &curve)?;
                    let files = learn::plots::write_figures(
                        &[learn::plots::loss_curve(&figure_id(&curve), &m.curve)],
                        curve.parent().unwrap_or(std::path::Path::new(".")),
                    )?;
                    println!("training curve: {} ({} epochs), {}", curve.display(), m.curve.len(), names(&files));
                    (m.artifact, m.metrics)
                }
                ModelKind::Boosted => {
                    let cfg = learn::boosted::BoostedConfig { budget, seed, ..Default::default() };
                    let m = learn::boosted::train(&ds, &cfg, &train, &test)?;
                    (m.artifact, m.metrics)
                }
                ModelKind::Bandit => {
                    let [cost, performance, availability, energy] = reward_weights[..] else {
                        return Err(Error::Input(
                            "--reward-weights takes four numbers: cost,performance,availability,energy".into(),
                        )
                        .into());
                    };
                    let cfg = learn::bandit::BanditConfig {
                        hidden_layers: hidden,
                        learning_rate: lr,
                        epochs,
                        weights: learn::bandit::RewardWeights { cost, performance, availability, energy },
                        seed,
                        ..Default::default()
                    };
                    let m = learn::bandit::train(&ds, &cfg, &train, &test)?;
                    println!(
                        "mean sampled reward per epoch: {:?}",
                        m.mean_reward.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>()
                    );
                    let curve = curve.unwrap_or_else(|| out.with_extension("curve.parquet"));
                    learn::bandit::write_curve(&m.mean_reward, &curve)?;
                    let files = learn::plots::write_figures(
                        &[learn::plots::reward_curve(&figure_id(&curve), &m.mean_reward)],
                        curve.parent().unwrap_or(std::path::Path::new(".")),
                    )?;
                    println!("reward curve: {}, {}", curve.display(), names(&files));
                    (m.artifact, m.metrics)
                }
                kind => {
                    let kind = match kind {
                        ModelKind::Tree => Kind::Tree,
                        ModelKind::Forest => Kind::Forest,
                        ModelKind::Linear => Kind::Linear,
                        _ => Kind::Logistic,
                    };
                    let p = Params { classes, max_depth, min_leaf, trees, alpha, seed, ..Params::default() };
                    let m = classic::train(&ds, kind, &p, &train, &test)?;
                    (m.artifact, m.metrics)
                }
            };
            let secs = t.elapsed().as_secs_f64();
            let json = serde_json::to_string(&artifact).context("serialising the model")?;
            std::fs::write(&out, json).with_context(|| format!("{}: cannot write", out.display()))?;
            println!(
                "{}: {} model, {} train rows, {:.1} s",
                out.display(),
                artifact.model.type_name(),
                train.len(),
                secs
            );
            for (k, v) in metrics {
                println!("  test {k:<26} {v:.6}");
            }
        }
        Cmd::Bench { model, data, candidates } => {
            let art = sim::scenario::load_model(&model).map_err(Error::Input)?;
            let ds = Dataset::read(&data)?;
            if ds.rows.is_empty() || candidates == 0 {
                return Err(Error::Input("need rows and at least one candidate".into()).into());
            }
            let rows: Vec<_> = ds.rows.iter().cycle().take(candidates).map(|r| r.features).collect();
            let cfg = engine::LearnedConfig::new(art.clone());
            let decide = || {
                let scores: Vec<f64> = rows.iter().map(|f| engine::policy::learned::score(&art, &cfg, f)).collect();
                engine::policy::learned::choose(scores.iter().zip(&rows).map(|(s, f)| (*s, f)))
            };
            let mut iters = 1u64;
            let per = loop {
                let t = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(decide());
                }
                let e = t.elapsed().as_secs_f64();
                if e > 0.5 {
                    break e / iters as f64;
                }
                iters *= 2;
            };
            println!(
                "{}: {} model, {candidates} candidates: {:.1} µs per decision ({:.0} ns per candidate), scoring only",
                model.display(),
                art.model.type_name(),
                per * 1e6,
                per * 1e9 / candidates as f64
            );
        }
        Cmd::Drift { scenario, seed, train_seeds, train_until, learning_config, interruption_cost, out } => {
            let learning: learn::online::LearningConfig = match learning_config {
                None => Default::default(),
                Some(text) => {
                    let (json, from) = if text.trim_start().starts_with('{') {
                        (text.clone(), "--learning-config".to_string())
                    } else {
                        let body = std::fs::read_to_string(&text)
                            .map_err(|e| Error::Input(format!("--learning-config {text}: cannot read: {e}")))?;
                        (body, text.clone())
                    };
                    serde_json::from_str(&json).map_err(|e| Error::Input(format!("{from}: learningConfig: {e}")))?
                }
            };
            let train_until = engine::SimDuration::parse(&train_until)
                .map_err(|_| Error::Input(format!("--train-until {train_until:?}: expected a duration like 6h")))?;
            let cfg = learn::online::DriftConfig {
                learning,
                seed,
                train_seeds: dataset::parse_seeds(&train_seeds)?,
                train_until,
                interruption_cost_usd: interruption_cost,
                ..Default::default()
            };
            let s = sim::scenario::load(&scenario).map_err(Error::from)?;
            let t = Instant::now();
            let run = learn::online::run(&s, &cfg)?;
            std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
            learn::online::write_timeline(&run, &out.join("drift.parquet"))?;
            let files = learn::online::plot(&run, cfg.learning.accuracy_threshold, &out)?;
            for (i, m) in run.models.iter().enumerate() {
                let path = out.join(format!("model-{i}.json"));
                let json = serde_json::to_string(&*m.model).context("serialising a model")?;
                std::fs::write(&path, json).with_context(|| format!("{}: cannot write", path.display()))?;
            }
            let summary = serde_json::json!({
                "scenario": scenario.display().to_string(),
                "seed": seed,
                "learningConfig": cfg.learning,
                "regime_change_s": run.change_s,
                "retrainings": run.retrainings.iter().map(|r| serde_json::json!({
                    "at_s": r.at_s, "window_accuracy": r.window_accuracy,
                    "train_rows": r.train_rows, "train_interrupted": r.train_interrupted,
                })).collect::<Vec<_>>(),
                "fixed": run.static_totals,
                "online": run.online_totals,
            });
            let path = out.join("summary.json");
            std::fs::write(&path, serde_json::to_string_pretty(&summary).context("summary")?)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            println!("{}", serde_json::to_string_pretty(&summary).context("summary")?);
            println!(
                "{:.1} s; wrote {}, {}",
                t.elapsed().as_secs_f64(),
                out.join("drift.parquet").display(),
                names(&files)
            );
        }
        Cmd::Evaluate { scenarios, seeds, models, baselines, interruption_penalty, outage_penalty, sla, json } => {
            if !(sla.is_finite() && (0.0..=1.0).contains(&sla)) {
                return Err(
                    Error::Input(format!("--sla {sla}: the availability target must be in [0, 1], e.g. 0.99")).into()
                );
            }
            let seeds = dataset::parse_seeds(&seeds)?;
            let scen = dataset::load_scenarios(&scenarios)?;
            let mut policies = Vec::new();
            for b in &baselines {
                policies.push((b.clone(), policy(b)?));
            }
            for m in &models {
                let art = sim::scenario::load_model(m).map_err(Error::Input)?;
                let label = format!("learned:{}", m.file_stem().and_then(|s| s.to_str()).unwrap_or("model"));
                policies.push((label, PolicyConfig::Learned(engine::LearnedConfig::new(art))));
            }
            let penalties = Penalties { interruption_usd: interruption_penalty, outage_usd: outage_penalty };
            let runs = evaluate::run_all(&scen, seeds, &policies, penalties, sla)?;
            print!("{}", evaluate::table(&runs));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&runs).context("serialising runs")?;
                std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
            }
        }
    }
    Ok(())
}

/// A figure's file stem from a curve file (`out/mlp.curve.parquet` → `mlp.curve`).
fn figure_id(curve: &std::path::Path) -> String {
    curve.file_stem().and_then(|s| s.to_str()).unwrap_or("curve").to_string()
}

fn names(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let input = matches!(
                e.downcast_ref::<Error>(),
                Some(Error::Input(_) | Error::Scenario(_) | Error::Data { .. } | Error::Sim(sim::Error::Scenario(_)))
            );
            if input { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
