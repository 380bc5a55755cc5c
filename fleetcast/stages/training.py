"""Train the forecasting models of every series in the database: plain functions that the CLI,
the Prefect tasks and other modules call.

- ``train_all(settings, game_type=None, metric=None) -> list[TrainResult]``
- ``train_if_needed(settings) -> list[TrainResult]`` (series flagged by the accuracy loop)

Panel stage (``train_all``): for each metric, one global LightGBM (``models.global_gbm``) is
trained across all the series of that metric at once (cross-learning), holding out each series'
last ``PANEL_HORIZON`` (48) hours; it is scored per series at the same rolling-origin cutoffs as the
local candidates (all inside the held-out hours: no look-ahead in the point forecasts, hence in
the CV MASE that picks the champion; its intervals are calibrated on windows before the held-out
hours, so its CV coverage is measured on hours the calibration never saw) and competes for the
champion of each series. Panels of more than ``LARGE_PANEL`` series get only the cheap local
candidates (``models.selection.CHEAP_CANDIDATES``), and panels of fewer than
``models.selection.PANEL_MIN_SERIES`` no panel model, unless ``candidates`` says otherwise.
The model is stored once per panel (``registry.store_panel``, JSON + sha256) and each series'
``global_gbm`` row points at it; ``fleetcast.stages.serving`` loads it to forecast.

The database is read, closed while models fit (so other runs are not blocked for minutes), and
written in one transaction at the end. The local per-series jobs run in the training worker pool
(``fleetcast.resources.pool``: in-process, threads or spawned processes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

from fleetcast.config import Settings, job_runner
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import (
    SeriesKey,
    model_key,
    prune_panels,
    store_panel,
    store_training,
)
from fleetcast.stages.accuracy import series_needing_retrain
from fleetcast.stages.histories import events_for, load_events, load_histories
from models import global_gbm
from models.baselines import regularize
from models.clock import utcnow
from models.selection import (
    CHEAP_CANDIDATES,
    ENSEMBLES,
    FORECASTERS,
    PANEL_MIN_SERIES,
    CandidateResult,
    CVConfig,
    Forecaster,
    InsufficientHistory,
    SeriesTraining,
    panel_candidate,
    scored_cutoffs,
    train_series,
)

PANEL = "global_gbm"  # the panel candidate's name in the registry and `--candidates`
PANEL_HORIZON = 48  # hours the panel model forecasts (and holds out of its training)
LARGE_PANEL = 50  # above this many series, only cheap local candidates by default


@dataclass
class TrainResult:
    key: SeriesKey
    status: str  # trained | skipped (too little history) | failed
    champion: str | None = None
    score: float | None = None  # the champion's CV MASE
    n_obs: int = 0
    seconds: float = 0.0
    message: str = ""
    model_ids: dict[str, str] = field(default_factory=dict)


def slow_candidates(candidates: Sequence[str] | None) -> bool:
    """Whether local ``candidates`` (None: all) include one that fits in seconds, not
    milliseconds: anything beyond ``CHEAP_CANDIDATES`` (prophet, mstl, their ensemble)."""
    return candidates is None or any(c not in CHEAP_CANDIDATES for c in candidates)


def _candidates(
    names: Sequence[str] | None,
) -> tuple[dict[str, Forecaster] | None, dict[str, tuple[str, ...]] | None]:
    if names is None:
        return None, None
    unknown = [n for n in names if n not in FORECASTERS]
    if unknown:
        raise ValueError(f"unknown candidates {unknown}: choose from {sorted(FORECASTERS)}")
    ens = {e: m for e, m in ENSEMBLES.items() if sum(x in names for x in m) >= 2}
    return {n: FORECASTERS[n]() for n in names}, ens


def _train_one(
    key: SeriesKey,
    history: pd.DataFrame,
    events: pd.DataFrame,  # the series' own (histories.events_for)
    cv: CVConfig,
    candidates: Sequence[str] | None = None,
    panel: PanelScore | None = None,
) -> tuple[TrainResult, SeriesTraining | None]:
    start = time.perf_counter()
    forecasters, ensembles = _candidates(candidates)
    try:
        training = train_series(
            history,
            events,
            config=cv,
            forecasters=forecasters,
            ensembles=ensembles,
            extra_candidates={PANEL: panel.result} if panel is not None else None,
            what=key.label(),
        )
    except InsufficientHistory as exc:
        return TrainResult(key, "skipped", n_obs=len(history), message=str(exc)), None
    except Exception as exc:  # one series failing never stops the others
        return TrainResult(key, "failed", n_obs=len(history), message=str(exc)), None
    champ = training.candidates[training.champion]
    if panel is not None:
        training.notes.insert(0, panel.note)
    training.notes.append(_why(training))
    result = TrainResult(
        key,
        "trained",
        champion=training.champion,
        score=champ.cv_mase if np.isfinite(champ.cv_mase) else None,
        n_obs=training.n_obs,
        seconds=time.perf_counter() - start,
        message="; ".join(training.notes),
    )
    return result, training


@dataclass
class PanelScore:
    """A panel model's CV result for one series and the registry note about its panel."""

    result: CandidateResult
    note: str


