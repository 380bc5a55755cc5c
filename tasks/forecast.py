"""Prefect task: forecast every series of a game type with its champion (writes ``forecasts``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.stages.orchestration import is_transient
from fleetcast.stages.serving import forecast_all, latest_forecasts
from tasks.progress import progress_artifact


@task(name="forecast-series")
def forecast_series(
    settings: Settings,
    horizon: int,
    game_type: str | None = None,
    out: Path | None = None,
    metrics: list[str] | None = None,
    refresh: int | None = None,
) -> pl.DataFrame:
    """``horizon`` hours from each series' last observation, stored as one forecast run
    (only series of ``metrics`` when given; with ``refresh``, only the series due)."""
    with progress_artifact():  # "forecasting series" on the run's page
        return forecast_all(
            settings, horizon, game_type=game_type, out=out, metrics=metrics, refresh=refresh
        )


@task(
    name="read-latest-forecasts",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
)
def read_latest_forecasts(
    settings: Settings, game_type: str | None, metrics: list[str] | None = None
) -> pl.DataFrame:
    """The newest stored forecast of every series in scope (what the run publishes)."""
    with db.session(settings.db_path) as con:
        frame = latest_forecasts(con, game_type)
    return frame if metrics is None else frame.filter(pl.col("metric").is_in(metrics))
