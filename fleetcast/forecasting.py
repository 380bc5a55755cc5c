"""Train, forecast and score accuracy over every series in the database: plain functions that the
CLI, the Prefect tasks and other modules call.

- ``train_all(settings, game_type=None, metric=None) -> list[TrainResult]``
- ``train_if_needed(settings) -> list[TrainResult]`` (series flagged by the accuracy loop)
- ``forecast_all(settings, horizon, game_type=None, out=None) -> polars.DataFrame``
- ``latest_forecasts(con, game_type=None) -> polars.DataFrame``
- ``score_accuracy(settings) -> polars.DataFrame``

The database is read, closed while models fit (so other runs are not blocked for minutes), and
written in one transaction at the end. Series train in a thread pool: Prophet fits in a cmdstan
subprocess, so threads use the cores; fork-based process pools deadlock with Prophet/polars.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from fleetcast import db
from fleetcast.config import Settings
from fleetcast.logs import quiet_libraries
from fleetcast.names import check_name
from fleetcast.registry import SeriesKey, champion_sets, store_training
from models.accuracy import RetrainPolicy, realised_accuracy, retrain_flags
from models.selection import (
    ENSEMBLES,
    FORECASTERS,
    CVConfig,
    Forecaster,
    InsufficientHistory,
    SeriesForecast,
    SeriesTraining,
    forecast_series,
    train_series,
)

CSV_COLUMNS = ("game_type", "region", "metric", "ts", "yhat", "yhat_lower", "yhat_upper", "model")
MAX_HISTORY_DAYS = 56  # training window: the last 8 weeks of each series


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
            what=key.label(),
        )
    except InsufficientHistory as exc:
        return TrainResult(key, "skipped", n_obs=len(history), message=str(exc)), None
    except Exception as exc:  # one series failing never stops the others
        return TrainResult(key, "failed", n_obs=len(history), message=str(exc)), None
    champ = training.candidates[training.champion]
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
) -> list[TrainResult]:
    """Train every matching series (or just ``only``): CV the candidates (default: all of
    ``models.selection.FORECASTERS`` and the ensembles), store them with the champion in the
    registry. Too-short series are skipped with the reason in the result."""
    quiet_libraries()
    cv = cv or CVConfig()
    with db.session(settings.db_path) as con:
        histories = load_histories(con, game_type, metric)
        events = load_events(con)
    _candidates(candidates)  # fail fast on unknown names
    if only is not None:
        wanted = set(only)
        histories = {k: v for k, v in histories.items() if k in wanted}
    if metrics is not None:
        chosen = set(metrics)
        histories = {k: v for k, v in histories.items() if k.metric in chosen}
    if not histories:
        return []
    with ThreadPoolExecutor(max_workers=_workers(len(histories), workers)) as pool:
        done = list(
            pool.map(lambda kv: _train_one(kv[0], kv[1], events, cv, candidates), histories.items())
        )
    trained_at, train_run = _now(), uuid.uuid4().hex
    with db.session(settings.db_path) as con, db.transaction(con):
        for result, training in done:
            if training is not None:
                result.model_ids = store_training(
                    con, result.key, training, train_run=train_run, trained_at=trained_at
                )
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
    cs: object, history: pd.DataFrame, events: pd.DataFrame, horizon: int
) -> SeriesForecast | Exception:
    try:
        return forecast_series(
            cs.models,  # type: ignore[attr-defined]
            cs.chain,  # type: ignore[attr-defined]
            history,
            horizon,
            events_for(events, cs.key),  # type: ignore[attr-defined]
            refused=cs.refused,  # type: ignore[attr-defined]
        )
    except Exception as exc:
        return exc


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
    if not sets:
        raise RuntimeError(
            "no trained models"
            + (f" for game type {game_type!r}" if game_type else "")
            + ": run `fleetcast train` first"
        )
    jobs = [(cs, histories[k]) for k, cs in sets.items() if k in histories]
    with ThreadPoolExecutor(max_workers=_workers(len(jobs), workers)) as pool:
        results = list(pool.map(lambda j: _forecast_one(j[0], j[1], events, horizon), jobs))
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
