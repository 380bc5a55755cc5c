"""The whole cycle for one game type (or all): ingest -> train (if due) -> forecast -> scale."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.orchestration import run_stage, settings_for
from fleetcast.stages.pages import RunSummary
from flows.forecast_and_scale import ask_and_publish, forecast_plan_apply
from flows.params import PipelineParams
from models.clock import utcnow
from tasks.approval import mark_run_ended
from tasks.checks import check_training_due, list_landing_files, series_in_scope
from tasks.ingest import ingest_files
from tasks.train import train_models


@flow(
    name="pipeline",
    flow_run_name="pipeline-{params.scope}-{params.capacity_mode}",
    timeout_seconds=50 * 60,  # shorter than the hourly schedule
    log_prints=False,
    on_crashed=[mark_run_ended],
    on_cancellation=[mark_run_ended],
    on_failure=[mark_run_ended],
)
def pipeline(params: PipelineParams = PipelineParams()) -> RunSummary:  # noqa: B008
    logger = get_run_logger()
    settings = settings_for(params)
    summary = RunSummary(flow="pipeline", scope=params.scope)
    try:
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="pipeline"):
            if params.ingest:
                paths = list_landing_files(settings)
                summary.ingest = ingest_files(settings, paths)
            metrics = series_in_scope(settings, params.game_type, params.series)
            due, why = check_training_due(
                settings, params.game_type, params.retrain_after_hours, utcnow()
            )
            if params.retrain == "always" or (params.retrain == "if_due" and due):
                trained = run_stage(settings, train_models, params.game_type, metrics=metrics)
                n = sum(r.status == "trained" for r in trained)
                summary.training = f"{n} of {len(trained)} series trained ({why})"
            else:
                summary.training = f"not trained ({params.retrain}): {why}"
            forecast, asked = forecast_plan_apply(settings, params, summary, metrics)
    except RunLockTimeout as exc:
        logger.warning("not run: %s", exc)
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    ask_and_publish(settings, params, summary, forecast, asked)
    return summary