@dataclass
class PanelFit:
    metric: str
    model_json: str | None  # None: the panel model could not be trained
    n_series: int
    horizon: int
    seconds: float
    note: str
    scores: dict[SeriesKey, PanelScore] = field(default_factory=dict)
    panel_id: str = ""
    sha256: str = ""


# key, history, the series' events, CV, local candidates (None = all), panel score: plain,
# picklable data (what crosses to a pool process or a Dask worker; no path, no connection)
TrainJob = tuple[
    SeriesKey, pd.DataFrame, pd.DataFrame, CVConfig, list[str] | None, PanelScore | None
]


def _train_job(job: TrainJob) -> tuple[TrainResult, SeriesTraining | None]:
    """``_train_one`` on one job tuple: module level, so a spawned process or a Dask worker can
    run it."""
    return _train_one(*job)


def _why(training: SeriesTraining) -> str:
    """Why the champion won: its CV MASE beside the runner-up's."""
    c = training.candidates
    first = c[training.champion]
    text = f"champion {training.champion} (cv_mase {first.cv_mase:.3f}"
    model = first.model or {}
    if "weights" in model:  # a combination: its members and their weights
        pairs = zip(model["members"], model["weights"], strict=True)
        text += " of " + " + ".join(f"{w:.2f} {m}" for m, w in pairs)
    others = [n for n in training.chain[1:] if np.isfinite(c[n].cv_mase)]
    if others:
        text += f"; next {others[0]} {c[others[0]].cv_mase:.3f}"
    return text + f", {first.origins} CV origins)"


