"""Forecast accuracy: MASE, sMAPE, interval coverage, and the retraining trigger.

- MASE: mean |actual - forecast| / in-sample mean |y_t - y_(t-24)| (seasonal naive scale, as M4).
- sMAPE: mean 200 |actual - forecast| / (|actual| + |forecast|), 0-200; 0/0 counts as 0.
- coverage: share of actuals inside [yhat_lower, yhat_upper].

``realised_accuracy`` scores stored forecasts against the actuals that have arrived, per series,
forecast run and model; ``retrain_flags`` marks series whose realised MASE is worse than their
backtest (CV) score by more than a margin. Pure functions on numpy arrays and polars frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

SERIES = ("game_type", "region", "metric")


def mase_scale(insample: Sequence[float] | np.ndarray, season: int = 24) -> float:
    """In-sample mean absolute seasonal difference (lag 1 for short series); NaN if 0."""
    x = np.asarray(insample, dtype=float)
    x = x[np.isfinite(x)]
    lag = season if x.size > season else 1
    if x.size <= lag:
        return math.nan
    scale = float(np.mean(np.abs(x[lag:] - x[:-lag])))
    return scale if scale > 0 else math.nan


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if a.size == 0 or not math.isfinite(scale) or scale <= 0:
        return math.nan
    return float(np.mean(np.abs(a - f)) / scale)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if a.size == 0:
        return math.nan
    denom = np.abs(a) + np.abs(f)
    safe = np.where(denom > 0, denom, 1.0)
    return float(np.mean(np.where(denom > 0, 200.0 * np.abs(a - f) / safe, 0.0)))


def coverage(actual: np.ndarray, lower: np.ndarray | float, upper: np.ndarray) -> float:
    """Share of ``actual`` inside [lower, upper]; ``lower=-inf`` for a one-sided upper bound."""
    a = np.asarray(actual, dtype=float)
    if a.size == 0:
        return math.nan
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    return float(np.mean((a >= lo) & (a <= hi)))


@dataclass(frozen=True)
class RetrainPolicy:
    margin: float = 0.25  # realised MASE > backtest * (1 + margin) triggers retraining
    min_points: int = 12  # hours of realised actuals needed before judging a series
    max_mase: float = 3.0  # realised MASE above this triggers whatever the backtest said


def realised_accuracy(
    forecasts: pl.DataFrame, actuals: pl.DataFrame, scales: pl.DataFrame
) -> pl.DataFrame:
    """Per (series, run_id, model): n, mase, smape, coverage, coverage_q90, first/last ts scored.

    ``forecasts``: game_type, region, metric, run_id, model, model_id, ts, yhat, yhat_lower,
    yhat_upper, yhat_q90 (may be null). ``actuals``: game_type, region, metric, ts, value (hourly).
    ``scales``: game_type, region, metric, run_id, scale (MASE denominator from history before
    the run's first forecast hour)."""
    keys = [*SERIES, "run_id", "model", "model_id"]
    joined = forecasts.join(actuals, on=[*SERIES, "ts"], how="inner").join(
        scales, on=[*SERIES, "run_id"], how="left"
    )
    if joined.height == 0:
        return pl.DataFrame(
            schema={
                **{k: pl.String for k in keys},
                "n": pl.Int64,
                "mase": pl.Float64,
                "smape": pl.Float64,
                "coverage": pl.Float64,
                "coverage_q90": pl.Float64,
                "first_ts": pl.Datetime("us"),
                "last_ts": pl.Datetime("us"),
            }
        )
    err = (pl.col("value") - pl.col("yhat")).abs()
    denom = pl.col("value").abs() + pl.col("yhat").abs()
    q90 = pl.coalesce(pl.col("yhat_q90"), pl.col("yhat_upper"))
    return (
        joined.group_by(keys)
        .agg(
            pl.len().alias("n"),
            (err.mean() / pl.col("scale").first()).alias("mase"),
            pl.when(denom > 0).then(200.0 * err / denom).otherwise(0.0).mean().alias("smape"),
            ((pl.col("value") >= pl.col("yhat_lower")) & (pl.col("value") <= pl.col("yhat_upper")))
            .cast(pl.Float64)
            .mean()
            .alias("coverage"),
            (pl.col("value") <= q90).cast(pl.Float64).mean().alias("coverage_q90"),
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
        )
        .with_columns(pl.col("n").cast(pl.Int64))
        .sort(keys)
    )


def retrain_flags(
    realised: pl.DataFrame, backtest: pl.DataFrame, policy: RetrainPolicy = RetrainPolicy()
) -> pl.DataFrame:
    """``realised`` (from ``realised_accuracy``) joined with ``backtest`` (model_id, backtest_mase)
    plus ``retrain`` (bool) and ``reason``. Runs with fewer than ``min_points`` actuals are never
    flagged."""
    out = realised.join(backtest, on="model_id", how="left")
    limit = pl.col("backtest_mase") * (1.0 + policy.margin)
    enough = pl.col("n") >= policy.min_points
    worse = pl.col("backtest_mase").is_not_null() & (pl.col("mase") > limit)
    awful = pl.col("mase") > policy.max_mase
    return out.with_columns(
        (enough & (worse | awful)).fill_null(False).alias("retrain"),
        pl.when(~enough)
        .then(pl.format("only {} actuals so far", pl.col("n")))
        .when(worse)
        .then(
            pl.format(
                "realised MASE {} > backtest {} x {}",
                pl.col("mase").round(3),
                pl.col("backtest_mase").round(3),
                pl.lit(1.0 + policy.margin),
            )
        )
        .when(awful)
        .then(pl.format("realised MASE {} > {}", pl.col("mase").round(3), pl.lit(policy.max_mase)))
        .otherwise(pl.lit("ok"))
        .alias("reason"),
    )
