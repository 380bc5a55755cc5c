"""M4-style forecast scoring: sMAPE, MASE and interval coverage, averaged over series.

Conventions (as in the M4 competition, Makridakis et al. 2020):

- sMAPE = mean over the horizon of 200 * |y - f| / (|y| + |f|), on a 0-200 scale; a step where
  both y and f are 0 counts as 0 error.
- MASE  = mean |y - f| over the horizon divided by the in-sample mean |y_t - y_(t-m)| (seasonal
  naive with period m = 24 for hourly data).
- Both are computed per series, then averaged (unweighted) over series.

Pure functions on numpy arrays and polars frames; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def smape(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray) -> float:
    """M4 sMAPE of one series (0-200 scale)."""
    y = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if y.shape != f.shape or y.size == 0:
        raise ValueError(
            f"actual and forecast must be non-empty and equal length: {y.shape} {f.shape}"
        )
    denom = np.abs(y) + np.abs(f)
    err = np.where(denom > 0, 200.0 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(err.mean())


def mase_scale(insample: Sequence[float] | np.ndarray, season: int = 24) -> float:
    """In-sample mean absolute seasonal difference: the MASE denominator."""
    x = np.asarray(insample, dtype=float)
    x = x[~np.isnan(x)]
    if x.size <= season:
        raise ValueError(
            f"need more than {season} in-sample values for the MASE scale, got {x.size}"
        )
    return float(np.mean(np.abs(x[season:] - x[:-season])))


def mase(
    actual: Sequence[float] | np.ndarray,
    forecast: Sequence[float] | np.ndarray,
    insample: Sequence[float] | np.ndarray,
    season: int = 24,
) -> float:
    """M4 MASE of one series (seasonal-naive in-sample scale with period `season`)."""
    y = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if y.shape != f.shape or y.size == 0:
        raise ValueError(
            f"actual and forecast must be non-empty and equal length: {y.shape} {f.shape}"
        )
    scale = mase_scale(insample, season)
    if scale == 0:
        return float("inf") if np.any(y != f) else 0.0
    return float(np.mean(np.abs(y - f)) / scale)


def score_frame(
    forecasts: pl.DataFrame,
    actuals: pl.DataFrame,
    history: pl.DataFrame,
    *,
    season: int = 24,
    interval_columns: Sequence[tuple[str, str | None, str | None]] = (),
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Score long-format forecasts against actuals, M4 style.

    forecasts: `unique_id, ds, yhat` (+ any interval columns); actuals: `unique_id, ds, y` for the
    horizon; history: `unique_id, ds, y` in-sample (for the MASE scale).
    interval_columns: (name, lower_col, upper_col) triples; coverage = share of actuals with
    lower <= y <= upper (a None side is unbounded), pooled over all points.

    Returns (per-series frame `unique_id, smape, mase`, summary dict with `smape`, `mase`,
    `n_series` and `coverage_<name>` for each interval). Every actual must have a forecast.
    """
    joined = actuals.select("unique_id", "ds", "y").join(
        forecasts, on=["unique_id", "ds"], how="left"
    )
    missing = joined.filter(pl.col("yhat").is_null() | pl.col("yhat").is_nan())
    if missing.height:
        raise ValueError(
            f"{missing.height} actuals have no forecast (first: {missing.row(0, named=True)});"
            " forecast every (unique_id, ds) of the horizon"
        )
    joined = joined.sort("unique_id", "ds")
    hist = history.sort("unique_id", "ds")
    hist_by_id = {
        uid: g["y"].to_numpy() for (uid,), g in hist.group_by("unique_id", maintain_order=True)
    }
    rows = []
    for (uid,), g in joined.group_by("unique_id", maintain_order=True):
        y = g["y"].to_numpy()
        f = g["yhat"].to_numpy()
        if uid not in hist_by_id:
            raise ValueError(f"series {uid!r} has no history for the MASE scale")
        rows.append((uid, smape(y, f), mase(y, f, hist_by_id[uid], season)))
    per_series = pl.DataFrame(
        rows, schema={"unique_id": pl.String, "smape": pl.Float64, "mase": pl.Float64}, orient="row"
    )
    summary: dict[str, float] = {
        "smape": float(per_series["smape"].to_numpy().mean()),
        "mase": float(per_series["mase"].to_numpy().mean()),
        "n_series": float(per_series.height),
    }
    for name, lo, hi in interval_columns:
        ok = pl.lit(True)
        if lo is not None:
            ok = ok & (pl.col("y") >= pl.col(lo))
        if hi is not None:
            ok = ok & (pl.col("y") <= pl.col(hi))
        summary[f"coverage_{name}"] = float(joined.select(ok.cast(pl.Float64).mean()).item())
    return per_series, summary
