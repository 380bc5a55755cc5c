"""Train, forecast and score accuracy over every series in the database: plain functions that the
CLI, the Prefect tasks and other modules call.

- ``train_all(settings, game_type=None, metric=None) -> list[TrainResult]``
- ``train_if_needed(settings) -> list[TrainResult]`` (series flagged by the accuracy loop)
- ``forecast_all(settings, horizon, game_type=None, out=None) -> polars.DataFrame``
- ``latest_forecasts(con, game_type=None) -> polars.DataFrame``
- ``score_accuracy(settings) -> polars.DataFrame``

Panel stage (``train_all``): for each metric, one global LightGBM (``models.global_gbm``) is
trained across all the series of that metric at once (cross-learning), holding out each series'
last ``PANEL_HORIZON`` (48) hours; it is scored per series at the same rolling-origin cutoffs as the
local candidates (all inside the held-out hours: no look-ahead in the point forecasts, hence in
the CV MASE that picks the champion; its interval widths are calibrated on those same held-out
hours, so its CV coverage is optimistic) and competes for the champion of each series. Panels
of more than ``LARGE_PANEL`` series get only the cheap local candidates
(``models.selection.CHEAP_CANDIDATES``) unless ``candidates`` says otherwise. The model is stored
once per panel (``registry.store_panel``, JSON + sha256) and each series' ``global_gbm`` row
points at it. ``forecast_all`` loads it (hash checked), predicts every series of the panel from
its newest data without refitting, and a series whose panel model is refused or fails falls back
to the next candidate of its chain, recorded in the forecast's note.

The database is read, closed while models fit (so other runs are not blocked for minutes), and
written in one transaction at the end. The local per-series jobs run where ``_pool_kind`` says:
in-process with one worker; otherwise in ``spawn`` processes (and this process, which takes jobs
too: ``_run_in_processes``), because most of a Prophet fit is Python under the GIL (Prophet's
pandas side, cmdstanpy's file I/O), not the cmdstan subprocess: a thread pool of 2 gave 1.1x on
2 cores, processes 1.76-1.83x (``benchmarks/training.py``). Threads are still used where
processes do not pay or cannot run: fewer than ``PROCESS_MIN_JOBS_PER_WORKER`` jobs per
worker, or only ``CHEAP_CANDIDATES`` to fit (milliseconds a series, while a spawned worker takes
about a second to start and import), and inside a daemonic process (a Dask worker), which may
not have children. Never ``fork``:
cmdstanpy reads Stan's output with polars, and polars deadlocks in a forked child. Jobs and
results cross processes through multiprocessing's own IPC (frames and dataclasses); nothing is
written to disk for it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.progress import tracker
from fleetcast.resources.registry import (
    ModelIntegrityError,
    SeriesKey,
    champion_sets,
    load_panel,
    prune_panels,
    store_panel,
    store_training,
)
from models import global_gbm
from models.accuracy import RetrainPolicy, realised_accuracy, retrain_flags
from models.names import check_name
from models.selection import (
    CHEAP_CANDIDATES,
    ENSEMBLES,
    FORECASTERS,
    CandidateResult,
    CVConfig,
    Forecaster,
    InsufficientHistory,
    PrecomputedForecaster,
    SeriesForecast,
    SeriesTraining,
    forecast_series,
    panel_candidate,
    train_series,
)

CSV_COLUMNS = ("game_type", "region", "metric", "ts", "yhat", "yhat_lower", "yhat_upper", "model")
MAX_HISTORY_DAYS = 56  # training window: the last 8 weeks of each series
PANEL = "global_gbm"  # the panel candidate's name in the registry and `--candidates`
PANEL_HORIZON = 48  # hours the panel model forecasts (and holds out of its training)
LARGE_PANEL = 50  # above this many series, only cheap local candidates by default
# below this many local jobs per worker, a thread pool (spawning and importing a worker process
# costs about a second: measured with the default candidates on 56 days, 2 workers, 2 series
# took 4.9 s in processes vs 3.4 s in threads, 4 series 4.6 s vs 5.1 s)
PROCESS_MIN_JOBS_PER_WORKER = 2

PoolKind = Literal["in-process", "thread", "process"]


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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _workers(n_series: int, workers: int | None) -> int:
    return max(1, min(n_series, workers or os.cpu_count() or 1))


def slow_candidates(candidates: Sequence[str] | None) -> bool:
    """Whether local ``candidates`` (None: all) include one that fits in seconds, not
    milliseconds: anything beyond ``CHEAP_CANDIDATES`` (prophet, mstl, their ensemble)."""
    return candidates is None or any(c not in CHEAP_CANDIDATES for c in candidates)


def _pool_kind(n_jobs: int, workers: int, *, daemonic: bool, slow: bool = True) -> PoolKind:
    """Where ``n_jobs`` local training jobs run with ``workers`` workers (see the module doc):
    ``in-process`` for one worker; ``thread`` for a daemonic process (it cannot have children),
    too few jobs per worker to pay for starting processes, or jobs that are not ``slow`` (only
    cheap candidates); else ``process`` (spawn)."""
    if workers <= 1 or n_jobs <= 1:
        return "in-process"
    if daemonic or not slow or n_jobs < PROCESS_MIN_JOBS_PER_WORKER * workers:
        return "thread"
    return "process"


def load_histories(
    con: duckdb.DuckDBPyConnection,
    game_type: str | None = None,
    metric: str | None = None,
    region: str | None = None,
    max_days: int = MAX_HISTORY_DAYS,
) -> dict[SeriesKey, pd.DataFrame]:
    """Hourly ``ds, y`` per series (the last ``max_days`` days before its own last observation)."""
    for kind, value in (("game type", game_type), ("metric", metric), ("region", region)):
        if value is not None:
            check_name(kind, value)
    frame = con.sql(
        db.sql("forecast_series_history"),
        params={"game_type": game_type, "metric": metric, "region": region, "max_days": max_days},
    ).pl()
    out: dict[SeriesKey, pd.DataFrame] = {}
    for (g, r, m), part in frame.group_by(["game_type", "region", "metric"], maintain_order=True):
        out[SeriesKey(str(g), str(r), str(m))] = pd.DataFrame(
            {"ds": part["ts"].to_numpy(), "y": part["value"].to_numpy()}
        )
    return out


def load_events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.sql(db.sql("forecast_events")).pl().to_pandas()


def events_for(events: pd.DataFrame, key: SeriesKey) -> pd.DataFrame:
    """Events that apply to a series: its game type or all (null), its region or all (null)."""
    if events.empty:
        return events
    game = events["game_type"].isna() | (events["game_type"] == key.game_type)
    region = events["region"].isna() | (events["region"] == key.region)
    return events.loc[game & region, ["kind", "starts_at", "ends_at"]].reset_index(drop=True)


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
    events: pd.DataFrame,
    cv: CVConfig,
    candidates: Sequence[str] | None = None,
    panel: PanelScore | None = None,
) -> tuple[TrainResult, SeriesTraining | None]:
    start = time.perf_counter()
    forecasters, ensembles = _candidates(candidates)
    try:
        training = train_series(
            history,
            events_for(events, key),
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


# key, history, events, CV, local candidates (None = all), panel score: all picklable
TrainJob = tuple[
    SeriesKey, pd.DataFrame, pd.DataFrame, CVConfig, list[str] | None, PanelScore | None
]


def training_pool(
    n_jobs: int, workers: int | None = None, *, slow: bool = True
) -> tuple[PoolKind, int]:
    """How ``train_all`` runs ``n_jobs`` local jobs in this process: (pool kind, workers).
    ``slow``: some job has a slow candidate (``slow_candidates``)."""
    n = _workers(n_jobs, workers)
    daemonic = multiprocessing.current_process().daemon
    return _pool_kind(n_jobs, n, daemonic=daemonic, slow=slow), n


def _train_job(job: TrainJob) -> tuple[TrainResult, SeriesTraining | None]:
    """``_train_one`` on one job tuple: module level, so a spawned worker can run it."""
    return _train_one(*job)


def _run_jobs(
    jobs: list[TrainJob], workers: int | None
) -> list[tuple[TrainResult, SeriesTraining | None]]:
    """Train every job, results in job order, in-process, in threads or in spawned processes
    (``_pool_kind``). A series that fails gives a "failed" result; a worker process that dies
    raises ``RuntimeError`` naming the cause instead of hanging."""
    kind, n = training_pool(len(jobs), workers, slow=any(slow_candidates(j[4]) for j in jobs))
    bump = tracker(len(jobs), "training series")  # a bar on a terminal only
    if kind == "in-process":
        return [bump(_train_job(j)) for j in jobs]
    if kind == "thread":
        with ThreadPoolExecutor(max_workers=n) as pool:
            return [bump(r) for r in pool.map(_train_job, jobs)]
    try:
        return _run_in_processes(jobs, n, bump)
    except BrokenProcessPool as exc:
        raise RuntimeError(
            f"a training worker process died ({exc}); no series of this run were stored. "
            "Out of memory is the usual cause: retry with fewer workers (`--workers 1` trains "
            "in-process)"
        ) from exc


def _run_in_processes(
    jobs: list[TrainJob], n: int, bump: Callable[[Any], Any] | None = None
) -> list[tuple[TrainResult, SeriesTraining | None]]:
    """``n`` workers: ``n - 1`` spawned processes and this process itself (one thread), each
    given the next job as soon as it is free (one job in flight each: no queue to wait out at
    the end). This process starts on the first job at once instead of waiting about a second
    for a worker to start and import, and holds one worker's memory fewer (measured: 1.74-1.75x
    for 48 series and 1.76-1.83x for 96 on 2 cores, docs/performance.md)."""
    context = multiprocessing.get_context("spawn")  # never fork: polars deadlocks in a fork
    results: list[tuple[TrainResult, SeriesTraining | None] | None] = [None] * len(jobs)
    # longest histories first (a fit's cost grows with them): the last job to finish is short
    todo = deque(sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1])))
    with (
        ProcessPoolExecutor(n - 1, mp_context=context, initializer=quiet_libraries) as procs,
        ThreadPoolExecutor(1, thread_name_prefix="train") as here,
    ):
        running: dict[Future[tuple[TrainResult, SeriesTraining | None]], tuple[int, Executor]]
        running = {}

        def start(executor: Executor) -> None:
            if todo:
                i = todo.popleft()
                running[executor.submit(_train_job, jobs[i])] = (i, executor)

        start(here)
        for _ in range(n - 1):
            start(procs)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i, executor = running.pop(future)
                results[i] = future.result()
                if bump is not None:
                    bump(None)
                start(executor)
    return [r for r in results if r is not None]


def _why(training: SeriesTraining) -> str:
    """Why the champion won: its CV MASE beside the runner-up's."""
    c = training.candidates
    first = c[training.champion]
    text = f"champion {training.champion} (cv_mase {first.cv_mase:.3f}"
    others = [n for n in training.chain[1:] if np.isfinite(c[n].cv_mase)]
    if others:
        text += f"; next {others[0]} {c[others[0]].cv_mase:.3f}"
    return text + f", {first.origins} CV origins)"