def _panel_forecast_from(
    fitted: global_gbm.FittedGBM,
    label: str,
    known: dict[int, tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> object:
    """The panel model's forecasts for the series `label` (its interval multiplier) from a
    history cut at any hour. `known`: point forecasts already made (``_cv_points``), by the
    history's length, with the history they were made from (used only for that history)."""

    def forecast_from(past: pd.DataFrame, horizon: int) -> pd.DataFrame:
        start = pd.Timestamp(past["ds"].iloc[0]).to_pydatetime()
        y = past["y"].to_numpy(dtype=float)
        hit = (known or {}).get(len(y))
        points = [hit[1]] if hit is not None and np.array_equal(hit[0], y) else None
        out = global_gbm.predict(fitted, {label: (start, y)}, horizon, points=points)
        if out["model"][0] != global_gbm.MODEL_NAME:
            raise ValueError(f"panel model could not forecast ({out['model'][0]} instead)")
        return panel_frame(out)

    return forecast_from


def panel_frame(out: pl.DataFrame) -> pd.DataFrame:
    """One series' rows of a ``global_gbm.predict`` result as a forecast frame (``ds, yhat,
    yhat_lower, yhat_upper, yhat_q90``)."""
    return pd.DataFrame(
        {
            "ds": out["ds"].cast(pl.Datetime("ns")).to_numpy(),
            "yhat": out["yhat"].to_numpy(),
            "yhat_lower": out["yhat_lower"].to_numpy(),
            "yhat_upper": out["yhat_upper"].to_numpy(),
            "yhat_q90": out["q90"].to_numpy(),
        }
    )


def _fit_panel(
    metric: str,
    histories: dict[SeriesKey, pd.DataFrame],
    cv: CVConfig,
    *,
    local: str,
    threads: int | None,
    config: global_gbm.GBMConfig | None,
) -> PanelFit:
    """Train the global model across the series of one metric and score it per series at the
    local candidates' CV cutoffs, all inside the hours it held out (no look-ahead)."""
    start = time.perf_counter()
    horizon = max(PANEL_HORIZON, cv.n_origins * cv.horizon)
    arrays = {
        k: global_gbm.regularize(long_series(k, h))[k.label()][1] for k, h in histories.items()
    }
    try:
        fitted = global_gbm.fit(
            {k.label(): v for k, v in arrays.items()}, horizon, n_jobs=threads, config=config
        )
    except Exception as exc:  # recorded: the local candidates still compete
        return PanelFit(metric, None, 0, horizon, time.perf_counter() - start, f"{PANEL}: {exc}")
    if fitted.booster is None:
        why = "; ".join(fitted.notes) or "not trained"
        return PanelFit(metric, None, 0, horizon, time.perf_counter() - start, f"{PANEL}: {why}")
    text = global_gbm.dumps(fitted)
    note = (
        f"panel stage: {PANEL} trained across {fitted.n_series_trained} of {len(histories)} "
        f"series of metric {metric} (last {horizon} h of each held out and used for CV; "
        f"{'; '.join(fitted.notes)}); local candidates: {local}"
    )
    fit = PanelFit(metric, text, fitted.n_series_trained, horizon, 0.0, note)
    scored = fitted.scored()  # the model the CV hours were held from
    known = _cv_points(scored, histories, cv)
    for key, hist in histories.items():
        n = len(arrays[key])
        result = panel_candidate(
            PANEL,
            {"kind": PANEL},  # completed with the panel id when stored
            hist,
            _panel_forecast_from(scored, key.label(), known[key]),  # type: ignore[arg-type]
            config=cv,
            earliest_cutoff=n - horizon,
            early=fitted.early.get(key.label()),
        )
        fit.scores[key] = PanelScore(result, note)
    fit.seconds = time.perf_counter() - start
    return fit


def _cv_points(
    fitted: global_gbm.FittedGBM, histories: dict[SeriesKey, pd.DataFrame], cv: CVConfig
) -> dict[SeriesKey, dict[int, tuple[np.ndarray, np.ndarray | None]]]:
    """The panel model's point forecasts at every series' CV cutoffs (``panel_candidate``'s
    histories: the regular grid cut at each cutoff), in one LightGBM call for all: per series,
    cutoff -> (the history before it, the forecast)."""
    pasts: list[tuple[SeriesKey, np.ndarray]] = []
    for key, hist in histories.items():
        y = regularize(hist)["y"].to_numpy(dtype=float)
        pasts += [(key, y[:cut]) for cut in scored_cutoffs(len(y), cv)]
    points = global_gbm.point_forecasts(fitted, [y for _, y in pasts])
    out: dict[SeriesKey, dict[int, tuple[np.ndarray, np.ndarray | None]]] = {
        k: {} for k in histories
    }
    for (key, y), f in zip(pasts, points, strict=True):
        out[key][len(y)] = (y, f)
    return out


def long_series(key: SeriesKey, history: pd.DataFrame) -> pl.DataFrame:
    """A series' ``ds, y`` history as the panel's long frame (``unique_id`` = its label)."""
    return pl.DataFrame(
        {
            "unique_id": [key.label()] * len(history),
            "ds": pd.to_datetime(history["ds"]).to_numpy(),
            "y": history["y"].to_numpy(dtype=float),
        }
    )


def _plan_candidates(
    candidates: Sequence[str] | None, n_series: int, panel: bool
) -> tuple[bool, list[str] | None, str]:
    """(run the panel stage?, local candidates (None = all), how they were chosen)."""
    if candidates is not None:
        local = [c for c in candidates if c != PANEL]
        use_panel = panel and PANEL in candidates
        return use_panel, local, f"{','.join(local) or 'none'} (as asked)"
    if panel and n_series > LARGE_PANEL:
        return (
            True,
            list(CHEAP_CANDIDATES),
            f"{','.join(CHEAP_CANDIDATES)} only ({n_series} series > {LARGE_PANEL}; "
            "`--candidates` overrides)",
        )
    if panel and n_series < PANEL_MIN_SERIES:
        return False, None, f"all (no {PANEL}: {n_series} series < {PANEL_MIN_SERIES})"
    return panel, None, "all"


def train_all(
    settings: Settings,
    game_type: str | None = None,
    metric: str | None = None,
    *,
    only: Iterable[SeriesKey] | None = None,
    metrics: Iterable[str] | None = None,
    workers: int | None = None,
    cv: CVConfig | None = None,
    candidates: Sequence[str] | None = None,
    panel: bool = True,
    panel_config: global_gbm.GBMConfig | None = None,
) -> list[TrainResult]:
    """Train every matching series (or just ``only``): the panel stage (one ``global_gbm`` per
    metric across its series, unless ``panel`` is False or ``candidates`` leaves it out), then CV
    the local candidates (default: all of ``models.selection.FORECASTERS`` and the ensembles;
    only ``CHEAP_CANDIDATES`` for panels above ``LARGE_PANEL`` series), and store them with the
    champion per series in the registry. Too-short series are skipped with the reason."""
    quiet_libraries()
    cv = cv or CVConfig()
    with db.session(settings.db_path) as con:
        histories = load_histories(con, game_type, metric)
        events = load_events(con)
    _candidates([c for c in candidates if c != PANEL] if candidates is not None else None)
    if only is not None:
        wanted = set(only)
        histories = {k: v for k, v in histories.items() if k in wanted}
    if metrics is not None:
        chosen = set(metrics)
        histories = {k: v for k, v in histories.items() if k.metric in chosen}
    if not histories:
        return []
    by_metric: dict[str, dict[SeriesKey, pd.DataFrame]] = {}
    for k, v in histories.items():
        by_metric.setdefault(k.metric, {})[k] = v
    jobs: list[tuple[SeriesKey, pd.DataFrame, list[str] | None, PanelScore | None]] = []
    panels: list[PanelFit] = []
    for met, group in by_metric.items():
        use_panel, local, how = _plan_candidates(candidates, len(group), panel)
        fit = None
        if use_panel:
            # LightGBM threads: it runs alone here (the pool starts after it), so every core from
            # PANEL_MIN_SERIES series on (steam-dev's 42 on a quiet 2-core machine: 121 s with
            # 1 thread, 69-71 s with 2); one below (the sample's 12 series on a busy machine:
            # 12.7 s with 1 thread, 49.5 s with 2)
            small = len(group) < PANEL_MIN_SERIES
            threads = workers if workers is not None else (1 if small else None)
            fit = _fit_panel(met, group, cv, local=how, threads=threads, config=panel_config)
            panels.append(fit)
        for k, v in group.items():
            score = fit.scores.get(k) if fit is not None else None
            if fit is not None and score is None:  # panel not trained: say so in the note
                score = PanelScore(
                    CandidateResult(PANEL, None, np.inf, np.inf, np.nan, 0, fit.note), fit.note
                )
            jobs.append((k, v, local, score))
    done = job_runner(settings, workers).run(
        _train_job,
        [(k, v, events_for(events, k), cv, c, s) for k, v, c, s in jobs],
        slow=any(slow_candidates(c) for _, _, c, _ in jobs),
        cost=lambda job: len(job[1]),  # a fit's cost grows with its history
        progress="training series",  # a terminal bar or a flow progress artifact
    )
    trained_at, train_run = utcnow(), uuid.uuid4().hex
    mac_key = model_key(settings)
    with db.session(settings.db_path) as con, db.transaction(con):
        refs: dict[str, dict[str, object]] = {}
        for fit in panels:
            if fit.model_json is None:
                continue
            fit.panel_id, fit.sha256 = store_panel(
                con,
                kind=PANEL,
                metric=fit.metric,
                model_json=fit.model_json,
                n_series=fit.n_series,
                horizon=fit.horizon,
                params={
                    "cv": {"horizon": cv.horizon, "n_origins": cv.n_origins},
                    "seconds": round(fit.seconds, 1),
                },  # fmt: skip
                train_run=train_run,
                trained_at=trained_at,
                mac_key=mac_key,
                note=fit.note[:500],
            )
            refs[fit.metric] = {"kind": PANEL, "panel_id": fit.panel_id, "panel_sha256": fit.sha256,
                                "horizon": fit.horizon}  # fmt: skip
        for result, training in done:
            if training is None:
                continue
            cand = training.candidates.get(PANEL)
            if cand is not None and cand.model is not None:
                ref = refs.get(result.key.metric)
                cand.model = dict(ref) if ref is not None else None
            result.model_ids = store_training(
                con,
                result.key,
                training,
                train_run=train_run,
                trained_at=trained_at,
                mac_key=mac_key,
            )
        prune_panels(con)
    return [r for r, _ in done]


def train_if_needed(
    settings: Settings,
    *,
    workers: int | None = None,
    candidates: Sequence[str] | None = None,
) -> list[TrainResult]:
    """Retrain only the series the accuracy loop flagged (realised MASE worse than backtest)."""
    with db.session(settings.db_path) as con:
        flagged = series_needing_retrain(con)
    if not flagged:
        return []
    return train_all(settings, only=[k for k, _ in flagged], workers=workers, candidates=candidates)
