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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.accuracy import coverage, mase, mase_scale, smape
from models.baselines import MSTLForecaster, SeasonalNaive, regularize
from models.prophet_model import ProphetForecaster, event_overlay, remove_events

MIN_HISTORY_HOURS = 48
FORECAST_COLUMNS = ("ds", "yhat", "yhat_lower", "yhat_upper", "yhat_q90")


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
    "snaive168": lambda: SeasonalNaive(168),
    "snaive24": lambda: SeasonalNaive(24),
}
ENSEMBLES: dict[str, tuple[str, ...]] = {"ensemble": ("snaive24", "mstl", "prophet")}
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


@dataclass
class CandidateResult:
    name: str
    model: dict[str, Any] | None  # None when the final fit failed
    cv_mase: float  # mean over origins; inf if it failed at any origin
    cv_smape: float
    cv_coverage: float  # share of actuals inside the interval in CV
    origins: int
    error: str | None = None


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
    model: str  # the candidate that produced it (``+events`` when Prophet's event effect was added)
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


def _ensemble(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) < 2:
        raise CandidateFailed(f"ensemble needs at least 2 member forecasts, got {len(frames)}")
    out = frames[0][["ds"]].copy()
    for col in FORECAST_COLUMNS[1:]:
        out[col] = np.median(np.vstack([f[col].to_numpy(dtype=float) for f in frames]), axis=0)
    return out


def _score(
    frame: pd.DataFrame, actual: np.ndarray, insample: np.ndarray, season: int
) -> tuple[float, float, float]:
    f = frame["yhat"].to_numpy(dtype=float)
    return (
        mase(actual, f, mase_scale(insample, season)),
        smape(actual, f),
        coverage(actual, frame["yhat_lower"].to_numpy(), frame["yhat_upper"].to_numpy()),
    )


def _forecasters(names: Sequence[str] | None) -> dict[str, Forecaster]:
    chosen = list(FORECASTERS) if names is None else [n for n in names if n in FORECASTERS]
    return {n: FORECASTERS[n]() for n in chosen}


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
    y = hist["y"].to_numpy(dtype=float)
    cuts = cv_cutoffs(len(hist), config)
    notes: list[str] = []
    if not cuts:
        notes.append(
            f"no CV origin: {len(hist)} hours < {config.min_train} + {config.horizon}; "
            "champion by preference order"
        )

    per_origin: dict[str, list[pd.DataFrame | None]] = {n: [] for n in [*cands, *ens]}
    scores: dict[str, list[tuple[float, float, float]]] = {n: [] for n in per_origin}
    errors: dict[str, str] = {}
    for cut in cuts:
        actual = y[cut : cut + config.horizon]
        insample = y[:cut]
        for name, fc in cands.items():
            try:
                frame = forecast_at(fc, hist, cut, config.horizon, events)
                per_origin[name].append(frame)
                scores[name].append(_score(frame, actual, insample, config.season))
            except Exception as exc:  # any failure sinks the candidate, recorded
                per_origin[name].append(None)
                errors.setdefault(name, f"CV at {hist['ds'].iloc[cut - 1]}: {exc}")
        for name, members in ens.items():
            frames = [per_origin[m][-1] for m in members if m in per_origin and per_origin[m]]
            try:
                frame = _ensemble([f for f in frames if f is not None])
                per_origin[name].append(frame)
                scores[name].append(_score(frame, actual, insample, config.season))
            except Exception as exc:
                per_origin[name].append(None)
                errors.setdefault(name, f"CV at {hist['ds'].iloc[cut - 1]}: {exc}")

    results: dict[str, CandidateResult] = {}
    for name in per_origin:
        model: dict[str, Any] | None = None
        if name in cands:
            try:
                model = cands[name].fit(hist, events)
            except Exception as exc:
                errors.setdefault(name, f"fit: {exc}")
        else:
            model = {"kind": name, "members": list(ens[name])}
        s = scores[name]
        failed = name in errors or (cuts and len(s) < len(cuts))
        results[name] = CandidateResult(
            name=name,
            model=model,
            cv_mase=math.inf if failed or not s else float(np.mean([v[0] for v in s])),
            cv_smape=math.inf if failed or not s else float(np.mean([v[1] for v in s])),
            cv_coverage=math.nan if not s else float(np.mean([v[2] for v in s])),
            origins=len(s),
            error=errors.get(name),
        )
    for name, score in (extra_scores or {}).items():
        results[name] = CandidateResult(name, None, float(score), math.nan, math.nan, len(cuts))
    for name, cand in (extra_candidates or {}).items():
        results[name] = cand
        if cand.error:
            errors.setdefault(name, cand.error)

    champion, chain = choose_champion(results, order=[*(extra_candidates or {}), *per_origin])
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
    event_effect: bool = True,
) -> SeriesForecast:
    """Forecast ``horizon`` hours after the history's last hour with the first candidate of
    ``chain`` that works. ``models``: name -> stored model; ``refused``: name -> why its stored
    model could not be loaded (e.g. a hash mismatch). When the candidate used is not Prophet and
    a Prophet model with event regressors exists, Prophet's learned event effect is applied to the
    forecast (model name ``<used>+events``)."""
    hist = regularize(history)
    cands = dict(forecasters) if forecasters is not None else _forecasters(None)
    refused = dict(refused or {})
    notes = [f"{n} refused: {why}" for n, why in refused.items()]
    cache: dict[str, tuple[pd.DataFrame, bool]] = {}
    effect = (
        _event_effect(models["prophet"], cands["prophet"], hist, horizon, events, notes)
        if event_effect and "prophet" in models and "prophet" in cands
        and "prophet" not in refused
        else None
    )  # fmt: skip

    # Past events are in the history too: a model that copies the past (seasonal naive, MSTL)
    # would repeat last week's tournament AND get Prophet's uplift on top. Take them out first.
    plain_hist = hist
    if effect is not None:
        try:
            past = cands["prophet"].history_effect(models["prophet"], hist, events)  # type: ignore[attr-defined]
            plain_hist = remove_events(hist, past, log=bool(models["prophet"].get("log")))
        except Exception as exc:
            notes.append(f"past event effect not removed: {exc}")

    def one(name: str) -> tuple[pd.DataFrame, bool]:
        """The forecast of one candidate and whether the event effect was added to it."""
        if name in cache:
            return cache[name]
        if name in refused:
            raise CandidateFailed(f"model refused: {refused[name]}")
        model = models.get(name)
        if model is None:
            raise CandidateFailed("no stored model")
        lifted = False
        if "members" in model:
            parts = []
            for m in model["members"]:
                try:
                    parts.append(one(m))
                except Exception:  # noqa: S112 - a failed member is left out; _ensemble raises
                    continue  # CandidateFailed (named) when fewer than 2 members are left
            frame = _ensemble([f for f, _ in parts])
            lifted = any(flag for _, flag in parts)
        elif name in cands:
            lift = effect is not None and name != "prophet"
            base_hist = plain_hist if lift else hist
            frame = _usable(cands[name].predict(model, base_hist, horizon, events), horizon)
            if lift and effect is not None:
                frame = event_overlay(
                    frame,
                    effect,
                    log=bool(models["prophet"].get("log")),
                    nonnegative=bool(models["prophet"].get("nonnegative")),
                )
                lifted = True
        else:
            raise CandidateFailed(f"unknown candidate {name!r}")
        cache[name] = (frame, lifted)
        return frame, lifted

    for name in [*chain, *([LAST_RESORT] if LAST_RESORT not in chain else [])]:
        try:
            frame, lifted = one(name)
        except Exception as exc:
            notes.append(f"{name} failed: {exc}")
            continue
        if notes:
            notes.append(f"fell back to {name}")
        return SeriesForecast(frame=frame, model=f"{name}+events" if lifted else name, notes=notes)
    if LAST_RESORT not in models and LAST_RESORT in cands:
        try:  # nothing stored worked: the last resort needs no fitted state
            spec = cands[LAST_RESORT].fit(hist, events)
            frame = _usable(cands[LAST_RESORT].predict(spec, hist, horizon, events), horizon)
            notes.append(f"fell back to an unstored {LAST_RESORT}")
            return SeriesForecast(frame=frame, model=LAST_RESORT, notes=notes)
        except Exception as exc:
            notes.append(f"{LAST_RESORT} failed: {exc}")
    raise CandidateFailed("; ".join(notes) or "no candidate in the chain")


