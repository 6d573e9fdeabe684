//! Figures of the learning runs, drawn with the simulator's report code
//! ([`sim::report::plots`], plotters): training curves of the MLP (train and validation loss per
//! epoch) and of the REINFORCE bandit (mean sampled reward per epoch), and the drift experiment's
//! accuracy and cost ([`crate::online::figures`]).

use std::path::{Path, PathBuf};

use sim::report::figures::{Content, Figure, Rgb, Series};

use crate::mlp::Epoch;
use crate::{Error, Result};

/// Pixel size of every figure.
pub const SIZE: (u32, u32) = (960, 480);

/// Writes each figure as `<dir>/<id>.png` and `<dir>/<id>.svg`; returns the files written.
pub fn write_figures(figs: &[Figure], dir: &Path) -> Result<Vec<PathBuf>> {
    let err = |p: &Path, m: String| Error::Data { path: p.display().to_string(), message: m };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
    let mut out = Vec::new();
    for f in figs {
        let png = dir.join(format!("{}.png", f.id));
        let bytes = sim::report::plots::render_png(f, SIZE).map_err(|m| err(&png, m))?;
        std::fs::write(&png, bytes).map_err(|e| err(&png, format!("cannot write: {e}")))?;
        let svg = dir.join(format!("{}.svg", f.id));
        let text = sim::report::plots::render_svg(f, SIZE).map_err(|m| err(&svg, m))?;
        std::fs::write(&svg, text).map_err(|e| err(&svg, format!("cannot write: {e}")))?;
        out.extend([png, svg]);
    }
    Ok(out)
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1e-9) * 1e-3);
    (lo - pad, hi + pad)
}

/// The MLP's loss per epoch (standardised mean squared error), training and validation.
pub fn loss_curve(id: &str, curve: &[Epoch]) -> Figure {
    let x_range = (0.5, curve.len().max(1) as f64 + 0.5);
    let y_range = range(curve.iter().flat_map(|e| [e.train_loss, e.val_loss]));
    let line = |label: &str, color, f: fn(&Epoch) -> f64| Series {
        label: Some(label.into()),
        color,
        points: curve.iter().map(|e| (e.epoch as f64, f(e))).collect(),
    };
    Figure {
        id: id.into(),
        title: "MLP training curve".into(),
        x_label: "epoch".into(),
        y_label: "loss (MSE of the standardised cost per hour)".into(),
        x_range,
        y_range,
        content: Content::Lines {
            series: vec![
                line("training", Rgb(0, 120, 212), |e| e.train_loss),
                line("validation", Rgb(255, 153, 0), |e| e.val_loss),
            ],
            shades: Vec::new(),
        },
    }
}

/// The bandit's mean sampled reward per epoch.
pub fn reward_curve(id: &str, rewards: &[f64]) -> Figure {
    Figure {
        id: id.into(),
        title: "REINFORCE bandit: mean reward of the sampled placements".into(),
        x_label: "epoch".into(),
        y_label: "mean reward (higher is better)".into(),
        x_range: (0.5, rewards.len().max(1) as f64 + 0.5),
        y_range: range(rewards.iter().copied()),
        content: Content::Lines {
            series: vec![Series {
                label: Some("mean sampled reward".into()),
                color: Rgb(52, 168, 83),
                points: rewards.iter().enumerate().map(|(i, r)| ((i + 1) as f64, *r)).collect(),
            }],
            shades: Vec::new(),
        },
    }
}
