"""Local forecasters for one hourly series: seasonal naive (daily, weekly) and statsforecast MSTL.

Every forecaster here follows the candidate interface of ``models.selection``:

- ``fit(history, events) -> dict``: a JSON-able model (spec, training window, fitted state).
  Nothing here keeps fitted state worth storing: the seasonal naive and MSTL refit fast from the
  history at forecast time, so the stored model is the spec plus the training window.
- ``predict(model, history, horizon, events) -> pandas.DataFrame``: columns ``ds, yhat,
  yhat_lower, yhat_upper, yhat_q90`` for the ``horizon`` hours after ``history``'s last ``ds``.

``history`` is a pandas frame ``ds, y`` on a regular hourly grid (see ``regularize``). Pure
functions: no I/O, arguments never mutated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from models.hourly import DAY, fill_gaps, to_hourly

HOUR = pd.Timedelta(hours=1)
DEFAULT_LEVEL = 80  # two-sided interval level (%): yhat_lower = q10, yhat_upper = q90


def z_for(quantile: float) -> float:
    return NormalDist().inv_cdf(quantile)


def regularize(history: pd.DataFrame) -> pd.DataFrame:
    """``ds, y`` on a complete hourly grid from the first to the last hour with a value:
    timestamps floored to the hour (mean of duplicates), missing hours filled from the past only
    (``models.hourly.fill_gaps``: a filled hour never depends on a later one). A new frame."""
    if history.empty:
        return pd.DataFrame({"ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float)})
    start, y = to_hourly(pd.to_datetime(history["ds"]).to_numpy(), history["y"].to_numpy(float))
    if start is None:
        return pd.DataFrame({"ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float)})
    grid = pd.date_range(pd.Timestamp(start), periods=y.size, freq="h")
    return pd.DataFrame({"ds": grid, "y": fill_gaps(y)})


def seasonal_naive(y: np.ndarray, horizon: int, season: int = DAY) -> np.ndarray:
    """The seasonal naive forecast: the last ``season`` values repeated over ``horizon`` steps
    (the last value repeated when the history is shorter; zeros when it is empty)."""
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        return np.zeros(horizon)
    if y.size < season:
        return np.full(horizon, float(y[-1]))
    return np.resize(y[-season:], horizon)


def future_index(last: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
    """The ``horizon`` hours after ``last``."""
    return pd.date_range(pd.Timestamp(last) + HOUR, periods=horizon, freq="h")


def is_multiplicative(y: np.ndarray) -> bool:
    """Strictly positive with a wide daily swing (5%/95% quantiles more than 1.5x apart): seasonal
    amplitude then scales with the level, so model on the log scale."""
    y = np.asarray(y, dtype=float)
    if y.size == 0 or not np.all(np.isfinite(y)) or np.min(y) <= 0:
        return False
    lo, hi = np.quantile(y, [0.05, 0.95])
    return bool(hi / lo > 1.5)


def frame_from(
    ds: pd.DatetimeIndex,
    mean: np.ndarray,
    sigma: np.ndarray,
    *,
    level: int = DEFAULT_LEVEL,
    log: bool = False,
    nonnegative: bool = False,
) -> pd.DataFrame:
    """Forecast frame from a mean and a per-step standard deviation (normal errors, on the log
    scale when ``log``)."""
    z_hi = z_for(0.5 + level / 200.0)
    z90 = z_for(0.90)
    lower, upper, q90 = mean - z_hi * sigma, mean + z_hi * sigma, mean + z90 * sigma
    if log:
        mean, lower, upper, q90 = np.exp(mean), np.exp(lower), np.exp(upper), np.exp(q90)
    if nonnegative:
        mean, lower, upper, q90 = (clip_negative(v) for v in (mean, lower, upper, q90))
    return pd.DataFrame(
        {"ds": ds, "yhat": mean, "yhat_lower": lower, "yhat_upper": upper, "yhat_q90": q90}
    )


def clip_negative(values: np.ndarray) -> np.ndarray:
    """Negative values set to 0, NaN and -0.0 kept: pandas' ``clip(lower=0.0)`` on an array
    (a thousandth of its cost, which dominated the seasonal naive candidates' CV)."""
    v = np.asarray(values, dtype=float)
    return np.where(v < 0.0, 0.0, v)


def _window(history: pd.DataFrame) -> dict[str, Any]:
    return {
        "train_start": pd.Timestamp(history["ds"].iloc[0]).isoformat(),
        "train_end": pd.Timestamp(history["ds"].iloc[-1]).isoformat(),
        "n_obs": len(history),
    }


@dataclass(frozen=True)
class SeasonalNaive:
    """Same hour one season ago (24 = yesterday, 168 = last week). Intervals from the spread of
    the in-sample seasonal differences, widened with the number of seasons ahead."""

    season: int = 24
    level: int = DEFAULT_LEVEL

    @property
    def name(self) -> str:
        return f"snaive{self.season}"

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        y = history["y"].to_numpy(dtype=float)
        if y.size < self.season:
            raise ValueError(
                f"{self.name} needs at least {self.season} hours of history, got {y.size}"
            )
        return {"kind": self.name, "season": self.season, "level": self.level, **_window(history)}

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        m = int(model.get("season", self.season))
        y = history["y"].to_numpy(dtype=float)
        if y.size < m:
            raise ValueError(f"{self.name} needs at least {m} hours of history, got {y.size}")
        steps = np.arange(horizon)
        mean = seasonal_naive(y, horizon, m)
        diffs = y[m:] - y[:-m] if y.size > m else np.array([0.0])
        sigma1 = float(np.nanstd(diffs)) if diffs.size > 1 else 0.0
        sigma = sigma1 * np.sqrt(steps // m + 1)
        return frame_from(
            future_index(history["ds"].iloc[-1], horizon),
            mean,
            sigma,
            level=int(model.get("level", self.level)),
            nonnegative=bool(np.nanmin(y) >= 0),
        )


def stl_jumps(seasons: list[int]) -> dict[str, int]:
    """R's ``stl`` defaults for the loess steps (``s.jump``, ``t.jump``, ``l.jump``: the loess is
    evaluated at every ``ceil(window / 10)``-th point, linear in between) for the windows of the
    longest of ``seasons`` as statsforecast's MSTL decomposes it (seasonal window ``7 + 4k`` for
    the k-th season, statsmodels' default trend and low-pass windows), used for every season.
    statsmodels' STL defaults to 1 (the loess at every point): a weekly STL of 720 hours costs
    0.17 s of CPU that way, 0.015 s with these steps."""
    period = max(seasons)
    seasonal = 7 + 4 * len(seasons)
    trend = math.ceil(1.5 * period / (1 - 1.5 / seasonal))
    trend += trend % 2 == 0
    low_pass = period + 1 + (period % 2 == 1)
    return {
        "seasonal_jump": math.ceil(seasonal / 10),
        "trend_jump": math.ceil(trend / 10),
        "low_pass_jump": math.ceil(low_pass / 10),
    }


@dataclass(frozen=True)
class MSTLForecaster:
    """statsforecast MSTL with daily and weekly seasons (weekly only with two weeks of data), on the
    log scale for multiplicative series; its trend is forecast by AutoETS, which gives intervals.
    ``jumps``: the STL loess steps of ``stl_jumps`` (R's defaults), chosen over the loess at
    every hour on the sample's validation windows (the same MASE; steam-dev's measured after
    only: benchmarks/README.md, "A demo that answers fast"); a stored model says which it was
    scored with, and is served so."""

    seasons: tuple[int, ...] = (24, 168)
    level: int = DEFAULT_LEVEL
    jumps: bool = True

    @property
    def name(self) -> str:
        return "mstl"

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        y = history["y"].to_numpy(dtype=float)
        if y.size < 2 * min(self.seasons):
            raise ValueError(
                f"mstl needs at least {2 * min(self.seasons)} hours of history, got {y.size}"
            )
        return {
            "kind": self.name,
            "seasons": list(self.seasons),
            "level": self.level,
            "log": is_multiplicative(y),
            "stl_jumps": self.jumps,
            **_window(history),
        }

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        from statsforecast.models import MSTL, AutoETS

        y = history["y"].to_numpy(dtype=float)
        seasons = [s for s in model.get("seasons", self.seasons) if y.size >= 2 * s]
        if not seasons:
            raise ValueError(f"mstl: too little history ({y.size} hours) for any season")
        log = bool(model.get("log", False)) and bool(np.min(y) > 0)
        level = int(model.get("level", self.level))
        series = np.log(y) if log else y
        # a model stored before the steps existed was scored with the loess at every hour
        steps = stl_jumps(seasons) if model.get("stl_jumps", False) else None
        res = MSTL(
            season_length=seasons, trend_forecaster=AutoETS(model="ANN"), stl_kwargs=steps
        ).forecast(y=series, h=horizon, level=[level])
        mean = np.asarray(res["mean"], dtype=float)
        hi = np.asarray(res[f"hi-{level}"], dtype=float)
        sigma = np.maximum(hi - mean, 0.0) / z_for(0.5 + level / 200.0)
        return frame_from(
            future_index(history["ds"].iloc[-1], horizon),
            mean,
            sigma,
            level=level,
            log=log,
            nonnegative=bool(np.nanmin(y) >= 0),
        )