def _panel_forecast_from(fitted: global_gbm.FittedGBM) -> object:
    def forecast_from(past: pd.DataFrame, horizon: int) -> pd.DataFrame:
        start = pd.Timestamp(past["ds"].iloc[0]).to_pydatetime()
        y = past["y"].to_numpy(dtype=float)
        out = global_gbm.predict(fitted, {"s": (start, y)}, horizon)
        if out["model"][0] != global_gbm.MODEL_NAME:
            raise ValueError(f"panel model could not forecast ({out['model'][0]} instead)")
        return _panel_frame(out)

    return forecast_from


def _panel_frame(out: pl.DataFrame) -> pd.DataFrame:
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
    arrays = {k: global_gbm.regularize(_long(k, h))[k.label()][1] for k, h in histories.items()}
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
        f"series of metric {metric} (last {horizon} h of each held out and used for CV); "
        f"local candidates: {local}"
    )
    fit = PanelFit(metric, text, fitted.n_series_trained, horizon, 0.0, note)
    forecast_from = _panel_forecast_from(fitted)
    for key, hist in histories.items():
        n = len(arrays[key])
        result = panel_candidate(
            PANEL,
            {"kind": PANEL},  # completed with the panel id when stored
            hist,
            forecast_from,  # type: ignore[arg-type]
            config=cv,
            earliest_cutoff=n - horizon,
        )
        fit.scores[key] = PanelScore(result, note)
    fit.seconds = time.perf_counter() - start
    return fit