def _event_effect(
    prophet_model: dict[str, Any],
    prophet: Forecaster,
    hist: pd.DataFrame,
    horizon: int,
    events: pd.DataFrame | None,
    notes: list[str],
) -> np.ndarray | None:
    """Prophet's learned effect of the scheduled events in the horizon, or None if there is none."""
    if not prophet_model.get("regressors") or events is None or events.empty:
        return None
    try:
        _, effect = prophet.predict_components(prophet_model, hist, horizon, events)  # type: ignore[attr-defined]
    except Exception as exc:
        notes.append(f"event effect skipped: {exc}")
        return None
    return effect if np.any(np.abs(effect) > 1e-9) else None


def panel_candidate(
    name: str,
    model: dict[str, Any],
    history: pd.DataFrame,
    forecast_from: Callable[[pd.DataFrame, int], pd.DataFrame],
    *,
    config: CVConfig = CVConfig(),
    earliest_cutoff: int | None = None,
) -> CandidateResult:
    """Score a model trained elsewhere (across a panel) at the series' own CV cutoffs, the same
    windows ``train_series`` scores the local candidates on. ``forecast_from(past, horizon)`` gets
    only the history before each cutoff. ``earliest_cutoff``: the first hour the panel model did
    not train on; a cutoff before it would be look-ahead and fails the candidate."""
    hist = regularize(history)
    y = hist["y"].to_numpy(dtype=float)
    cuts = cv_cutoffs(len(hist), config)
    scores: list[tuple[float, float, float]] = []
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
    ok = error is None and len(scores) == len(cuts) and bool(scores)
    return CandidateResult(
        name=name,
        model=model,
        cv_mase=float(np.mean([v[0] for v in scores])) if ok else math.inf,
        cv_smape=float(np.mean([v[1] for v in scores])) if ok else math.inf,
        cv_coverage=float(np.mean([v[2] for v in scores])) if scores else math.nan,
        origins=len(scores),
        error=error,
    )
