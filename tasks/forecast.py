"""Prefect task: forecast every series of a game type with its champion (writes ``forecasts``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task

from fleetcast.config import Settings
from fleetcast.stages.serving import forecast_all
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
