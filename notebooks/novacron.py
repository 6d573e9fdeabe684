"""Shared helpers of the NovaCron notebooks: loading a results folder, checking it against the
columns the notebooks use (docs/results.md is the contract), provider colours and common plots.

Kept in a plain module so that every notebook draws the same provider in the same colour and reads
the tables the same way; import it from a notebook opened in this folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

#: Providers in the order the simulator reports them.
PROVIDERS = ("aws", "azure", "gcp", "onprem")

#: One stable colour per provider, used by every figure.
PROVIDER_COLORS = {
    "aws": "#ff9900",
    "azure": "#0078d4",
    "gcp": "#34a853",
    "onprem": "#7f7f7f",
}

#: Commitment fees (reserved instances, savings plans) in cost figures.
FEES_COLOR = "#c7c7c7"

#: Columns (and polars types) the notebooks read, per table; see docs/results.md.
COLUMNS = {
    "vms": {
        "vm_id": pl.UInt64,
        "arrival_s": pl.Float64,
        "lifetime_s": pl.Float64,
        "status": pl.String,
        "provider": pl.String,
        "region": pl.String,
        "market": pl.String,
        "first_running_s": pl.Float64,
        "end_s": pl.Float64,
        "failovers": pl.UInt32,
        "served_s": pl.Float64,
        "requested_s": pl.Float64,
        "cost_usd": pl.Float64,
    },
    "timeseries": {
        "time_s": pl.Float64,
        "serving_vms": pl.UInt64,
        **{f"instances_{p}": pl.UInt64 for p in PROVIDERS},
        **{f"cost_rate_{p}_usd_per_h": pl.Float64 for p in PROVIDERS},
        "commitment_fees_usd_per_h": pl.Float64,
        "failovers_total": pl.UInt64,
        "interruptions_total": pl.UInt64,
        "billed_usd": pl.Float64,
    },
    "spot_prices": {
        "time_s": pl.Float64,
        "offer": pl.String,
        "provider": pl.String,
        "price_usd_per_h": pl.Float64,
    },
    "failovers": {
        "time_s": pl.Float64,
        "deployment": pl.String,
        "from": pl.String,
        "to": pl.String,
        "reason": pl.String,
        "time_to_detect_s": pl.Float64,
        "time_to_recover_s": pl.Float64,
    },
    "deployments": {
        "time_s": pl.Float64,
        "deployment": pl.String,
        "replicas_wanted": pl.UInt32,
        "replicas_running": pl.UInt32,
        "cost_rate_usd_per_h": pl.Float64,
    },
}

#: Keys of summary.json the notebooks read.
SUMMARY_KEYS = (
    "scenario",
    "seed",
    "policy",
    "duration_s",
    "total_cost_usd",
    "cost_by_provider_usd",
    "commitment_fees_usd",
    "availability",
    "requests_total",
    "requests_served",
    "requests_rejected",
    "failovers",
    "mean_time_to_recover_s",
    "p99_time_to_recover_s",
    "faults",
    "deployments",
)


def results_dir(default: str) -> Path:
    """The results folder: `$NOVACRON_RESULTS`, else `default` (relative to this folder)."""
    d = Path(os.environ.get("NOVACRON_RESULTS", default))
    if not (d / "summary.json").is_file():
        raise FileNotFoundError(
            f"{d.resolve()} holds no simulator results (no summary.json): run e.g. "
            "`cargo run -p sim -- scenarios/burst.toml` from the repository root, "
            "or point NOVACRON_RESULTS at a folder written by `sim run`"
        )
    return d


def check_summary(summary: dict, where: str = "summary.json") -> None:
    """Fails with the missing keys if summary.json lacks one the notebooks read."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing, f"{where} lacks {missing} (see docs/results.md)"


def check_table(name: str, df: pl.DataFrame) -> None:
    """Fails if a table lacks a column the notebooks read, or has it with another type."""
    problems = []
    for col, dtype in COLUMNS[name].items():
        if col not in df.columns:
            problems.append(f"missing column {col!r}")
        elif df.schema[col] != dtype:
            problems.append(f"{col!r} is {df.schema[col]}, expected {dtype}")
    assert not problems, f"{name}.parquet: " + "; ".join(problems) + " (see docs/results.md)"


@dataclass
class Results:
    """One run's outputs, as written by `sim run`."""

    dir: Path
    summary: dict
    vms: pl.DataFrame
    timeseries: pl.DataFrame
    spot_prices: pl.DataFrame
    failovers: pl.DataFrame
    deployments: pl.DataFrame

    @property
    def title(self) -> str:
        s = self.summary
        return f"{s['scenario']} (policy {s['policy']}, seed {s['seed']})"


def load(d: Path) -> Results:
    """Reads every table of a results folder and checks the columns the notebooks use."""
    summary = json.loads((d / "summary.json").read_text())
    check_summary(summary, str(d / "summary.json"))
    tables = {}
    for name in COLUMNS:
        path = d / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: these results predate it, run `sim run` again")
        df = pl.read_parquet(path)
        check_table(name, df)
        tables[name] = df
    return Results(dir=d, summary=summary, **tables)


def providers_used(r: Results) -> list[str]:
    """Providers that ran an instance or cost something at some sample, in the usual order."""
    ts = r.timeseries
    return [
        p
        for p in PROVIDERS
        if ts[f"instances_{p}"].max() > 0 or ts[f"cost_rate_{p}_usd_per_h"].max() > 0
    ]


