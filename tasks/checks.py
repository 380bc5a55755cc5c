"""Small reads the flows decide on: is training due, which landing files, what is in force.

Reads only (DuckDB read or a directory listing): safe to repeat, retried on transient errors.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetcast.config import Settings
from fleetcast.stages.orchestration import is_transient, landing_files_between, training_due
from models.clock import lead_hours

_read: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
    "cache_policy": NO_CACHE,
}


@task(name="check-training-due", **_read)
def check_training_due(
    settings: Settings, game_type: str | None, max_age_hours: int, now: datetime
) -> tuple[bool, str]:
    return training_due(settings, game_type, timedelta(hours=max_age_hours), now)


@task(name="list-landing-files", **_read)
def list_landing_files(
    settings: Settings, start: date | None = None, end: date | None = None
) -> list[Path]:
    return landing_files_between(settings, start, end)


@task(name="read-run-context", **_read)
def read_run_context(
    settings: Settings, game_type: str | None
) -> tuple[list[Any], dict[str, float], Any]:
    """Overrides in force, each fleet's safety margin, and the accuracy scores (for summaries)."""
    from fleetcast.stages.status import read_status

    if not settings.db_path.exists():
        return [], {}, None
    status = read_status(settings, game_type)
    margins = {
        r["fleet"]: float(r["safety_margin"] or 0) for r in status.fleets.iter_rows(named=True)
    }
    return status.overrides, margins, status.accuracy


@task(name="list-fleets", **_read)
def list_fleets(settings: Settings, game_type: str | None) -> list[dict[str, Any]]:
    """Fleets of a game type (or all) as plain records: fleet, game_type, region, metric, lead."""
    from fleetcast.resources import db
    from fleetcast.stages.fleets import load_fleets

    with db.session(settings.db_path) as con:
        specs = load_fleets(con, game_type)
    return [
        {
            "fleet": s.fleet,
            "game_type": s.game_type,
            "region": s.region,
            "metric": s.demand_metric,
            "lead_hours": lead_hours(s.lead_time_minutes),
            "margin": s.safety_margin,
        }
        for s in specs
    ]


@task(name="forecast-exists", **_read)
def forecast_exists(settings: Settings, game_type: str | None) -> bool:
    """Whether any forecast is stored for the game type (or any)."""
    from fleetcast.stages.orchestration import newest_forecast_at

    return newest_forecast_at(settings, game_type) is not None


@task(name="series-in-scope", **_read)
def series_in_scope(settings: Settings, game_type: str | None, scope: str) -> list[str] | None:
    """The metrics a cycle trains and forecasts: ``capacity`` = what fleets are sized on (the
    fast hourly cycle), ``all`` = every metric (None: no filter; the nightly retrain)."""
    if scope == "all":
        return None
    from fleetcast.resources import db
    from fleetcast.stages.fleets import capacity_metrics, load_fleets

    with db.session(settings.db_path) as con:
        specs = load_fleets(con, game_type)
    return capacity_metrics(specs, scope) if specs else None


@task(name="read-latest-forecasts", **_read)
def read_latest_forecasts(
    settings: Settings, game_type: str | None, metrics: list[str] | None = None
) -> pl.DataFrame:
    """The newest stored forecast of every series in scope (what the run publishes)."""
    from fleetcast.resources import db
    from fleetcast.stages.serving import latest_forecasts

    with db.session(settings.db_path) as con:
        frame = latest_forecasts(con, game_type)
    return frame if metrics is None else frame.filter(pl.col("metric").is_in(metrics))