def _long(key: SeriesKey, history: pd.DataFrame) -> pl.DataFrame:
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
            # LightGBM threads: one for small panels (measured on the sample's 12 series on a
            # busy 2-core machine: 12.7 s with 1 thread, 49.5 s with 2), all cores for large ones
            threads = workers if workers is not None else (1 if len(group) <= LARGE_PANEL else None)
            fit = _fit_panel(met, group, cv, local=how, threads=threads, config=panel_config)
            panels.append(fit)
        for k, v in group.items():
            score = fit.scores.get(k) if fit is not None else None
            if fit is not None and score is None:  # panel not trained: say so in the note
                score = PanelScore(
                    CandidateResult(PANEL, None, np.inf, np.inf, np.nan, 0, fit.note), fit.note
                )
            jobs.append((k, v, local, score))
    done = _run_jobs([(k, v, events, cv, c, s) for k, v, c, s in jobs], workers)
    trained_at, train_run = _now(), uuid.uuid4().hex
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
                con, result.key, training, train_run=train_run, trained_at=trained_at
            )
        prune_panels(con)
    return [r for r, _ in done]


def series_needing_retrain(con: duckdb.DuckDBPyConnection) -> list[tuple[SeriesKey, str]]:
    rows = con.sql(db.sql("accuracy_retrain_series")).fetchall()
    return [(SeriesKey(g, r, m), reason) for g, r, m, reason in rows]


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


