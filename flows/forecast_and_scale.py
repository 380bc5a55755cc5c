"""Forecast the next hours for one game type (or all), then plan and apply each fleet's capacity."""

from __future__ import annotations

import polars as pl
from prefect import flow, get_run_logger
from prefect.states import Cancelled

from fleetcast.config import Settings, capacity_backend
from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.orchestration import run_stage, settings_for
from fleetcast.stages.pages import RunSummary, series_count
from flows.params import ForecastAndScaleParams
from models.clock import utcnow
from tasks.apply import apply_capacity
from tasks.approval import (
    ask_for_approval,
    decisions_after_answers,
    mark_run_ended,
    read_pending,
)
from tasks.artifacts import (
    publish_capacity_plan,
    publish_forecast,
    publish_links,
    publish_plots,
    publish_summary,
)
from tasks.checks import read_latest_forecasts, read_run_context, series_in_scope
from tasks.forecast import forecast_series
from tasks.plan import plan_capacity


def forecast_plan_apply(
    settings: Settings,
    params: ForecastAndScaleParams,
    summary: RunSummary,
    metrics: list[str] | None,
) -> tuple[pl.DataFrame, list[str]]:
    """The shared core of the hourly cycle (this flow and the pipeline): forecast the series in
    scope, plan each fleet, apply (changes a fleet's approval rule holds are recorded as
    pending first), and fill ``summary``. Called inside the caller's run lock; returns the
    forecast and the ids of the changes this run asks a person about (after the lock:
    :func:`ask_and_publish`)."""
    made = run_stage(  # only the series due (FLEETCAST_FORECAST_REFRESH_HOURS)
        settings,
        forecast_series,
        params.game_type,
        horizon=params.horizon_hours,
        metrics=metrics,
        refresh=settings.refresh_hours,
    )
    forecast = read_latest_forecasts(settings, params.game_type, metrics)  # what is published
    summary.forecast_rows = made.height
    summary.forecast_series = (series_count(made), series_count(forecast))
    summary.forecast_refresh_hours = settings.refresh_hours
    backend = capacity_backend(settings)  # one per run: plan and apply share it
    plan = plan_capacity(
        settings,
        forecast_only=params.capacity_mode == "forecast_only",
        game_type=params.game_type,
        now=utcnow(),  # after the forecast: the plan uses forecasts made until now
        backend=backend,
    )
    summary.decisions = apply_capacity(settings, plan, backend=backend)
    summary.overrides, summary.margins, summary.accuracy = read_run_context(
        settings, params.game_type
    )
    summary.approvals = read_pending(settings, params.game_type)
    return forecast, [p.change_id for p in plan.proposals]


def publish_run(
    settings: Settings, params: ForecastAndScaleParams, summary: RunSummary, forecast: pl.DataFrame
) -> None:
    """Artifacts with stable keys per game type, and one log line."""
    publish_forecast(params.game_type, forecast)
    publish_capacity_plan(params.game_type, summary.decisions)
    publish_plots(settings, params.game_type, forecast, summary.decisions)
    publish_summary(summary)
    publish_links(params.game_type, settings.docs_dir, settings.reports_dir)
    get_run_logger().info(
        "%s: %d forecast rows, %d decisions", params.scope, forecast.height, len(summary.decisions)
    )


def ask_and_publish(
    settings: Settings,
    params: ForecastAndScaleParams,
    summary: RunSummary,
    forecast: pl.DataFrame,
    asked: list[str],
) -> None:
    """Publish the run, then (outside the run lock) ask a person about the changes this run
    recorded as pending, and publish the plan, plots and summary again as they stand after the
    answer (what was applied or kept), so no page still says "pending"."""
    publish_run(settings, params, summary, forecast)
    changes = [c for c in summary.approvals if c.change_id in asked]
    if not changes:
        return
    summary.notes += ask_for_approval(
        settings,
        changes,
        params.approval_timeout_minutes,
        lock_wait_minutes=params.lock_wait_minutes,
    )
    summary.approvals = read_pending(settings, params.game_type)
    summary.decisions = decisions_after_answers(settings, summary.decisions, asked)
    publish_capacity_plan(params.game_type, summary.decisions)
    publish_plots(settings, params.game_type, forecast, summary.decisions)
    publish_summary(summary)


@flow(
    name="forecast-and-scale",
    flow_run_name="forecast-and-scale-{params.scope}-{params.capacity_mode}",
    timeout_seconds=45 * 60,  # shorter than the hourly schedule
    on_crashed=[mark_run_ended],
    on_cancellation=[mark_run_ended],
    on_failure=[mark_run_ended],
)
def forecast_and_scale(
    params: ForecastAndScaleParams = ForecastAndScaleParams(),  # noqa: B008
) -> RunSummary:
    logger = get_run_logger()
    settings = settings_for(params)
    summary = RunSummary(flow="forecast-and-scale", scope=params.scope)
    try:
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="forecast"):
            metrics = series_in_scope(settings, params.game_type, params.series)
            forecast, asked = forecast_plan_apply(settings, params, summary, metrics)
    except RunLockTimeout as exc:
        logger.warning("not run: %s", exc)
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    ask_and_publish(settings, params, summary, forecast, asked)
    return summary
