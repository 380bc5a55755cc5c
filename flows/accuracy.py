"""Score stored forecasts against the actuals that have arrived (after actuals land)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.orchestration import settings_for
from fleetcast.stages.pages import RunSummary
from flows.params import AccuracyParams
from tasks.accuracy import score_forecast_accuracy
from tasks.artifacts import publish_summary
from tasks.checks import read_run_context


@flow(
    name="accuracy",
    flow_run_name="accuracy-{params.scope}",
    timeout_seconds=30 * 60,  # far shorter than the daily schedule
)
def accuracy(params: AccuracyParams = AccuracyParams()) -> RunSummary:  # noqa: B008
    logger = get_run_logger()
    settings = settings_for(params)
    summary = RunSummary(flow="accuracy", scope=params.scope)
    try:
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="accuracy"):
            scored = score_forecast_accuracy(settings)
            summary.overrides, summary.margins, summary.accuracy = read_run_context(
                settings, params.game_type
            )
    except RunLockTimeout as exc:
        logger.warning("not run: %s", exc)
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    logger.info("scored %d (run, series) pairs", scored.height)
    publish_summary(summary)
    return summary