def _forecast_one(
    cs: object,
    history: pd.DataFrame,
    events: pd.DataFrame,
    horizon: int,
    panel: PrecomputedForecaster | None = None,
) -> SeriesForecast | Exception:
    try:
        forecasters = None
        if panel is not None:
            forecasters = {**{n: f() for n, f in FORECASTERS.items()}, PANEL: panel}
        return forecast_series(
            cs.models,  # type: ignore[attr-defined]
            cs.chain,  # type: ignore[attr-defined]
            history,
            horizon,
            events_for(events, cs.key),  # type: ignore[attr-defined]
            refused=cs.refused,  # type: ignore[attr-defined]
            forecasters=forecasters,
        )
    except Exception as exc:
        return exc


def _panel_forecasts(
    con: duckdb.DuckDBPyConnection,
    sets: dict[SeriesKey, object],
    histories: dict[SeriesKey, pd.DataFrame],
    horizon: int,
) -> dict[SeriesKey, PrecomputedForecaster]:
    """Forecast every series whose chain holds a panel model, one prediction pass per panel from
    the stored model (hash checked; no refit). A refused model goes into the series' ``refused``
    (its chain then falls back, recorded); a failed prediction becomes the candidate's error."""
    groups: dict[tuple[str, str], list[SeriesKey]] = {}
    for key, cs in sets.items():
        ref = cs.models.get(PANEL)  # type: ignore[attr-defined]
        if ref is not None and key in histories:
            groups.setdefault((str(ref.get("panel_id")), str(ref.get("panel_sha256"))), []).append(
                key
            )
    out: dict[SeriesKey, PrecomputedForecaster] = {}
    for (panel_id, sha), keys in groups.items():
        try:
            fitted = global_gbm.loads(load_panel(con, panel_id, sha))
        except ModelIntegrityError as exc:
            for k in keys:
                sets[k].refused[PANEL] = str(exc)  # type: ignore[attr-defined]
            continue
        except Exception as exc:  # unreadable model: recorded, the chain falls back
            for k in keys:
                out[k] = PrecomputedForecaster(PANEL, None, f"panel model unusable: {exc}")
            continue
        try:
            grid = {
                k.label(): global_gbm.regularize(_long(k, histories[k]))[k.label()] for k in keys
            }
            pred = global_gbm.predict(fitted, grid, horizon)
        except Exception as exc:
            for k in keys:
                out[k] = PrecomputedForecaster(PANEL, None, f"panel prediction failed: {exc}")
            continue
        parts = {str(uid): part for (uid,), part in pred.group_by("unique_id")}
        for k in keys:
            part = parts.get(k.label())
            if part is None or part["model"][0] != global_gbm.MODEL_NAME:
                why = "no forecast" if part is None else f"gave {part['model'][0]}"
                out[k] = PrecomputedForecaster(PANEL, None, f"panel model {why} for this series")
            else:
                out[k] = PrecomputedForecaster(PANEL, _panel_frame(part.sort("ds")))
    return out