def region_provider(r: Results, region: str) -> str | None:
    """The provider of a region: as the run's VMs or spot prices show it, else from a name that
    starts with a provider's (`aws-us-east-1`, as in the shipped scenarios); None if unknown."""
    known = r.vms.select("region", "provider").drop_nulls().unique().rows()
    known += (
        r.spot_prices.select(pl.col("offer").str.split("/").list.first().alias("region"), "provider").unique().rows()
    )
    for name, provider in known:
        if name == region:
            return provider
    return next((p for p in PROVIDERS if region.startswith(f"{p}-")), None)


def hours(col: str = "time_s") -> pl.Expr:
    """A seconds column as hours, the time unit of every figure."""
    return pl.col(col) / 3600.0


def shade_faults(ax, summary: dict, label: bool = True) -> None:
    """Shades the run's fault windows (summary.json `faults`) on an axis whose x is in hours."""
    for i, w in enumerate(summary["faults"]):
        ax.axvspan(
            w["start_s"] / 3600.0,
            w["end_s"] / 3600.0,
            color="#d62728",
            alpha=0.08,
            label="fault window" if label and i == 0 else None,
        )


def availability_over_time(r: Results) -> pl.DataFrame:
    """VMs serving over VMs wanted at each sample time.

    A VM is wanted from its arrival until its lifetime ends (or the run does), whether or not it was
    served, as in summary.json's availability; at samples where none is wanted the value is null.
    """
    duration = r.summary["duration_s"]
    arrivals = np.sort(r.vms["arrival_s"].to_numpy())
    ends = np.sort(
        np.minimum(
            r.vms["arrival_s"].to_numpy() + r.vms["lifetime_s"].fill_null(math.inf).to_numpy(),
            duration,
        )
    )
    t = r.timeseries["time_s"].to_numpy()
    wanted = np.searchsorted(arrivals, t, side="right") - np.searchsorted(ends, t, side="left")
    return r.timeseries.select("time_s", "serving_vms").with_columns(
        wanted_vms=pl.Series(wanted, dtype=pl.UInt64),
    ).with_columns(
        availability=pl.when(pl.col("wanted_vms") > 0)
        .then(pl.col("serving_vms") / pl.col("wanted_vms"))
        .otherwise(None),
    )


def time_to_recover(vms: pl.DataFrame) -> pl.DataFrame:
    """Per VM that failed over: its time without service after it first ran, per failover.

    vms.parquet has no row per loss of service, but `requested_s - served_s` is the VM's time without
    service, of which `first_running_s - arrival_s` was spent waiting for its first instance; what
    is left was lost to failures. For a VM that failed over once this is exactly its time to
    recover; for more, the mean of its recoveries.
    """
    return (
        vms.filter(pl.col("failovers") > 0)
        .with_columns(
            time_to_recover_s=(
                pl.col("requested_s") - pl.col("served_s") - (pl.col("first_running_s") - pl.col("arrival_s"))
            )
            / pl.col("failovers")
        )
        .select("vm_id", "provider", "failovers", "time_to_recover_s")
    )


def plot_cdf(ax, values, label: str, color: str | None = None) -> None:
    """An empirical CDF as a step line."""
    x = np.sort(np.asarray(values, dtype=float))
    y = np.arange(1, len(x) + 1) / len(x)
    ax.step(np.concatenate([[x[0]], x]), np.concatenate([[0.0], y]), where="post", label=label, color=color)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fraction of VMs")


def plot_ttr_cdf(ax, r: Results) -> pl.DataFrame:
    """CDF of time to recover (from vms.parquet), one line per provider of first placement, with
    summary.json's mean and p99 as reference lines. Returns the per-VM table."""
    ttr = time_to_recover(r.vms)
    ax.set_title("Time to recover after a loss of service")
    ax.set_xlabel("time to recover (s)")
    if ttr.height == 0:
        ax.text(0.5, 0.5, "no VM lost service in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel("fraction of VMs")
        return ttr
    if ttr["provider"].n_unique() > 1:
        plot_cdf(ax, ttr["time_to_recover_s"], f"all ({ttr.height} VMs)", color="black")
    for p in PROVIDERS:
        part = ttr.filter(pl.col("provider") == p)
        if part.height:
            plot_cdf(ax, part["time_to_recover_s"], f"{p} ({part.height})", color=PROVIDER_COLORS[p])
    s = r.summary
    for key, style in (("mean_time_to_recover_s", "--"), ("p99_time_to_recover_s", ":")):
        if s[key] is not None:
            ax.axvline(s[key], color="black", linestyle=style, linewidth=1, label=f"{key.split('_')[0]} (summary.json)")
    ax.legend(loc="lower right")
    return ttr


# Student's t quantile t(0.975, df) for df = 1..30; above 30 the normal 1.96 is close enough.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """Two-sided 95 % Student t quantile for `df` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci95(df: pl.DataFrame, by: str, cols: list[str]) -> pl.DataFrame:
    """Per value of `by`: `n`, and for each column `{col}_mean` and `{col}_ci95`, the half-width of
    a 95 % Student t confidence interval of the mean over the group's rows (e.g. seeds)."""
    out = df.group_by(by, maintain_order=True).agg(
        pl.len().alias("n"),
        *[pl.col(c).mean().alias(f"{c}_mean") for c in cols],
        *[pl.col(c).std(ddof=1).alias(f"{c}_std") for c in cols],
    )
    t = pl.Series("t", [t975(n - 1) for n in out["n"]], dtype=pl.Float64)
    return out.with_columns(
        [(pl.col(f"{c}_std") / pl.col("n").sqrt() * t).alias(f"{c}_ci95") for c in cols]
    ).drop([f"{c}_std" for c in cols])


def style() -> None:
    """The notebooks' matplotlib defaults: readable sizes, light grid."""
    plt.rcParams.update(
        {
            "figure.figsize": (10, 4.5),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )
