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

from models.hourly import DAY, WEEK, fill_gaps, to_hourly

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


def frame_from_upper(
    history: pd.DataFrame, mean: np.ndarray, hi: np.ndarray, *, level: int, log: bool, y: np.ndarray
) -> pd.DataFrame:
    """The forecast frame for the hours after ``history`` from a mean and the upper bound of its
    ``level``% interval (normal errors; the model's scale, log when ``log``), never below 0 when
    the history ``y`` is not."""
    sigma = np.maximum(hi - mean, 0.0) / z_for(0.5 + level / 200.0)
    return frame_from(
        future_index(history["ds"].iloc[-1], len(mean)),
        mean,
        sigma,
        level=level,
        log=log,
        nonnegative=bool(np.nanmin(y) >= 0),
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
        from statsforecast.models import AutoETS

        y = history["y"].to_numpy(dtype=float)
        seasons = [s for s in model.get("seasons", self.seasons) if y.size >= 2 * s]
        if not seasons:
            raise ValueError(f"mstl: too little history ({y.size} hours) for any season")
        log = bool(model.get("log", False)) and bool(np.min(y) > 0)
        level = int(model.get("level", self.level))
        series = np.log(y) if log else y
        # a model stored before the steps existed was scored with the loess at every hour
        steps = stl_jumps(seasons) if model.get("stl_jumps", False) else None
        mean, hi = mstl_forecast(series, seasons, AutoETS(model="ANN"), steps, horizon, level)
        return frame_from_upper(history, mean, hi, level=level, log=log, y=y)


def mstl_forecast(
    x: np.ndarray,
    seasons: list[int],
    trend: Any,
    steps: dict[str, int] | None,
    horizon: int,
    level: int,
) -> tuple[np.ndarray, np.ndarray]:
    """statsforecast's MSTL on ``x`` with ``trend`` forecasting what the seasons leave and the
    STL loess ``steps`` (``stl_jumps``, or None for every hour): the ``horizon``-hour mean and
    the upper bound of its ``level``% interval."""
    from statsforecast.models import MSTL

    res = MSTL(season_length=seasons, trend_forecaster=trend, stl_kwargs=steps).forecast(
        y=x, h=horizon, level=[level]
    )
    return np.asarray(res["mean"], dtype=float), np.asarray(res[f"hi-{level}"], dtype=float)


GLITCH_FACTOR = 1.6  # a value this factor away from its centred 5-hour median is a glitch
SHIFT_FACTOR = 1.8  # a 24-hour level this factor away from the previous 24 hours is a step
MAX_SHIFTS = 3
ZERO_SHARE = 0.05  # more zeros than this are real (an idle server), not glitches: raw scale


def fill_gaps_linear(x: np.ndarray) -> np.ndarray:
    """Non-finite values linearly interpolated between their finite neighbours (held flat at
    the ends); a new array."""
    x = np.array(x, dtype=float)
    bad = ~np.isfinite(x)
    if bad.any() and (~bad).any():
        i = np.arange(x.size)
        x[bad] = np.interp(i[bad], i[~bad], x[~bad])
    return x


def clean_log(y: np.ndarray, factor: float = GLITCH_FACTOR, window: int = 5) -> np.ndarray:
    """The log of ``y`` with its glitches (values <= 0, gaps, and points more than ``factor``
    away from their centred ``window``-hour median) interpolated from their neighbours."""
    x = np.log(np.where(np.isfinite(y) & (y > 0), y, np.nan))
    filled = fill_gaps_linear(x)
    padded = np.pad(filled, window // 2, mode="edge")
    median = np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)
    x[np.abs(filled - median) > math.log(factor)] = np.nan
    return fill_gaps_linear(x)


def level_shift_adjust(
    x: np.ndarray, factor: float = SHIFT_FACTOR, width: int = DAY, max_shifts: int = MAX_SHIFTS
) -> np.ndarray:
    """``x`` (log scale) with up to ``max_shifts`` level steps taken out of its past (a launch,
    a relaunch: the history before the step moved to the level after it). A step is the mean of
    the next ``width`` hours minus that of the previous ``width``, beyond ``log(factor)`` both
    as measured and net of the same step a week before and after (a weekend is not a step)."""
    x = np.array(x, dtype=float)
    n, w, thr = x.size, width, math.log(factor)
    for _ in range(max_shifts):
        if n < 2 * w + 1:
            break
        c = np.concatenate([[0.0], np.cumsum(x)])
        t = np.arange(w, n - w + 1)
        step = (c[t + w] - 2 * c[t] + c[t - w]) / w
        at = np.full(n + 1, np.nan)
        at[t] = step
        ref, count = np.zeros_like(step), np.zeros_like(step)
        for lag in (-WEEK, WEEK):
            j = t + lag
            ok = (j >= w) & (j <= n - w)
            ref[ok] += at[j[ok]]
            count[ok] += 1
        net = step - np.where(count > 0, ref / np.maximum(count, 1), 0.0)
        found = (np.abs(step) > thr) & (np.abs(net) > thr) & (np.sign(net) == np.sign(step))
        if not found.any():
            break
        i = int(np.argmax(np.where(found, np.abs(net), -1.0)))
        x[: t[i]] += net[i]
    return x


@dataclass(frozen=True)
class CleanMSTLForecaster:
    """MSTL for real player counts: glitches cleaned, on the log scale, launch steps taken out.
    The plain ``mstl`` stays off the log scale when one value is not positive (steam-dev's
    glitch zeros: every series) and copies a launch's jump into its weekly season. Here:
    ``clean_log``, ``level_shift_adjust``, then statsforecast's MSTL (24 h, and 168 h from 1.5
    weeks, R's loess steps; each season repeated from its last period) with a damped
    additive-trend ETS for the rest, back with ``exp`` (the median). More than
    ``ZERO_SHARE`` of the values at or below 0: the same on the raw scale. Found on the
    validation windows of steam-dev's 9-series subsets (benchmarks/README.md)."""

    level: int = DEFAULT_LEVEL

    @property
    def name(self) -> str:
        return "mstl_clean"

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        self._enough(history["y"].to_numpy(dtype=float))
        return {"kind": self.name, "level": self.level, **_window(history)}

    def _enough(self, y: np.ndarray) -> np.ndarray:
        """Where ``y`` has a value; at least two days of them, or a clear error."""
        finite = np.isfinite(y)
        if int(finite.sum()) < 2 * DAY:
            raise ValueError(f"{self.name} needs at least {2 * DAY} hours with a value")
        return finite

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        from statsforecast.models import AutoETS

        y = history["y"].to_numpy(dtype=float)
        y = y[int(np.argmax(self._enough(y))) :]  # a leading gap dropped
        log = bool(np.mean(y[np.isfinite(y)] <= 0) <= ZERO_SHARE)
        x = level_shift_adjust(clean_log(y)) if log else fill_gaps_linear(y)
        seasons = [DAY] + ([WEEK] if x.size >= 1.5 * WEEK else [])
        level = int(model.get("level", self.level))
        trend = AutoETS(model="AAN", damped=True)
        mean, hi = mstl_forecast(x, seasons, trend, stl_jumps(seasons), horizon, level)
        return frame_from_upper(history, mean, hi, level=level, log=log, y=y)