def forecast_all(
    settings: Settings,
    horizon: int,
    game_type: str | None = None,
    out: Path | None = None,
    *,
    metric: str | None = None,
    metrics: Iterable[str] | None = None,
    workers: int | None = None,
) -> pl.DataFrame:
    """Forecast ``horizon`` hours after each series' own last observation with its champion (or
    the next in its chain), store the run in ``forecasts`` and, with ``out``, write the CSV.
    Returns the run's rows (CSV columns plus yhat_q90, model_id, run_id, created_at, note)."""
    if horizon < 1 or horizon > 24 * 60:
        raise ValueError(f"horizon must be 1..1440 hours, got {horizon}")
    quiet_libraries()
    with db.session(settings.db_path) as con:
        sets = champion_sets(con, game_type, metric)
        histories = load_histories(con, game_type, metric)
        events = load_events(con)
        if metrics is not None:
            chosen = set(metrics)
            sets = {k: v for k, v in sets.items() if k.metric in chosen}
        panel = _panel_forecasts(con, sets, histories, horizon)  # type: ignore[arg-type]
    if not sets:
        raise RuntimeError(
            "no trained models"
            + (f" for game type {game_type!r}" if game_type else "")
            + ": run `fleetcast train` first"
        )
    jobs = [(cs, histories[k]) for k, cs in sets.items() if k in histories]
    bump = tracker(len(jobs), "forecasting series")  # a bar on a terminal only
    with ThreadPoolExecutor(max_workers=_workers(len(jobs), workers)) as pool:
        results = [
            bump(r)
            for r in pool.map(
                lambda j: _forecast_one(j[0], j[1], events, horizon, panel.get(j[0].key)), jobs
            )
        ]
    run_id, created_at = uuid.uuid4().hex, _now()
    parts, failures = [], []
    for (cs, _), res in zip(jobs, results, strict=True):
        if isinstance(res, Exception):
            failures.append(f"{cs.key.label()}: {res}")
            continue
        base = res.model.split("+")[0]
        f = res.frame
        parts.append(
            pl.DataFrame(
                {
                    "game_type": [cs.key.game_type] * len(f),
                    "region": [cs.key.region] * len(f),
                    "metric": [cs.key.metric] * len(f),
                    "ts": pd.to_datetime(f["ds"]).to_numpy(),
                    "yhat": f["yhat"].to_numpy(dtype=float),
                    "yhat_lower": f["yhat_lower"].to_numpy(dtype=float),
                    "yhat_upper": f["yhat_upper"].to_numpy(dtype=float),
                    "model": [res.model] * len(f),
                    "yhat_q90": f["yhat_q90"].to_numpy(dtype=float),
                    "model_id": [cs.model_ids.get(base)] * len(f),
                    "note": ["; ".join(res.notes)[:1000] or None] * len(f),
                },
                schema_overrides={"model_id": pl.String, "note": pl.String},
            )
        )
    if not parts:
        raise RuntimeError("no series could be forecast: " + "; ".join(failures))
    frame = pl.concat(parts).with_columns(
        pl.col("ts").cast(pl.Datetime("us")),
        pl.lit(run_id).alias("run_id"),
        pl.lit(created_at).cast(pl.Datetime("us")).alias("created_at"),
    )
    with db.session(settings.db_path) as con, db.transaction(con):
        con.register("new_forecasts", frame)
        try:
            con.execute(db.sql("forecast_insert")).fetchall()
        finally:
            con.unregister("new_forecasts")
    if out is not None:
        write_csv(frame, out)
    if failures:
        frame = frame.with_columns(pl.lit(len(failures)).alias("failed_series"))
    return frame


def write_csv(frame: pl.DataFrame, out: Path) -> Path:
    """The forecast CSV contract: exactly ``CSV_COLUMNS``, ts as ISO 8601 (naive UTC)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.select(CSV_COLUMNS).with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(
        out
    )
    return out


def latest_forecasts(con: duckdb.DuckDBPyConnection, game_type: str | None = None) -> pl.DataFrame:
    """The newest forecast run of every series (optionally one game type), all its hours."""
    if game_type is not None:
        check_name("game type", game_type)
    return con.sql(db.sql("forecast_latest"), params={"game_type": game_type}).pl()


def score_accuracy(settings: Settings, policy: RetrainPolicy | None = None) -> pl.DataFrame:
    """Realised MASE/sMAPE/coverage of every stored forecast run against the actuals that have
    arrived, per series and model, upserted into ``accuracy`` with the retrain flag."""
    with db.session(settings.db_path) as con:
        forecasts = con.sql(db.sql("accuracy_forecasts")).pl()
        actuals = con.sql(db.sql("accuracy_actuals")).pl()
        scales = con.sql(db.sql("accuracy_scales")).pl()
        backtest = con.sql(db.sql("model_backtest_scores")).pl()
        realised = realised_accuracy(
            forecasts.with_columns(pl.col("ts").cast(pl.Datetime("us"))),
            actuals.with_columns(pl.col("ts").cast(pl.Datetime("us"))),
            scales,
        )
        scored = retrain_flags(realised, backtest, policy or RetrainPolicy()).with_columns(
            pl.lit(_now()).cast(pl.Datetime("us")).alias("scored_at")
        )
        if scored.height:
            with db.transaction(con):
                con.register("new_accuracy", scored)
                try:
                    con.execute(db.sql("accuracy_upsert")).fetchall()
                finally:
                    con.unregister("new_accuracy")
    return scored
