"""Prefect task: score stored forecasts against arrived actuals (writes ``accuracy``)."""

from __future__ import annotations

import polars as pl
from prefect import task

from fleetcast.config import Settings
from fleetcast.stages.accuracy import score_accuracy
from fleetcast.stages.orchestration import is_transient


@task(name="score-accuracy", retries=1, retry_delay_seconds=5, retry_condition_fn=is_transient)
def score_forecast_accuracy(settings: Settings) -> pl.DataFrame:
    """Realised MASE, sMAPE and coverage per series and forecast run, with the retrain flag.
    Safe to repeat: an upsert per (run, series)."""
    return score_accuracy(settings)
