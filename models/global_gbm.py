"""A global LightGBM forecaster for panels of hourly series (direct multi-horizon).

One LightGBM model learns across all series of a panel. Every training row is one
(series, cutoff, horizon step h) triple, for half the steps of each cutoff
(``GBMConfig.steps_every``):

- Normalisation: each window is divided by its level, the mean of the 168 observations up to the
  cutoff (a ratio scale, so series of any size share one model; values are demand, >= 0).
- Features (all divided by that level): the last 48 observations and the values 72, 96, ..., 168
  hours back; "aligned" seasonal lags of the target hour (same hour on the latest observed day,
  the two days before, one and two weeks before, and the mean of the same hour over the last
  7 days); the mean of the last 24 and of the 24 before, the std of the last 168, the mean of the
  168 before; and the horizon step h. No calendar features: the aligned lags carry the daily and
  weekly pattern and work with arbitrary (e.g. 1970-based benchmark) timestamps.
- Target: y[cutoff + h] / level; objective L1 (median), which scored best on M4 Hourly.
- Forecast = level * prediction, clipped at 0 when the history is non-negative.

Intervals (split conformal on windows before the held-out ones): the product scores the model on
each series' last `horizon` hours (its CV windows: ``fleetcast.stages.training``), which the
served model is retrained with (`GBMConfig.refit`, as every local candidate is refitted on its
whole history after CV; chosen on the M4 validation windows, benchmarks/README.md). The
intervals must not be calibrated on the held-out hours, or the coverage recorded there is
optimistic; so a calibration model, with the same settings, is trained on the history before an
earlier calibration span and forecasts
`calibration_origins` windows of `horizon` hours from origins `calibration_step` hours apart,
the last ending where the held-out hours begin (the cross-validation calibration of
mlforecast's conformal intervals, with one refit for all the windows). Those errors divided by
each series' scale at the origin (in-sample mean |y_t - y_(t-24)| over the 336 hours before it)
give empirical quantiles per horizon step, pooled over series and origins (and over nearby
steps when the panel is small). With `GBMConfig.normalise`, each series' errors are first divided
by its difficulty, the mean |scaled error| of its own calibration windows (each window divided by
the difficulty of the series' other windows, so the pooled quantiles are not made narrow by the
errors they are computed from), and the served interval is the pooled quantile times the
series' difficulty: a series the model forecasts well gets a narrower interval than one it
forecasts badly, at the same pooled coverage (normalised conformal). Each tail is read at
`GBMConfig.tail_share` of its nominal probability (q90 at 0.92): on M4's validation windows the
served model's errors were larger than the calibration windows' (mean |normalised error| 1.20
against 1.05), which the calibration windows cannot show. The calibration model also
scores the held-out hours (two fits in all: it and the served one); without `refit`, a model
trained on the history minus the last `horizon` hours is served and scored. Neither the
scored model nor the calibration model reads the last `horizon` hours' values. A history too
short for that many origins gets as many as it allows; one too short for any is calibrated on
the held-out hours instead, and the model's notes (stored with it, shown in the registry's
note) say which was done. The final forecast uses the served model with features from the full
history, so the newest observation is always used: `predict` is the cheap hourly path (no refit).

Gaps: each series is put on a regular hourly grid from its first to its last timestamp; missing
or null values are filled from the past only (``models.hourly.fill_gaps``); duplicate
timestamps are averaged. Rows after `cutoff` (if given) are ignored, so appending future rows
never changes a forecast made at that cutoff.

Fallbacks: a series with fewer than `MIN_HISTORY` hours, or for which the model yields a
non-finite value, gets a seasonal naive forecast (period `season`, or last value if shorter),
named in the output's `model` column; the whole panel falls back the same way if training fails.

Output columns: `unique_id, ds, yhat, yhat_lower, yhat_upper, q90, model` plus `lo_<L>, hi_<L>`
for each level L in `levels`. `yhat_lower/yhat_upper` are the two-sided 80% interval (quantiles
0.1 and 0.9), so `yhat_upper` equals `q90`, the one-sided 90% upper bound used for capacity.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import polars as pl

from models.baselines import seasonal_naive
from models.hourly import fill_gaps, to_hourly

log = logging.getLogger(__name__)

MODEL_NAME = "global_gbm"
FALLBACK_NAME = "seasonal_naive"
MIN_HISTORY = 168  # hours needed to forecast a series with the global model
_PAD = 400  # left padding (NaN) so every lag index is valid
_LEVEL_WINDOW = 168
_SCALE_WINDOW = 336
_RECENT_LAGS = np.r_[np.arange(1, 49), np.arange(72, 169, 24)]
FEATURE_NAMES: tuple[str, ...] = (
    *(f"lag{k}" for k in _RECENT_LAGS),
    "same_hour_d1",
    "same_hour_d2",
    "same_hour_d3",
    "same_hour_w1",
    "same_hour_w2",
    "same_hour_mean7",
    "mean24",
    "mean24_prev",
    "std168",
    "mean168_prev",
    "h",
)


@dataclass(frozen=True)
class GBMConfig:
    """Training settings (defaults measured on M4 Hourly, see benchmarks/README.md)."""

    stride: int = 4  # hours between training cutoffs
    max_cutoffs: int = 150  # training cutoffs per series (the most recent ones)
    # training rows per cutoff: a k-th of its horizon steps, drawn afresh at each cutoff
    # (``kept_steps``; 1: all 48). 2 with min_data_in_leaf 50 (the same leaf share of the rows):
    # half the rows and fit time, the same M4 validation MASE; 3 lost 1.5% (benchmarks/README.md
    # "Training in proportion, fourth pass")
    steps_every: int = 2
    # rounds and leaves: chosen on M4 validation windows (benchmarks/README.md; 500 rounds
    # instead of 600 since the fourth pass: 0.785 against 0.784, a sixth less fit time)
    num_rounds: int = 500
    learning_rate: float = 0.05
    num_leaves: int = 127
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    objective: str = "l1"
    small_panel_series: int = 20  # below this many series, pool calibration over nearby steps
    # interval calibration: forecast origins of the calibration model, this many hours apart,
    # the last window ending where the held-out (CV) hours begin
    calibration_origins: int = 4  # chosen on M4 validation windows (benchmarks/README.md)
    calibration_step: int = 24
    # each tail's probability read from the calibration errors, as a share of its nominal one
    # (0.8: q90 read at 0.92, the 80% interval's lower end at 0.08). Chosen on M4's validation
    # windows, the share whose q90 is nearest 90% with the 80% interval in 75-85%: q90 / 80%
    # covered 87.7% / 79.4% at 1.0, 88.8% / 81.1% at 0.9, 89.9% / 83.0% at 0.8, 91.3% / 85.1%
    # at 0.7 (benchmarks/README.md, "Training in proportion, sixth pass")
    tail_share: float = 0.8
    # serve a model retrained on the whole history, held-out hours included; the CV windows
    # are still scored with the one trained without them (``FittedGBM.held_out``)
    refit: bool = True  # chosen on M4 validation windows (benchmarks/README.md)
    # per-series normalised intervals (module docstring); chosen on the validation windows of M4
    # and steam-dev (benchmarks/README.md, "Normalised intervals")
    normalise: bool = True


@dataclass
class FittedGBM:
    """A fitted global model: booster, horizon, and scaled residual quantiles per step."""

    booster: lgb.Booster | None
    horizon: int
    season: int
    quantiles: dict[float, np.ndarray]  # probability -> scaled error quantile per horizon step
    nonneg: bool = True
    n_series_trained: int = 0
    notes: list[str] = field(default_factory=list)
    # the calibration model's point forecasts, per series: hours before the series' end at the
    # origin -> forecast (out of sample: that model trained before every origin). For the
    # served combination's own calibration; not stored.
    early: dict[str, dict[int, np.ndarray]] = field(default_factory=dict, repr=False)
    # with ``GBMConfig.refit``: the booster trained without the last ``horizon`` hours, the one
    # the CV windows inside them are scored with (``booster`` then read them); not stored
    held_out: lgb.Booster | None = field(default=None, repr=False)
    # ``GBMConfig.normalise``: each series' interval multiplier (by unique_id) and the one for a
    # series without calibration windows; empty / 1.0 for pooled quantiles
    difficulty: dict[str, float] = field(default_factory=dict)
    difficulty_default: float = 1.0

    def scored(self) -> FittedGBM:
        """The model the CV windows are scored with: the held-out one when ``booster`` is a
        refit on the whole history, else this one."""
        return self if self.held_out is None else replace(self, booster=self.held_out)


# ---------------------------------------------------------------------------------------------
# Input preparation


def regularize(
    history: pl.DataFrame, cutoff: datetime | None = None
) -> dict[str, tuple[datetime, np.ndarray]]:
    """Hourly grid per series with gaps filled from the past only; returns {unique_id:
    (first_ds, values)}.

    Rows with `ds > cutoff` are ignored; trailing null values are dropped; duplicates averaged.
    """
    missing = {"unique_id", "ds", "y"} - set(history.columns)
    if missing:
        raise ValueError(f"history needs columns unique_id, ds, y; missing {sorted(missing)}")
    df = history.select(
        pl.col("unique_id").cast(pl.String),
        pl.col("ds").cast(pl.Datetime("us")).dt.truncate("1h"),
        pl.col("y").cast(pl.Float64).fill_nan(None),
    ).filter(pl.col("ds").is_not_null())
    if cutoff is not None:
        df = df.filter(pl.col("ds") <= pl.lit(cutoff).cast(pl.Datetime("us")))
    df = df.filter(pl.col("y").is_not_null()).sort("unique_id", "ds")
    out: dict[str, tuple[datetime, np.ndarray]] = {}
    for (uid,), g in df.group_by("unique_id", maintain_order=True):
        start, y = to_hourly(g["ds"].to_numpy(), g["y"].to_numpy())
        if start is None:
            continue
        out[str(uid)] = (start.astype("datetime64[us]").item(), fill_gaps(y))
    return out


# ---------------------------------------------------------------------------------------------
# Features


def _features(y: np.ndarray, cutoffs: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix (len(cutoffs) * horizon rows, cutoff-major) and the level of each row."""
    yp = np.concatenate([np.full(_PAD, np.nan), y])
    c = np.asarray(cutoffs, dtype=int) + _PAD
    nc = len(c)
    w168 = yp[c[:, None] + np.arange(-_LEVEL_WINDOW + 1, 1)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN windows of short series
        level = np.nanmean(w168, axis=1)
        level = np.where(np.isfinite(level) & (level > 0), level, 1.0)
        hs = np.arange(1, horizon + 1)
        lags = yp[c[:, None] - _RECENT_LAGS[None, :] + 1] / level[:, None]
        tgt = c[:, None] + hs[None, :]
        d1 = tgt - 24 * np.ceil(hs / 24).astype(int)[None, :]
        aligned = [yp[idx] for idx in (d1, d1 - 24, d1 - 48, tgt - 168, tgt - 336)]
        aligned.append(np.nanmean(np.stack([yp[d1 - 24 * j] for j in range(7)]), axis=0))
        al = np.stack([a.reshape(-1) for a in aligned], axis=1) / np.repeat(level, horizon)[:, None]
        stats = (
            np.stack(
                [
                    np.nanmean(yp[c[:, None] + np.arange(-23, 1)], axis=1),
                    np.nanmean(yp[c[:, None] + np.arange(-47, -23)], axis=1),
                    np.nanstd(w168, axis=1),
                    np.nanmean(yp[c[:, None] + np.arange(-335, -167)], axis=1),
                ],
                axis=1,
            )
            / level[:, None]
        )
    x = np.concatenate(
        [
            np.repeat(lags, horizon, axis=0),
            al,
            np.repeat(stats, horizon, axis=0),
            np.tile(hs, nc).astype(float)[:, None],
        ],
        axis=1,
    )
    return x, np.repeat(level, horizon)


def _scale(y: np.ndarray, season: int) -> float:
    """Seasonal-difference scale of the last `_SCALE_WINDOW` hours (for interval residuals)."""
    w = y[-_SCALE_WINDOW:]
    if w.size > season:
        s = float(np.mean(np.abs(w[season:] - w[:-season])))
    elif w.size > 1:
        s = float(np.mean(np.abs(np.diff(w))))
    else:
        s = 0.0
    if not np.isfinite(s) or s <= 0:
        s = max(float(np.mean(np.abs(w))) * 0.01, 1e-6) if w.size else 1e-6
    return s


def kept_steps(n_cutoffs: int, horizon: int, every: int) -> np.ndarray:
    """Which of the cutoff-major (cutoff, step) training rows ``GBMConfig.steps_every`` keeps:
    ``horizon // every`` steps of each cutoff, drawn afresh for each (a fixed seed: the same
    rows every time), so every step and almost every target hour stay in the rows, seen from
    fewer cutoffs."""
    draws = np.random.default_rng(0).random((n_cutoffs, horizon))
    return (draws.argsort(axis=1).argsort(axis=1) < max(1, horizon // every)).reshape(-1)


def _training_rows(
    series: list[np.ndarray], horizon: int, cfg: GBMConfig
) -> tuple[np.ndarray, np.ndarray]:
    xs, ts = [], []
    for y in series:
        last = len(y) - 1 - horizon
        first = max(MIN_HISTORY - 1, last - cfg.stride * (cfg.max_cutoffs - 1))
        cut = np.arange(last, first - 1, -cfg.stride)[::-1]
        if cut.size == 0:
            continue
        x, level = _features(y, cut, horizon)
        target = y[cut[:, None] + np.arange(1, horizon + 1)[None, :]].reshape(-1) / level
        if cfg.steps_every > 1:
            keep = kept_steps(cut.size, horizon, cfg.steps_every)
            x, target = x[keep], target[keep]
        xs.append(x)
        ts.append(target)
    if not xs:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0)
    return np.concatenate(xs), np.concatenate(ts)


# ---------------------------------------------------------------------------------------------
# Fit / predict


def fit(
    series: dict[str, np.ndarray],
    horizon: int,
    *,
    season: int = 24,
    n_jobs: int | None = None,
    seed: int = 0,
    config: GBMConfig | None = None,
) -> FittedGBM:
    """Fit the global model on regular hourly arrays and calibrate its intervals.

    The last `horizon` hours of each series are held out of training (the windows it is scored
    on); the intervals are calibrated on earlier windows, by a second model trained before them
    (module docstring), so no step of the fit reads the held-out values.
    """
    cfg = config or GBMConfig()
    usable = {k: v for k, v in series.items() if len(v) >= MIN_HISTORY + horizon + 1}
    nonneg = all(np.nanmin(v) >= 0 for v in series.values() if v.size)
    before = [v[:-horizon] for v in usable.values()]  # all both models see (but the fallback)
    errs, owners, how, early, cal = _calibration_errors(
        before, horizon, season, nonneg, cfg, n_jobs, seed
    )
    # the model the held-out hours are scored with. With ``refit``: the calibration model when
    # there is one (trained before the calibration span, so it never saw them either; a fit
    # fewer than training a third model on ``before``: benchmarks/README.md "Training in
    # proportion"). Without: the served model itself, trained on ``before``.
    booster = cal if cfg.refit and cal is not None else _train(before, horizon, cfg, n_jobs, seed)
    if booster is None:
        return FittedGBM(None, horizon, season, {}, nonneg, 0, ["too little history to train"])
    fitted = FittedGBM(booster, horizon, season, {}, nonneg, len(usable))
    fitted.early = {k: e for k, e in zip(usable, early, strict=True) if e}
    if not errs:  # too short for an earlier span: the held-out hours, said so in the notes
        for i, (v, f) in enumerate(
            zip(usable.values(), point_forecasts(fitted, before), strict=True)
        ):
            if f is not None:
                errs.append((v[-horizon:] - f) / _scale(v[:-horizon], season))
                owners.append(i)
        how = (
            f"intervals calibrated on the held-out last {horizon} h ({len(errs)} windows): too "
            "little history for an earlier calibration span, so coverage measured on those "
            "hours is optimistic"
        )
    if errs:
        small = len(usable) < cfg.small_panel_series
        e = np.stack(errs)
        if cfg.normalise:
            per_series, per_window, default = difficulty(e, np.asarray(owners), len(usable))
            e = e / per_window[:, None]
            names = list(usable)
            fitted.difficulty = {
                names[i]: float(d) for i, d in enumerate(per_series) if np.isfinite(d)
            }
            fitted.difficulty_default = default
            how += "; normalised by each series' own calibration error"
        fitted.quantiles = _step_quantiles(e, small=small, tail_share=cfg.tail_share)
        fitted.notes.append(how)
    else:
        fitted.notes.append("no calibration window: intervals from seasonal naive errors")
    if cfg.refit:
        full = _train(list(usable.values()), horizon, cfg, n_jobs, seed)
        if full is not None:
            fitted.held_out, fitted.booster = booster, full
            fitted.notes.append(f"served model retrained with the held-out last {horizon} h")
    return fitted


def _train(
    series: list[np.ndarray], horizon: int, cfg: GBMConfig, n_jobs: int | None, seed: int
) -> lgb.Booster | None:
    """The LightGBM booster on the (series, cutoff, step) rows of `series`; None if too few."""
    x, t = _training_rows(series, horizon, cfg)
    if x.shape[0] < 10 * horizon:
        return None
    ok = np.isfinite(t)
    params = {
        "objective": cfg.objective,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": min(cfg.min_data_in_leaf, max(5, int(ok.sum()) // 200)),
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "verbose": -1,
        "num_threads": n_jobs or 0,
        "seed": seed,
        "deterministic": True,
        # row-wise histograms: the same trees as column-wise, about 30% less time on M4's rows
        # (benchmarks/README.md "Training in proportion, fourth pass")
        "force_row_wise": True,
    }
    return lgb.train(
        params,
        lgb.Dataset(x[ok], t[ok], feature_name=list(FEATURE_NAMES), free_raw_data=True),
        num_boost_round=cfg.num_rounds,
    )


def _calibration_errors(
    before: list[np.ndarray],
    horizon: int,
    season: int,
    nonneg: bool,
    cfg: GBMConfig,
    n_jobs: int | None,
    seed: int,
) -> tuple[list[np.ndarray], list[int], str, list[dict[int, np.ndarray]], lgb.Booster | None]:
    """Scaled errors of a model trained before the calibration span, at its origins, the index
    in `before` of each error's series, the model's forecasts per series of `before` (hours
    before the full series' end at the origin -> forecast), and the model (None when none).

    `before`: each series without its held-out hours. The span is the last
    ``horizon + calibration_step * (calibration_origins - 1)`` hours of it; the calibration
    model trains on what precedes the span, then forecasts `horizon` hours from each origin
    (series x origins rows, series-major). A history too short for `calibration_origins`
    origins gets as many as it allows; empty when not even one fits."""
    step = max(1, cfg.calibration_step)
    for k in range(max(1, cfg.calibration_origins), 0, -1):
        span = horizon + step * (k - 1)
        cal = [v[:-span] for v in before if len(v) > span]
        booster = _train(cal, horizon, cfg, n_jobs, seed)
        if booster is not None:
            break
    else:
        return [], [], "", [{} for _ in before], None
    model = FittedGBM(booster, horizon, season, {}, nonneg)
    # the origins: each forecasts v[cut : cut + horizon]; all predicted in one call
    origins = [(i, len(v) - span + j * step) for i, v in enumerate(before) for j in range(k)]
    origins = [(i, cut) for i, cut in origins if cut >= MIN_HISTORY]
    forecasts = dict(
        zip(origins, point_forecasts(model, [before[i][:cut] for i, cut in origins]), strict=True)
    )
    errs, owners = [], []
    early: list[dict[int, np.ndarray]] = [{} for _ in before]
    for (i, cut), f in forecasts.items():  # series-major, as the origins were listed
        if f is not None:
            v = before[i]
            errs.append((v[cut : cut + horizon] - f) / _scale(v[:cut], season))
            owners.append(i)
            early[i][len(v) + horizon - cut] = f
    how = (
        f"intervals calibrated on {len(errs)} windows of {horizon} h ({k} origins {step} h "
        f"apart, before the held-out last {horizon} h) forecast by a model trained before them"
    )
    return errs, owners, how, early, booster


# a difficulty is never below this share of the panel's median (a series' few calm windows do not
# give it an interval of nearly zero width)
DIFFICULTY_FLOOR = 0.1


def difficulty(
    errors: np.ndarray, owners: np.ndarray, n_series: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-series interval multipliers from calibration errors (windows x steps, scaled).

    Returns (the difficulty of each of `n_series` series: the mean |error| over its windows, NaN
    for a series without any; each window's divisor: the mean over the *other* windows of its
    series, or the panel's median difficulty for a series with one window; that median, the
    multiplier for a series without windows). Every value is at least `DIFFICULTY_FLOOR` times
    the median, and 1.0 replaces a median that is zero or not finite."""
    e = np.abs(np.atleast_2d(np.asarray(errors, dtype=float)))
    owners = np.asarray(owners, dtype=int)
    per_window = np.nanmean(e, axis=1) if e.size else np.zeros(0)
    total = np.bincount(owners, weights=np.nan_to_num(per_window), minlength=n_series)
    count = np.bincount(owners, weights=np.isfinite(per_window), minlength=n_series)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_series = np.where(count > 0, total / count, np.nan)
        others = count[owners] - np.isfinite(per_window)
        loo = (total[owners] - np.nan_to_num(per_window)) / others
    median = float(np.nanmedian(per_series)) if np.isfinite(per_series).any() else 1.0
    if not np.isfinite(median) or median <= 0:
        median = 1.0
    floor = DIFFICULTY_FLOOR * median
    loo = np.where((others > 0) & np.isfinite(loo), loo, median)
    return (
        np.where(np.isfinite(per_series), np.maximum(per_series, floor), np.nan),
        np.maximum(loo, floor),
        median,
    )


_PROBS = (0.025, 0.05, 0.1, 0.25, 0.75, 0.9, 0.95, 0.975)


def _step_quantiles(e: np.ndarray, small: bool, tail_share: float) -> dict[float, np.ndarray]:
    """Quantiles of scaled errors per horizon step, pooled over +-k neighbouring steps, keyed by
    nominal probability: each tail read at `tail_share` of its probability (0.9 -> 1 - 0.1 *
    share, 0.1 -> 0.1 * share)."""
    horizon = e.shape[1]
    k = 12 if small else 2
    out: dict[float, np.ndarray] = {}
    for p in _PROBS:
        read = 1 - (1 - p) * tail_share if p > 0.5 else p * tail_share
        q = np.empty(horizon)
        for h in range(horizon):
            lo, hi = max(0, h - k), min(horizon, h + k + 1)
            q[h] = np.nanquantile(e[:, lo:hi], read)
        # errors do not shrink with the horizon: enforce monotone widening of the tails
        q = np.maximum.accumulate(q) if p > 0.5 else np.minimum.accumulate(q)
        out[p] = q
    return out


def point_forecasts(fitted: FittedGBM, histories: list[np.ndarray]) -> list[np.ndarray | None]:
    """The model's `horizon`-hour point forecast from the end of each history (None: shorter
    than `MIN_HISTORY`, no booster, or a non-finite value), in one LightGBM call for all of them
    (a row's prediction does not depend on the other rows: the same values as one call each,
    without the per-call cost that dominated the panel's CV and calibration)."""
    if fitted.booster is None:
        return [None] * len(histories)
    ok = [i for i, y in enumerate(histories) if len(y) >= MIN_HISTORY]
    if not ok:
        return [None] * len(histories)
    parts = [_features(histories[i], np.array([len(histories[i]) - 1]), fitted.horizon) for i in ok]
    x = np.concatenate([p[0] for p in parts])
    level = np.concatenate([p[1] for p in parts])
    pred = np.asarray(fitted.booster.predict(x), dtype=float) * level
    if fitted.nonneg:
        pred = np.maximum(pred, 0.0)
    out: list[np.ndarray | None] = [None] * len(histories)
    for k, i in enumerate(ok):
        f = pred[k * fitted.horizon : (k + 1) * fitted.horizon]
        out[i] = f if np.all(np.isfinite(f)) else None
    return out


def _snaive_quantiles(y: np.ndarray, horizon: int, season: int) -> dict[float, np.ndarray]:
    """Scaled error quantiles of seasonal naive on its own history (fallback intervals)."""
    if y.size > 2 * season:
        e = (y[season:] - y[:-season]) / _scale(y, season)
    else:
        e = np.zeros(1)
    return {p: np.full(horizon, np.quantile(e, p)) for p in _PROBS}


def _interval_probs(levels: tuple[int, ...]) -> list[tuple[int, float, float]]:
    out = []
    for lv in levels:
        a = (100 - lv) / 200
        lo, hi = round(a, 4), round(1 - a, 4)
        if lo not in _PROBS or hi not in _PROBS:
            raise ValueError(f"level {lv} not supported; use one of 50, 80, 90, 95")
        out.append((lv, lo, hi))
    return out


def predict(
    fitted: FittedGBM,
    series: dict[str, tuple[datetime, np.ndarray]],
    horizon: int | None = None,
    *,
    levels: tuple[int, ...] = (80, 90),
    points: list[np.ndarray | None] | None = None,
) -> pl.DataFrame:
    """Forecast each series from the end of its history with an already fitted model (no refit).

    This is the cheap path for hourly re-forecasts: features use the newest observations.
    `points`: the series' ``point_forecasts`` when already computed (in `series`' order).
    """
    h = horizon or fitted.horizon
    if h > fitted.horizon:
        raise ValueError(f"model was fitted for horizon {fitted.horizon}, asked for {h}; refit")
    probs = _interval_probs(levels)
    frames = []
    if points is None:
        points = point_forecasts(fitted, [y for _, y in series.values()])
    for (uid, (start, y)), f in zip(series.items(), points, strict=True):
        model = MODEL_NAME
        quant = fitted.quantiles
        s = _scale(y, fitted.season) * fitted.difficulty.get(uid, fitted.difficulty_default)
        if f is None or not quant:
            if f is None:
                f = seasonal_naive(y, fitted.horizon, fitted.season)
                model = FALLBACK_NAME
            quant = _snaive_quantiles(y, fitted.horizon, fitted.season)
            s = _scale(y, fitted.season)
        f = f[:h]
        last = start + timedelta(hours=len(y) - 1)
        cols: dict[str, object] = {
            "unique_id": [uid] * h,
            "ds": [last + timedelta(hours=i) for i in range(1, h + 1)],
            "yhat": f,
        }
        for lv, lo, hi in probs:
            cols[f"lo_{lv}"] = f + s * quant[lo][:h]
            cols[f"hi_{lv}"] = f + s * quant[hi][:h]
        cols["q90"] = f + s * quant[0.9][:h]
        cols["yhat_lower"] = f + s * quant[0.1][:h]
        cols["yhat_upper"] = cols["q90"]
        cols["model"] = [model] * h
        frames.append(pl.DataFrame(cols))
    if not frames:
        return _empty_output(levels)
    out = pl.concat(frames)
    num = [c for c in out.columns if c not in ("unique_id", "ds", "model")]
    # keep intervals ordered around yhat and non-negative for non-negative demand
    out = out.with_columns(
        pl.min_horizontal("yhat_lower", "yhat").alias("yhat_lower"),
        pl.max_horizontal("yhat_upper", "yhat").alias("yhat_upper"),
        pl.max_horizontal("q90", "yhat").alias("q90"),
        *[pl.min_horizontal(f"lo_{lv}", "yhat").alias(f"lo_{lv}") for lv, _, _ in probs],
        *[pl.max_horizontal(f"hi_{lv}", "yhat").alias(f"hi_{lv}") for lv, _, _ in probs],
    )
    if fitted.nonneg:
        out = out.with_columns([pl.col(c).clip(lower_bound=0.0) for c in num])
    return out.select(
        "unique_id",
        "ds",
        "yhat",
        "yhat_lower",
        "yhat_upper",
        "q90",
        *[c for lv, _, _ in probs for c in (f"lo_{lv}", f"hi_{lv}")],
        "model",
    )


def _empty_output(levels: tuple[int, ...]) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "unique_id": pl.String(),
        "ds": pl.Datetime("us"),
        "yhat": pl.Float64(),
        "yhat_lower": pl.Float64(),
        "yhat_upper": pl.Float64(),
        "q90": pl.Float64(),
    }
    for lv in levels:
        schema[f"lo_{lv}"] = pl.Float64()
        schema[f"hi_{lv}"] = pl.Float64()
    schema["model"] = pl.String()
    return pl.DataFrame(schema=schema)


def forecast_panel(
    history: pl.DataFrame,
    horizon: int,
    *,
    levels: tuple[int, ...] = (80, 90),
    season: int = 24,
    n_jobs: int | None = None,
    seed: int = 0,
    cutoff: datetime | None = None,
    config: GBMConfig | None = None,
) -> pl.DataFrame:
    """Fit the global model on `history` (`unique_id, ds, y`, hourly) and forecast `horizon` hours.

    Returns `unique_id, ds, yhat, yhat_lower, yhat_upper, q90, lo_<L>, hi_<L>..., model`
    (see the module docstring). Never NaN; a series the model cannot forecast gets seasonal naive,
    named in `model`. Rows after `cutoff` are ignored. `n_jobs` = LightGBM threads (None: all).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    grid = regularize(history, cutoff)
    arrays = {k: v for k, (_, v) in grid.items()}
    try:
        fitted = fit(arrays, horizon, season=season, n_jobs=n_jobs, seed=seed, config=config)
    except Exception:  # noqa: BLE001 - recorded fallback, never silent
        log.exception("global GBM training failed; every series falls back to seasonal naive")
        fitted = FittedGBM(None, horizon, season, {}, all(np.min(v) >= 0 for v in arrays.values()))
    return predict(fitted, grid, horizon, levels=levels)


# ---------------------------------------------------------------------------------------------
# Storage (R15: JSON text with LightGBM's own model format inside; never pickle)

FORMAT_VERSION = 1


def dumps(fitted: FittedGBM) -> str:
    """The fitted model as JSON text: LightGBM's ``model_to_string()`` plus the interval quantiles.

    Deterministic for a given model (sorted keys), so its sha256 identifies it."""
    import json  # noqa: PLC0415

    body = {
        "kind": MODEL_NAME,
        "format": FORMAT_VERSION,
        "horizon": fitted.horizon,
        "season": fitted.season,
        "nonneg": bool(fitted.nonneg),
        "n_series_trained": fitted.n_series_trained,
        "notes": list(fitted.notes),
        "quantiles": {repr(p): [float(v) for v in q] for p, q in fitted.quantiles.items()},
        "difficulty": dict(fitted.difficulty),
        "difficulty_default": float(fitted.difficulty_default),
        "booster": None if fitted.booster is None else fitted.booster.model_to_string(),
    }
    return json.dumps(body, sort_keys=True)


def loads(text: str) -> FittedGBM:
    """Rebuild a model written by ``dumps`` (check its hash before calling this)."""
    import json  # noqa: PLC0415

    body = json.loads(text)
    if body.get("kind") != MODEL_NAME or body.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"not a {MODEL_NAME} model of format {FORMAT_VERSION} "
            f"(kind {body.get('kind')!r}, format {body.get('format')!r}): retrain it"
        )
    booster = None if body["booster"] is None else lgb.Booster(model_str=body["booster"])
    return FittedGBM(
        booster=booster,
        horizon=int(body["horizon"]),
        season=int(body["season"]),
        quantiles={float(p): np.asarray(q, dtype=float) for p, q in body["quantiles"].items()},
        nonneg=bool(body["nonneg"]),
        n_series_trained=int(body["n_series_trained"]),
        notes=list(body.get("notes") or []),
        # absent in models written before normalised intervals: pooled quantiles, multiplier 1
        difficulty={str(k): float(v) for k, v in (body.get("difficulty") or {}).items()},
        difficulty_default=float(body.get("difficulty_default", 1.0)),
    )
