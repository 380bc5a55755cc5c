"""Prefect task: train every series of a game type (fits models; writes the registry)."""

from __future__ import annotations

from prefect import task

from fleetcast.config import Settings
from fleetcast.stages.training import TrainResult, train_all, train_if_needed
from tasks.progress import progress_artifact


@task(name="train-models")
def train_models(
    settings: Settings,
    game_type: str | None = None,
    metric: str | None = None,
    if_needed: bool = False,
    metrics: list[str] | None = None,
) -> list[TrainResult]:
    """Train (CV, champion, registry) every matching series; with ``if_needed`` only the series
    the accuracy loop flagged. Not retried: a fit that failed once fails again."""
    with progress_artifact():  # "training series" on the run's page
        if if_needed:
            return train_if_needed(settings)
        return train_all(settings, game_type=game_type, metric=metric, metrics=metrics)
