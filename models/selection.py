"""Candidates, rolling-origin cross-validation, the champion and its fallback chain, per series.

The candidate interface (``Forecaster``) is two methods on a named object:

- ``fit(history, events) -> dict``: a JSON-able model;
- ``predict(model, history, horizon, events) -> DataFrame[ds, yhat, yhat_lower, yhat_upper,
  yhat_q90]`` for the ``horizon`` hours after ``history``'s last ``ds``.

``history`` is pandas ``ds, y`` on a regular hourly grid (``baselines.regularize``); ``events``
is pandas ``kind, starts_at, ends_at`` for the series (or None). ``FORECASTERS`` is the registry
of local candidates; ``ENSEMBLES`` combines their forecasts (median). A new candidate is one
entry in ``FORECASTERS`` (a panel model such as a global LightGBM can be wrapped per series the
same way, or scored once over all series and passed in as ``extra_scores``).

The champion of a series is the candidate with the lowest mean MASE over time-ordered rolling
origins: at each cutoff a candidate sees only the history before it (no look-ahead) and is scored
on the next ``horizon`` hours. Candidates that fail or return NaN score infinity and sink to the
end of the fallback chain; at forecast time the chain is walked until a candidate gives a finite
forecast, and every skip is recorded in the result's note.

Events enter a forecast once, and the variant served is the variant scored. When the series has
events and Prophet (which learns an uplift per event kind) is a candidate, each other local
candidate ``c`` also competes as ``c+events``: ``c`` fitted on the history with Prophet's learned
past event effect taken out, with Prophet's effect of the scheduled events laid on top. Both are
scored at every CV origin (Prophet fitted on the data before that origin only); the champion's
name says which one is served, and a plain ``c`` is served without any event effect. A panel
model (``extra_candidates``) is served as scored: plain, from the raw history (recurring events
reach it through its lags).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.accuracy import coverage, mase, mase_scale, smape
from models.baselines import (
    CleanMSTLForecaster,
    MSTLForecaster,
    SeasonalNaive,
    clip_negative,
    regularize,
)
from models.hourly import DAY, WEEK
from models.prophet_model import ProphetForecaster, event_overlay, remove_events

MIN_HISTORY_HOURS = 48
FORECAST_COLUMNS = ("ds", "yhat", "yhat_lower", "yhat_upper", "yhat_q90")
EVENTS_SUFFIX = "+events"  # the variant of a candidate with Prophet's event effect (see below)
EVENT_SOURCE = "prophet"  # the candidate whose learned event effect the variants use


def events_variant(name: str) -> str:
    """The name of a candidate's events variant: ``mstl`` -> ``mstl+events``."""
    return f"{name}{EVENTS_SUFFIX}"


def base_of(name: str) -> str:
    """The candidate a variant is made from: ``mstl+events`` -> ``mstl``."""
    return name.removesuffix(EVENTS_SUFFIX)


class Forecaster(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None) -> dict[str, Any]: ...

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None,
    ) -> pd.DataFrame: ...


@dataclass(frozen=True)
class PanelAdapter:
    """A panel forecaster ``forecast_panel(history[unique_id, ds, y], horizon, levels) ->
    [unique_id, ds, yhat, yhat_lower, yhat_upper, q90, ...]`` (e.g. a global LightGBM) as a local
    candidate: plug it in with ``FORECASTERS["global_gbm"] = lambda: PanelAdapter("global_gbm",
    forecast_panel)``. Per series it learns from that series only; scoring it across series at
    once and passing ``extra_scores`` to ``train_series`` is the cross-learning route."""

    name: str
    forecast_panel: Callable[..., Any]
    levels: tuple[int, ...] = (80, 90)

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        return {"kind": self.name, "panel": True, "n_obs": len(history)}

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        panel = pd.DataFrame({"unique_id": "series", "ds": history["ds"], "y": history["y"]})
        out = pd.DataFrame(self.forecast_panel(panel, horizon, levels=self.levels))
        out = out.sort_values("ds").reset_index(drop=True)
        q90 = out["q90"] if "q90" in out.columns else out["yhat_upper"]
        return out.assign(yhat_q90=q90)[list(FORECAST_COLUMNS)]


