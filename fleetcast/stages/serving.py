"""Serve forecasts: each series' champion (or the next model of its chain) forecasts the hours
after its own last observation; the run is stored in ``forecasts`` and can be written as CSV.

- ``forecast_all(settings, horizon, game_type=None, out=None) -> polars.DataFrame``
- ``latest_forecasts(con, game_type=None) -> polars.DataFrame``
- ``write_csv(frame, out) -> Path`` (the CSV contract, ``CSV_COLUMNS``)

A panel model (the global LightGBM, ``fleetcast.stages.training``) is loaded once per panel
(hash checked) and predicts every series of the panel from its newest data without refitting;
a series whose panel model is refused or fails falls back to the next candidate of its chain,
recorded in the forecast's note.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl

from fleetcast.config import Settings, job_runner
from fleetcast.resources import db
from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.registry import (
    ChampionSet,
    ModelIntegrityError,
    SeriesKey,
    champion_sets,
    load_panel,
    model_key,
)
from fleetcast.stages.histories import events_for, load_events, load_histories
from fleetcast.stages.training import PANEL, long_series, panel_frame, slow_candidates
from models import global_gbm
from models.clock import utcnow
from models.names import check_name
from models.refresh import StoredForecast, forecast_due
from models.selection import (
    COMBINATION,
    FORECASTERS,
    PrecomputedForecaster,
    SeriesForecast,
    base_of,
    forecast_series,
)

CSV_COLUMNS = ("game_type", "region", "metric", "ts", "yhat", "yhat_lower", "yhat_upper", "model")


def _forecast_one(
    cs: object,
    history: pd.DataFrame,
    events: pd.DataFrame,
    horizon: int,
    panel: PrecomputedForecaster | None = None,
) -> SeriesForecast | Exception:
    """One series' forecast from its champion set (the chain and its loaded models), history
    and ``events`` (all of them: this series' are picked here)."""
    return _forecast_job((cs, history, events_for(events, cs.key), horizon, panel))  # type: ignore[attr-defined]


def _fits_at_forecast(cs: object) -> bool:
    """Whether a series' stored candidates include one fitted at forecast time, in seconds
    (anything beyond ``models.selection.CHEAP_CANDIDATES``; the panel model predicts)."""
    names = [base_of(n) for n in cs.models if n not in (PANEL, COMBINATION)]  # type: ignore[attr-defined]
    return slow_candidates(names)


# champion set, history, the series' events, horizon, the panel's forecast: plain, picklable
# data (what crosses to a Dask worker; no path, no connection, no model key)
ForecastJob = tuple[object, pd.DataFrame, pd.DataFrame, int, PrecomputedForecaster | None]


def _forecast_job(job: ForecastJob) -> SeriesForecast | Exception:
    """Forecast one series (module level, so that a Dask worker can run it); a failure is
    returned, not raised, and recorded by the caller."""
    cs, history, events, horizon, panel = job
    try:
        forecasters = None
        if panel is not None:
            forecasters = {**{n: f() for n, f in FORECASTERS.items()}, PANEL: panel}
        return forecast_series(
            cs.models,  # type: ignore[attr-defined]
            cs.chain,  # type: ignore[attr-defined]
            history,
            horizon,
            events,
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
    mac_key: bytes,
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
            fitted = global_gbm.loads(load_panel(con, panel_id, sha, mac_key=mac_key))
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
                k.label(): global_gbm.regularize(long_series(k, histories[k]))[k.label()]
                for k in keys
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
                out[k] = PrecomputedForecaster(PANEL, panel_frame(part.sort("ds")))
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
    refresh: int | None = None,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Forecast ``horizon`` hours after each series' own last observation with its champion (or
    the next in its chain), store the run in ``forecasts`` and, with ``out``, write the CSV.
    Returns the run's rows (CSV columns plus yhat_q90, model_id, run_id, created_at, note).

    With ``refresh`` (hours; the hourly cycle) only the series :func:`models.refresh.forecast_due`
    names at ``now`` (default: now) are forecast, and the frame is empty when none is due."""
    if horizon < 1 or horizon > 24 * 60:
        raise ValueError(f"horizon must be 1..1440 hours, got {horizon}")
    quiet_libraries()
    mac_key = model_key(settings)
    with db.session(settings.db_path) as con:
        sets = champion_sets(con, game_type, metric, mac_key=mac_key)
        histories = load_histories(con, game_type, metric)
        events = load_events(con)
        if metrics is not None:
            chosen = set(metrics)
            sets = {k: v for k, v in sets.items() if k.metric in chosen}
        if refresh is not None and sets:
            due = series_due(con, sets, histories, game_type, horizon, refresh, now)
            if not due:
                return _empty_run()
            sets = {k: v for k, v in sets.items() if k in due}
        panel = _panel_forecasts(con, sets, histories, horizon, mac_key)  # type: ignore[arg-type]
    if not sets:
        raise RuntimeError(
            "no trained models"
            + (f" for game type {game_type!r}" if game_type else "")
            + ": run `fleetcast train` first"
        )
    jobs = [(cs, histories[k]) for k, cs in sets.items() if k in histories]
    # each series' job on this machine's threads or the Dask cluster (fleetcast.config)
    results = job_runner(settings, workers).run(
        _forecast_job,
        [(cs, h, events_for(events, cs.key), horizon, panel.get(cs.key)) for cs, h in jobs],
        # seconds a series where a model is fitted at forecast time (MSTL, an events variant):
        # processes on every core; milliseconds (seasonal naive, the panel's): threads
        slow=any(_fits_at_forecast(cs) for cs, _ in jobs),
        progress="forecasting series",  # a terminal bar or a flow progress artifact
    )
    run_id, created_at = uuid.uuid4().hex, utcnow()
    parts, failures = [], []
    for (cs, _), res in zip(jobs, results, strict=True):
        if isinstance(res, Exception):
            failures.append(f"{cs.key.label()}: {res}")
            continue
        model_id = cs.model_ids.get(res.model) or cs.model_ids.get(base_of(res.model))
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
                    "model_id": [model_id] * len(f),
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


def series_due(
    con: duckdb.DuckDBPyConnection,
    sets: dict[SeriesKey, ChampionSet],
    histories: dict[SeriesKey, pd.DataFrame],
    game_type: str | None,
    horizon: int,
    refresh: int,
    now: datetime | None = None,
) -> dict[SeriesKey, str]:
    """The series of ``sets`` the hourly cycle forecasts at ``now`` (default: now), each with
    its reason (:mod:`models.refresh`)."""
    rows = con.sql(db.sql("forecast_newest_runs"), params={"game_type": game_type}).fetchall()
    stored = {
        SeriesKey(g, r, m): StoredForecast(created, last, model_id)
        for g, r, m, created, last, model_id in rows
    }
    now, due = now or utcnow(), {}
    for key, cs in sets.items():
        history = histories.get(key)
        seen = 0 if history is None else int(history["y"].notna().sum())
        why = forecast_due(
            key.label(),
            stored.get(key),
            set(cs.model_ids.values()),
            seen,
            now,
            refresh=refresh,
            horizon=horizon,
        )
        if why is not None:
            due[key] = why
    return due


def _empty_run() -> pl.DataFrame:
    """A forecast run that forecast nothing (no series was due): the run's columns, no row."""
    return pl.DataFrame(
        schema={
            **{c: pl.String for c in ("game_type", "region", "metric")},
            "ts": pl.Datetime("us"),
            **{c: pl.Float64 for c in ("yhat", "yhat_lower", "yhat_upper")},
            "model": pl.String,
            "yhat_q90": pl.Float64,
            **{c: pl.String for c in ("model_id", "note", "run_id")},
            "created_at": pl.Datetime("us"),
        }
    )


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
