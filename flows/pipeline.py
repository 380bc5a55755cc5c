"""The whole cycle for one game type (or all): ingest -> train (if due) -> forecast -> scale."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled

from fleetcast.allocate import utcnow
from fleetcast.locking import RunLockTimeout, run_lock
from fleetcast.orchestration import run_stage, settings_for
from flows.params import PipelineParams
from tasks.apply import apply_capacity
from tasks.approval import approve_large_changes
from tasks.artifacts import (
    RunSummary,
    publish_capacity_plan,
    publish_forecast,
    publish_links,
    publish_summary,
)
from tasks.checks import (
    check_training_due,
    list_landing_files,
    read_run_context,
    series_in_scope,
)
from tasks.forecast import forecast_series
from tasks.ingest import ingest_files
from tasks.plan import plan_capacity
from tasks.train import train_models


@flow(
    name="pipeline",
    flow_run_name="pipeline-{params.scope}-{params.capacity_mode}",
    timeout_seconds=50 * 60,  # shorter than the hourly schedule
    log_prints=False,
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
            forecast = run_stage(
                settings,
                forecast_series,
                params.game_type,
                horizon=params.horizon_hours,
                metrics=metrics,
            )
            summary.forecast_rows = forecast.height
            plan = plan_capacity(
                settings,
                forecast_only=params.capacity_mode == "forecast_only",
                game_type=params.game_type,
                now=utcnow(),  # after the forecast: the plan uses forecasts made until now
            )
            if params.approval_max_change_pct is not None:
                plan = approve_large_changes(
                    plan, params.approval_max_change_pct, params.approval_timeout_minutes
                )
            summary.decisions = apply_capacity(settings, plan)
            summary.overrides, summary.margins, summary.accuracy = read_run_context(
                settings, params.game_type
            )
    except RunLockTimeout as exc:
        logger.warning("not run: %s", exc)
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    publish_forecast(params.game_type, forecast)
    publish_capacity_plan(params.game_type, summary.decisions)
    publish_summary(summary)
    publish_links(params.game_type, settings.docs_dir, settings.reports_dir)
    logger.info(
        "%s: %d forecast rows, %d decisions", params.scope, forecast.height, len(summary.decisions)
    )
    return summary