@dataclass(frozen=True)
class PrecomputedForecaster:
    """A forecast made elsewhere (a panel model predicting all its series at once) as a
    candidate at forecast time: ``predict`` returns it, or raises with the recorded error."""

    name: str
    frame: pd.DataFrame | None
    error: str | None = None

    def fit(self, history: pd.DataFrame, events: pd.DataFrame | None = None) -> dict[str, Any]:
        raise CandidateFailed(f"{self.name} is trained across series, not per series")

    def predict(
        self,
        model: dict[str, Any],
        history: pd.DataFrame,
        horizon: int,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        if self.frame is None:
            raise CandidateFailed(self.error or "no panel forecast")
        return self.frame.iloc[:horizon].reset_index(drop=True)


# The registry of local candidates, in order of preference on ties. Last is the last resort.
FORECASTERS: dict[str, Callable[[], Forecaster]] = {
    "prophet": ProphetForecaster,
    "mstl": MSTLForecaster,
    "mstl_clean": CleanMSTLForecaster,
    "snaive168": lambda: SeasonalNaive(168),
    "snaive24": lambda: SeasonalNaive(24),
}
ENSEMBLES: dict[str, tuple[str, ...]] = {"ensemble": ("snaive24", "mstl", "prophet")}
# The served forecast of a series: the COMBINE_BEST candidates with the lowest CV MASE, those
# within COMBINE_WITHIN of the best (1.0: at most twice its CV MASE), weighted by 1 / CV MASE
# (``combination``). Chosen over serving the lowest-CV champion alone, and over other rules, on
# the validation windows of steam-dev and M4 (benchmarks/selection_rules.py, benchmarks/README.md).
COMBINATION = "combination"
COMBINE_BEST = 3
COMBINE_WITHIN = 1.0
# Before the combination: a panel model (``extra_candidates``) is served alone unless a candidate's
# CV MASE is more than PANEL_KEEP_MARGIN below its own (``kept_panel``). Chosen over the
# combination everywhere on the same validation windows once the panel model was re-derived
# (benchmarks/README.md, "The selection rule re-chosen with the new global model").
PANEL_KEEP_MARGIN = 0.2
# The panel model is trained by default only for panels of at least PANEL_MIN_SERIES series: in
# a smaller one it is not served first, and as one more candidate it did not improve on the local
# candidates' combination (5 seeded 9-series subsets of steam-dev, validation windows; steam-dev's
# 42 and M4's 414 series keep it: benchmarks/README.md "Training in proportion"). Asking for it
# (``--candidates global_gbm,...``) still trains it at any size.
PANEL_MIN_SERIES = 20
LAST_RESORT = "snaive24"
# Per-series candidates beside a panel model when the panel is large (cheap enough for 100s of
# series); ``train_all(candidates=...)`` / ``fleetcast train --candidates`` override it.
CHEAP_CANDIDATES: tuple[str, ...] = ("snaive24", "snaive168")


class InsufficientHistory(ValueError):
    """Too little history to train a series."""


class CandidateFailed(RuntimeError):
    """A candidate raised or returned an unusable forecast."""


@dataclass(frozen=True)
class CVConfig:
    horizon: int = 24  # hours scored after each cutoff
    n_origins: int = 2  # cutoffs, one horizon apart, ending one horizon before the last hour
    min_train: int = MIN_HISTORY_HOURS  # hours a candidate must see before a cutoff
    season: int = 24  # MASE scale: in-sample seasonal naive with this period
    # origins whose errors calibrate the conformal intervals: the scored ones and the ones
    # before them, one horizon apart (errors within one origin are correlated: a few origins
    # are needed; measured on AR(1) noise: 2 origins cover 0.61-0.66, 6 cover 0.82-0.85)
    calibration_origins: int = 6


@dataclass
class CandidateResult:
    name: str
    model: dict[str, Any] | None  # None when the final fit failed
    cv_mase: float  # mean over origins; inf if it failed at any origin
    cv_smape: float
    cv_coverage: float  # share of actuals inside the interval in CV
    origins: int
    error: str | None = None
    origin_mase: list[float] = field(default_factory=list)  # MASE at each CV origin, oldest first
    # the point forecast at each CV origin it forecast out of sample (the cut: hours of history
    # before it -> the next ``horizon`` hours), scored or calibration-only. For the combination's
    # CV; not stored.
    cv_points: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    # share of actuals at or below the 0.9 quantile (the bound capacity reads) in CV
    cv_coverage_q90: float = math.nan


@dataclass
class SeriesTraining:
    candidates: dict[str, CandidateResult]
    champion: str
    chain: list[str]  # champion first, then the fallbacks in order
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_obs: int
    notes: list[str] = field(default_factory=list)


@dataclass
class SeriesForecast:
    frame: pd.DataFrame  # ds, yhat, yhat_lower, yhat_upper, yhat_q90
    model: str  # the candidate that produced it (a ``+events`` variant carries Prophet's effect)
    notes: list[str] = field(default_factory=list)


def check_history(history: pd.DataFrame, what: str = "series") -> None:
    """Fail fast with the fix when a series is too short to train."""
    n = len(history)
    if n < MIN_HISTORY_HOURS:
        span = ""
        if n:
            first, last = history["ds"].iloc[0], history["ds"].iloc[-1]
            span = f" ({pd.Timestamp(first)} .. {pd.Timestamp(last)})"
        raise InsufficientHistory(
            f"{what}: {n} hours of history{span}; training needs at least {MIN_HISTORY_HOURS} "
            f"hours (2 days) of hourly data (weekly seasonality needs 1-2 weeks): "
            "ingest more history or train this series later"
        )


def cv_cutoffs(n: int, config: CVConfig) -> list[int]:
    """Training lengths at each cutoff, oldest first: n - k * horizon for k = n_origins..1, those
    leaving at least ``min_train`` hours before the cutoff."""
    cuts = [n - k * config.horizon for k in range(config.n_origins, 0, -1)]
    return [c for c in cuts if c >= config.min_train]


def scored_cutoffs(n: int, config: CVConfig) -> list[int]:
    """The cutoffs candidates are scored at (``cv_cutoffs``), without those with less than a week
    of history before them when a later one has a week: a candidate that needs a week
    (``snaive168``) is then scored instead of sunk by an origin too early for it, which on a
    history of 8-9 days left it out of every series' choice (``benchmarks/README.md``, "Short
    histories"). The cutoffs left out still calibrate the intervals."""
    cuts = cv_cutoffs(n, config)
    if any(c >= WEEK for c in cuts):
        return [c for c in cuts if c >= WEEK]
    return cuts


def _usable(frame: pd.DataFrame, horizon: int) -> pd.DataFrame:
    missing = [c for c in FORECAST_COLUMNS if c not in frame.columns]
    if missing:
        raise CandidateFailed(f"forecast lacks columns {missing}")
    if len(frame) != horizon:
        raise CandidateFailed(f"forecast has {len(frame)} rows, expected {horizon}")
    values = frame[list(FORECAST_COLUMNS[1:])].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise CandidateFailed("forecast contains NaN or infinite values")
    return frame[list(FORECAST_COLUMNS)].reset_index(drop=True)


def forecast_at(
    forecaster: Forecaster,
    history: pd.DataFrame,
    cutoff: int,
    horizon: int,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fit on the first ``cutoff`` hours only and forecast the next ``horizon``: what CV does at
    one origin. Nothing after the cutoff is passed to the candidate."""
    past = history.iloc[:cutoff].reset_index(drop=True)
    model = forecaster.fit(past, events)
    return _usable(forecaster.predict(model, past, horizon, events), horizon)


@dataclass(frozen=True)
class EventEffect:
    """Prophet's learned event effect for one history: at each of its hours (``past``) and at
    each hour of the horizon after it (``future``), on the model's scale."""

    past: np.ndarray
    future: np.ndarray
    log: bool
    nonnegative: bool


def event_effect(
    prophet: Forecaster,
    prophet_model: dict[str, Any],
    past: pd.DataFrame,
    horizon: int,
    events: pd.DataFrame | None,
) -> EventEffect:
    """Prophet's event effect over ``past`` and the ``horizon`` hours after it
    (``prophet_model`` was fitted on ``past`` or on less)."""
    past_effect = prophet.history_effect(prophet_model, past, events)  # type: ignore[attr-defined]
    _, effect = prophet.predict_components(prophet_model, past, horizon, events)  # type: ignore[attr-defined]
    return _effect_of(prophet_model, past_effect, effect)


def _effect_of(model: dict[str, Any], past: np.ndarray, future: np.ndarray) -> EventEffect:
    return EventEffect(past, future, bool(model.get("log")), bool(model.get("nonnegative")))


def _lifted(
    forecaster: Forecaster,
    past: pd.DataFrame,
    horizon: int,
    events: pd.DataFrame | None,
    effect: EventEffect,
) -> pd.DataFrame:
    """The ``+events`` variant of ``forecaster`` from ``past``: fitted on ``past`` with Prophet's
    learned past event effect taken out, Prophet's effect of the events in the horizon on top."""
    plain = remove_events(past, effect.past, log=effect.log)
    model = forecaster.fit(plain, events)
    frame = _usable(forecaster.predict(model, plain, horizon, events), horizon)
    return event_overlay(frame, effect.future, log=effect.log, nonnegative=effect.nonnegative)


def _ensemble(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) < 2:
        raise CandidateFailed(f"ensemble needs at least 2 member forecasts, got {len(frames)}")
    out = frames[0][["ds"]].copy()
    for col in FORECAST_COLUMNS[1:]:
        out[col] = np.median(np.vstack([f[col].to_numpy(dtype=float) for f in frames]), axis=0)
    return out


def _combine(frames: Sequence[pd.DataFrame], weights: Sequence[float]) -> pd.DataFrame:
    """The weighted mean of forecasts, every column, weights renormalised to sum to 1. A stored
    combination then replaces the averaged bounds with its own conformal interval."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    out = frames[0][["ds"]].copy()
    for col in FORECAST_COLUMNS[1:]:
        out[col] = w @ np.vstack([f[col].to_numpy(dtype=float) for f in frames])
    return out


def combination(
    results: Mapping[str, CandidateResult],
    chain: Sequence[str],
    y: np.ndarray,
    scored: Sequence[int],
    origins: Sequence[int],
    config: CVConfig,
) -> CandidateResult | None:
    """The served forecast: the ``COMBINE_BEST`` candidates of ``chain`` with the lowest finite
    CV MASE, those at most ``1 + COMBINE_WITHIN`` times the lowest, weighted by 1 / CV MASE.
    Scored at the ``scored`` cuts from its members' CV forecasts; its intervals are conformal
    from its own errors at every cut of ``origins`` where all members forecast out of sample, or,
    when fewer than 2 such, where any did (those members, weights renormalised);
    leave-one-origin-out coverage, as for every candidate. None when fewer than 2 candidates
    qualify or one has no CV forecast at a scored cut (the champion is then served alone)."""
    members = [
        n
        for n in chain
        if n != COMBINATION and math.isfinite(results[n].cv_mase) and results[n].model is not None
    ][:COMBINE_BEST]
    if members:
        limit = (1 + COMBINE_WITHIN) * results[members[0]].cv_mase
        members = [n for n in members if results[n].cv_mase <= limit]
    if len(members) < 2 or not scored:
        return None
    inverse = [1.0 / max(results[n].cv_mase, 1e-9) for n in members]
    weights = [v / sum(inverse) for v in inverse]
    h = config.horizon
    if any(c not in results[n].cv_points for c in scored for n in members):
        return None
    cuts = [c for c in origins if all(c in results[n].cv_points for n in members)]
    if len(cuts) < 2:  # one origin calibrates nothing honestly (its errors lean one way): every
        # origin where a member forecast, those that did with their weights renormalised, as at
        # forecast time when a member fails (a week's copy on 8-9 days of history has 1 origin)
        cuts = [c for c in origins if any(c in results[n].cv_points for n in members)]
    frames = []
    for c in cuts:
        have = [(n, w) for n, w in zip(members, weights, strict=True) if c in results[n].cv_points]
        if len(have) < len(members):
            total = sum(w for _, w in have)
            have = [(n, w / total) for n, w in have]
        point = sum(w * results[n].cv_points[c][:h] for n, w in have)
        frames.append(pd.DataFrame({"yhat": point, "yhat_lower": point, "yhat_upper": point,
                                    "yhat_q90": point}))  # fmt: skip
    actuals = [y[c : c + h] for c in cuts]
    scales = [mase_scale(y[:c], config.season) for c in cuts]
    cal, loo, loo90 = _calibration(frames, actuals, scales)
    scores = [_score(f, y[c : c + h], y[:c], config.season)
              for c, f in zip(cuts, frames, strict=True) if c in scored]  # fmt: skip
    model: dict[str, Any] = {"kind": COMBINATION, "members": members, "weights": weights}
    if cal is not None:
        model["conformal"] = cal
    return CandidateResult(
        name=COMBINATION,
        model=model,
        cv_mase=float(np.mean([v[0] for v in scores])),
        cv_smape=float(np.mean([v[1] for v in scores])),
        cv_coverage=loo,
        origins=len(scores),
        origin_mase=[float(v[0]) for v in scores],
        cv_coverage_q90=loo90,
    )


Score = tuple[float, float, float, float]  # MASE, sMAPE, coverage of the 80% interval and of q90


def _score(frame: pd.DataFrame, actual: np.ndarray, insample: np.ndarray, season: int) -> Score:
    f = frame["yhat"].to_numpy(dtype=float)
    return (
        mase(actual, f, mase_scale(insample, season)),
        smape(actual, f),
        coverage(actual, frame["yhat_lower"].to_numpy(), frame["yhat_upper"].to_numpy()),
        coverage(actual, -np.inf, frame["yhat_q90"].to_numpy()),
    )


# Conformal intervals: quantiles of a candidate's own CV errors (scaled by the series' MASE scale at
# each origin) per horizon step, pooled over +-CONFORMAL_POOL neighbouring steps.
CONFORMAL_PROBS = (0.05, 0.1, 0.9, 0.95)  # 90% = [0.05, 0.95], 80% = [0.1, 0.9], q90 = 0.9
CONFORMAL_POOL = 12


def conformal(errors: np.ndarray, pool: int = CONFORMAL_POOL) -> dict[str, list[float]]:
    """Scaled error quantiles per horizon step from ``errors`` (origins x steps), each step
    pooled over its +-``pool`` neighbours; tails never narrow with the step."""
    e = np.atleast_2d(np.asarray(errors, dtype=float))
    steps = e.shape[1]
    # each step's window of +-pool steps, padded with NaN past the ends (NaN is left out, so a
    # window holds exactly the errors of the slice e[:, h - pool : h + pool + 1]), all steps and
    # probabilities in one call: the same values as a call per step (0.6-0.7x its time at 48
    # steps, about the same at 24: numpy still loops over the steps inside)
    padded = np.pad(e, ((0, 0), (pool, pool)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * pool + 1, axis=1)
    flat = windows.transpose(1, 0, 2).reshape(steps, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step whose window is all NaN
        per_step = np.nanquantile(flat, CONFORMAL_PROBS, axis=1).T
    out: dict[str, list[float]] = {}
    for i, p in enumerate(CONFORMAL_PROBS):
        q = per_step[:, i]
        q = np.maximum.accumulate(q) if p > 0.5 else np.minimum.accumulate(q)
        out[repr(p)] = [float(v) for v in q]
    return out


def apply_conformal(
    frame: pd.DataFrame, cal: Mapping[str, Sequence[float]], scale: float, *, nonnegative: bool
) -> pd.DataFrame:
    """The frame with its intervals replaced by the conformal ones (a new frame): ``yhat_lower``
    and ``yhat_upper`` the 80% interval, ``yhat_q90`` the 0.9 quantile. Steps past the calibrated
    ones use the last calibrated step."""
    out = frame.copy()
    if not math.isfinite(scale):
        return out
    yhat = out["yhat"].to_numpy(dtype=float)
    n = len(yhat)

    def q(p: float) -> np.ndarray:
        vals = np.asarray(cal[repr(p)], dtype=float)
        return vals[np.minimum(np.arange(n), vals.size - 1)]

    lower, upper = yhat + scale * q(0.1), yhat + scale * q(0.9)
    out["yhat_lower"] = np.minimum(lower, yhat)
    out["yhat_upper"] = np.maximum(upper, yhat)
    out["yhat_q90"] = out["yhat_upper"]
    if nonnegative:
        for col in ("yhat_lower", "yhat_upper", "yhat_q90"):
            out[col] = clip_negative(out[col].to_numpy(dtype=float))
    return out


def _calibration(
    frames: Sequence[pd.DataFrame], actuals: Sequence[np.ndarray], scales: Sequence[float]
) -> tuple[dict[str, list[float]] | None, float, float]:
    """(conformal quantiles from every origin's errors, leave-one-origin-out coverage of the
    80% interval and of q90: each origin's interval calibrated on the other origins' errors
    only)."""
    ok = [i for i, s in enumerate(scales) if math.isfinite(s)]
    if not ok:
        return None, math.nan, math.nan
    errors = np.stack(
        [(actuals[i] - frames[i]["yhat"].to_numpy(dtype=float)) / scales[i] for i in ok]
    )
    covered, below = [], []
    for j, i in enumerate(ok):
        if len(ok) < 2:
            break
        cal = conformal(np.delete(errors, j, axis=0))
        f = apply_conformal(frames[i], cal, scales[i], nonnegative=False)
        covered.append(coverage(actuals[i], f["yhat_lower"].to_numpy(), f["yhat_upper"].to_numpy()))
        below.append(coverage(actuals[i], -np.inf, f["yhat_q90"].to_numpy()))
    if not covered:
        return conformal(errors), math.nan, math.nan
    return conformal(errors), float(np.mean(covered)), float(np.mean(below))


def _forecasters(names: Sequence[str] | None) -> dict[str, Forecaster]:
    chosen = list(FORECASTERS) if names is None else [n for n in names if n in FORECASTERS]
    return {n: FORECASTERS[n]() for n in chosen}


@dataclass(frozen=True)
class _Origin:
    """One CV origin: whether it is scored, its actuals and in-sample part, and when it is."""

    scored: bool
    actual: np.ndarray
    insample: np.ndarray
    season: int
    when: str

    def keep(
        self,
        name: str,
        got: pd.DataFrame | Exception,
        per_origin: dict[str, list[pd.DataFrame | None]],
        scores: dict[str, list[Score]],
        errors: dict[str, str],
    ) -> None:
        """Record a candidate's forecast at this origin (scored if the origin is), or its
        failure: at a scored origin it sinks the candidate; at a calibration-only origin it
        only costs the intervals."""
        if isinstance(got, Exception):
            per_origin[name].append(None)
            if self.scored:
                errors.setdefault(name, f"CV at {self.when}: {got}")
            return
        per_origin[name].append(got)
        if self.scored:
            scores[name].append(_score(got, self.actual, self.insample, self.season))


def _fit_forecast(
    fc: Forecaster, past: pd.DataFrame, horizon: int, events: pd.DataFrame | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    model = fc.fit(past, events)
    return model, _usable(fc.predict(model, past, horizon, events), horizon)


def _fit_forecast_effect(
    fc: Forecaster, past: pd.DataFrame, horizon: int, events: pd.DataFrame | None
) -> tuple[pd.DataFrame, EventEffect]:
    """The event source's forecast and its event effect from one fit and one prediction (what
    ``_fit_forecast`` and ``event_effect`` give, without predicting twice)."""
    fit_with_effect = getattr(fc, "fit_with_effect", None)
    if fit_with_effect is None:
        model = fc.fit(past, events)
        past_effect = fc.history_effect(model, past, events)  # type: ignore[attr-defined]
    else:
        model, past_effect = fit_with_effect(past, events)
    frame, future = fc.predict_components(model, past, horizon, events)  # type: ignore[attr-defined]
    return _usable(frame, horizon), _effect_of(model, past_effect, future)


def train_series(
    history: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    config: CVConfig = CVConfig(),
    forecasters: Mapping[str, Forecaster] | None = None,
    ensembles: Mapping[str, Sequence[str]] | None = None,
    extra_scores: Mapping[str, float] | None = None,
    extra_candidates: Mapping[str, CandidateResult] | None = None,
    what: str = "series",
) -> SeriesTraining:
    """Cross-validate every candidate, fit each on the whole history, choose the champion.

    ``history``: pandas ``ds, y`` (regularized here). ``extra_scores``: CV MASE of candidates
    scored elsewhere (a panel model), competing for the champion without a local model.
    ``extra_candidates``: candidates scored elsewhere at the same cutoffs (``panel_candidate``),
    with the (reference) model the registry stores for them.
    """
    hist = regularize(history)
    check_history(hist, what)
    cands = dict(forecasters) if forecasters is not None else _forecasters(None)
    ens = dict(ENSEMBLES if ensembles is None else ensembles)
    # events variants: every other local candidate (and ensemble) with Prophet's event effect
    with_events = events is not None and not events.empty and EVENT_SOURCE in cands
    variants = [events_variant(n) for n in cands if n != EVENT_SOURCE] if with_events else []
    if with_events:
        for name, members in list(ens.items()):
            ens[events_variant(name)] = tuple(
                m if m == EVENT_SOURCE or m not in cands else events_variant(m) for m in members
            )
    y = hist["y"].to_numpy(dtype=float)
    cuts = scored_cutoffs(len(hist), config)
    extra = max(0, config.calibration_origins - config.n_origins)
    calib_only = cv_cutoffs(len(hist), replace(config, n_origins=config.n_origins + extra))
    calib_only = [c for c in calib_only if c not in cuts]  # before the scored ones
    notes: list[str] = []
    if not cuts:
        notes.append(
            f"no CV origin: {len(hist)} hours < {config.min_train} + {config.horizon}; "
            "champion by preference order"
        )

    per_origin: dict[str, list[pd.DataFrame | None]] = {n: [] for n in [*cands, *variants, *ens]}
    scores: dict[str, list[Score]] = {n: [] for n in per_origin}
    errors: dict[str, str] = {}
    all_cuts = [*calib_only, *cuts]
    for cut in all_cuts:
        scored = cut in cuts
        actual = y[cut : cut + config.horizon]
        insample = y[:cut]
        past = hist.iloc[:cut].reset_index(drop=True)
        at = _Origin(scored, actual, insample, config.season, str(hist["ds"].iloc[cut - 1]))
        h = config.horizon
        effect: EventEffect | None = None  # Prophet's at this origin, once for every variant
        for name, fc in cands.items():
            try:
                if name == EVENT_SOURCE and variants:
                    got, effect = _fit_forecast_effect(fc, past, h, events)
                else:
                    got = _fit_forecast(fc, past, h, events)[1]
            except Exception as exc:  # any failure sinks the candidate, recorded
                got = exc
            at.keep(name, got, per_origin, scores, errors)
        for name in variants:
            try:
                if effect is None:
                    raise CandidateFailed(f"no {EVENT_SOURCE} model at this origin")
                got = _lifted(cands[base_of(name)], past, h, events, effect)
            except Exception as exc:
                got = exc
            at.keep(name, got, per_origin, scores, errors)
        for name, members in ens.items():
            frames = [per_origin[m][-1] for m in members if m in per_origin and per_origin[m]]
            try:
                got = _ensemble([f for f in frames if f is not None])
            except Exception as exc:
                got = exc
            at.keep(name, got, per_origin, scores, errors)

    cv_actuals = [y[cut : cut + config.horizon] for cut in all_cuts]
    cv_scales = [mase_scale(y[:cut], config.season) for cut in all_cuts]
    results: dict[str, CandidateResult] = {}
    for name in per_origin:
        model: dict[str, Any] | None = None
        if name in cands:
            try:
                model = cands[name].fit(hist, events)
            except Exception as exc:
                errors.setdefault(name, f"fit: {exc}")
        elif name in variants:  # refitted on the de-evented history at forecast time
            model = {"kind": name, "base": base_of(name), "events": EVENT_SOURCE}
        else:
            model = {"kind": name, "members": list(ens[name])}
        s = scores[name]
        failed = name in errors or (cuts and len(s) < len(cuts))
        frames = per_origin[name]
        cv_cov = math.nan if not s else float(np.mean([v[2] for v in s]))
        cv_q90 = math.nan if not s else float(np.mean([v[3] for v in s]))
        ok = [i for i, f in enumerate(frames) if f is not None]
        if model is not None and cuts and not failed and ok:
            cal, loo, loo90 = _calibration(
                [frames[i] for i in ok],  # type: ignore[misc]
                [cv_actuals[i] for i in ok],
                [cv_scales[i] for i in ok],
            )
            if cal is not None:  # what is served: the conformal interval, measured leaving
                # one origin out; with one origin to calibrate on, not measured (NaN), never
                # the raw interval's coverage (a week's copy on 7 days of history: zero width)
                model = {**model, "conformal": cal}
                cv_cov, cv_q90 = loo, loo90
        results[name] = CandidateResult(
            name=name,
            model=model,
            cv_mase=math.inf if failed or not s else float(np.mean([v[0] for v in s])),
            cv_smape=math.inf if failed or not s else float(np.mean([v[1] for v in s])),
            cv_coverage=cv_cov,
            origins=len(s),
            error=errors.get(name),
            origin_mase=[float(v[0]) for v in s],
            cv_points={all_cuts[i]: frames[i]["yhat"].to_numpy(dtype=float) for i in ok},  # type: ignore[index]
            cv_coverage_q90=cv_q90,
        )
    for name, score in (extra_scores or {}).items():
        results[name] = CandidateResult(name, None, float(score), math.nan, math.nan, len(cuts))
    for name, cand in (extra_candidates or {}).items():
        results[name] = cand
        if cand.error:
            errors.setdefault(name, cand.error)

    champion, chain = choose_champion(results, order=[*(extra_candidates or {}), *per_origin])
    kept = kept_panel(results, chain, list(extra_candidates or {}))
    if kept is not None:
        champion, chain = kept, [kept, *(n for n in chain if n != kept)]
    elif (combo := combination(results, chain, y, cuts, all_cuts, config)) is not None:
        results[COMBINATION] = combo
        champion, chain = COMBINATION, [COMBINATION, *chain]
    for name, r in results.items():
        if r.error:
            notes.append(f"{name} failed ({r.error}); next in the chain used instead")
    return SeriesTraining(
        candidates=results,
        champion=champion,
        chain=chain,
        train_start=pd.Timestamp(hist["ds"].iloc[0]),
        train_end=pd.Timestamp(hist["ds"].iloc[-1]),
        n_obs=len(hist),
        notes=notes,
    )


def kept_panel(
    results: Mapping[str, CandidateResult], chain: Sequence[str], panels: Sequence[str]
) -> str | None:
    """The panel candidate served alone: the first of ``panels`` with a model and a finite CV
    MASE that no candidate of ``chain`` beats by more than ``PANEL_KEEP_MARGIN``; else None."""
    scores = [results[n].cv_mase for n in chain if math.isfinite(results[n].cv_mase)]
    for name in panels:
        r = results.get(name)
        if r is None or r.model is None or not math.isfinite(r.cv_mase) or r.error:
            continue
        if min(scores, default=r.cv_mase) >= (1 - PANEL_KEEP_MARGIN) * r.cv_mase:
            return name
    return None


def choose_champion(
    results: Mapping[str, CandidateResult], order: Sequence[str] | None = None
) -> tuple[str, list[str]]:
    """Lowest CV MASE first (ties: preference order); candidates that failed go last, then the
    last resort. Candidates whose final fit failed and that have no score are dropped."""
    order = list(order or results)
    rank = {n: i for i, n in enumerate(order)}

    def key(name: str) -> tuple[float, int]:
        r = results[name]
        score = r.cv_mase if math.isfinite(r.cv_mase) else math.inf
        return (score, rank.get(name, len(order)))

    usable = [n for n, r in results.items() if r.model is not None or math.isfinite(r.cv_mase)]
    chain = sorted(usable, key=key)
    if LAST_RESORT in results and LAST_RESORT in chain:
        chain.remove(LAST_RESORT)
        # the last resort stays where its score puts it if it is competitive, else goes last
        pos = next((i for i, n in enumerate(chain) if key(n) > key(LAST_RESORT)), len(chain))
        chain.insert(pos, LAST_RESORT)
    if not chain:
        raise CandidateFailed("no candidate could be fitted")
    return chain[0], chain


def forecast_series(
    models: Mapping[str, dict[str, Any]],
    chain: Sequence[str],
    history: pd.DataFrame,
    horizon: int,
    events: pd.DataFrame | None = None,
    *,
    forecasters: Mapping[str, Forecaster] | None = None,
    refused: Mapping[str, str] | None = None,
) -> SeriesForecast:
    """Forecast ``horizon`` hours after the history's last hour with the first candidate of
    ``chain`` that works. ``models``: name -> stored model; ``refused``: name -> why its stored
    model could not be loaded (e.g. a hash mismatch). A ``<c>+events`` name is served as it was
    scored (see the module doc): ``c`` on the history with Prophet's past event effect taken out,
    Prophet's effect of the scheduled events on top; it needs the stored Prophet model. Any other
    name is served plain: events are counted once, by the variant that was scored."""
    hist = regularize(history)
    cands = dict(forecasters) if forecasters is not None else _forecasters(None)
    refused = dict(refused or {})
    notes = [f"{n} refused: {why}" for n, why in refused.items()]
    cache: dict[str, pd.DataFrame] = {}
    effects: dict[str, EventEffect] = {}  # per event source, once for every +events member
    y = hist["y"].to_numpy(dtype=float)
    scale = mase_scale(y, DAY)
    nonneg = bool(y.size and np.nanmin(y) >= 0)

    def one(name: str) -> pd.DataFrame:
        """The forecast of one candidate of the chain."""
        if name in cache:
            return cache[name]
        if name in refused:
            raise CandidateFailed(f"model refused: {refused[name]}")
        model = models.get(name)
        if model is None:
            raise CandidateFailed("no stored model")
        if "members" in model:
            parts, weights = [], []
            members = list(model["members"])
            for m, w in zip(members, model.get("weights") or [1.0] * len(members), strict=True):
                try:
                    parts.append(one(m))
                    weights.append(w)
                except Exception:  # noqa: S112 - a failed member is left out; _ensemble raises
                    continue  # CandidateFailed (named) when fewer than 2 members are left
            if "weights" in model:
                if len(parts) < 2:
                    raise CandidateFailed(f"{len(parts)} of its members could forecast")
                frame = _combine(parts, weights)
            else:
                frame = _ensemble(parts)
        elif "base" in model:  # an events variant
            base, source = str(model["base"]), str(model.get("events", EVENT_SOURCE))
            if source in refused or source not in models or source not in cands:
                raise CandidateFailed(f"needs the {source} model for the event effect")
            if base not in cands:
                raise CandidateFailed(f"unknown candidate {base!r}")
            if source not in effects:
                effects[source] = event_effect(cands[source], models[source], hist, horizon, events)
            effect = effects[source]
            frame = _lifted(cands[base], hist, horizon, events, effect)
        elif name in cands:
            frame = _usable(cands[name].predict(model, hist, horizon, events), horizon)
        else:
            raise CandidateFailed(f"unknown candidate {name!r}")
        if model.get("conformal"):
            frame = apply_conformal(frame, model["conformal"], scale, nonnegative=nonneg)
        cache[name] = frame
        return frame

    for name in [*chain, *([LAST_RESORT] if LAST_RESORT not in chain else [])]:
        try:
            frame = one(name)
        except Exception as exc:
            notes.append(f"{name} failed: {exc}")
            continue
        if notes:
            notes.append(f"fell back to {name}")
        return SeriesForecast(frame=frame, model=name, notes=notes)
    if LAST_RESORT not in models and LAST_RESORT in cands:
        try:  # nothing stored worked: the last resort needs no fitted state
            spec = cands[LAST_RESORT].fit(hist, events)
            frame = _usable(cands[LAST_RESORT].predict(spec, hist, horizon, events), horizon)
            notes.append(f"fell back to an unstored {LAST_RESORT}")
            return SeriesForecast(frame=frame, model=LAST_RESORT, notes=notes)
        except Exception as exc:
            notes.append(f"{LAST_RESORT} failed: {exc}")
    raise CandidateFailed("; ".join(notes) or "no candidate in the chain")


def panel_candidate(
    name: str,
    model: dict[str, Any],
    history: pd.DataFrame,
    forecast_from: Callable[[pd.DataFrame, int], pd.DataFrame],
    *,
    config: CVConfig = CVConfig(),
    earliest_cutoff: int | None = None,
    early: Mapping[int, np.ndarray] | None = None,
) -> CandidateResult:
    """Score a model trained elsewhere (across a panel) at the series' own CV cutoffs, the same
    windows ``train_series`` scores the local candidates on. ``forecast_from(past, horizon)`` gets
    only the history before each cutoff. ``earliest_cutoff``: the first hour the panel model did
    not train on; a cutoff before it would be look-ahead and fails the candidate. ``early``:
    out-of-sample point forecasts made elsewhere at earlier origins (hours before the series'
    end -> forecast, e.g. the panel's calibration model), kept for the combination's CV."""
    hist = regularize(history)
    y = hist["y"].to_numpy(dtype=float)
    cuts = scored_cutoffs(len(hist), config)
    scores: list[Score] = []
    points: dict[int, np.ndarray] = {}
    for back, f in (early or {}).items():
        if len(hist) - back >= config.min_train and len(f) >= config.horizon:
            points[len(hist) - back] = np.asarray(f[: config.horizon], dtype=float)
    error = None
    for cut in cuts:
        if earliest_cutoff is not None and cut < earliest_cutoff:
            error = (
                f"CV cutoff {hist['ds'].iloc[cut - 1]} is inside the panel model's training "
                "data (look-ahead): hold out more hours when training it"
            )
            break
        try:
            past = hist.iloc[:cut].reset_index(drop=True)
            frame = _usable(forecast_from(past, config.horizon), config.horizon)
        except Exception as exc:
            error = f"CV at {hist['ds'].iloc[cut - 1]}: {exc}"
            break
        scores.append(_score(frame, y[cut : cut + config.horizon], y[:cut], config.season))
        points[cut] = frame["yhat"].to_numpy(dtype=float)
    ok = error is None and len(scores) == len(cuts) and bool(scores)
    return CandidateResult(
        name=name,
        model=model,
        cv_mase=float(np.mean([v[0] for v in scores])) if ok else math.inf,
        cv_smape=float(np.mean([v[1] for v in scores])) if ok else math.inf,
        cv_coverage=float(np.mean([v[2] for v in scores])) if scores else math.nan,
        origins=len(scores),
        error=error,
        origin_mase=[float(v[0]) for v in scores],
        cv_points=points if ok else {},
        cv_coverage_q90=float(np.mean([v[3] for v in scores])) if scores else math.nan,
    )
