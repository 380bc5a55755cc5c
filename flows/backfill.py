"""Backfill a date range: re-ingest (and so re-validate) the landing files of those days,
re-forecast, re-score accuracy and optionally replay capacity decisions. Safe to run twice:
files already ingested are skipped by checksum, and with nothing new stored the forecasts and
scores are kept, so a second run leaves every data table as the first left it."""

from __future__ import annotations

from datetime import datetime, time
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.states import Cancelled
from rich.progress import Progress

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.backtest import BacktestRequest
from fleetcast.stages.orchestration import settings_for
from fleetcast.stages.pages import RunSummary
from flows.params import BackfillParams
from tasks.accuracy import score_forecast_accuracy
from tasks.artifacts import (
    publish_forecast,
    publish_links,
    publish_replay_plots,
    publish_replays,
    publish_summary,
)
from tasks.backtest import backtest_replay
from tasks.checks import forecast_exists, list_fleets, list_landing_files, read_run_context
from tasks.forecast import forecast_series
from tasks.ingest import ingest_files
from tasks.run_tags import tag_game_type


@flow(
    name="backfill",
    flow_run_name="backfill-{params.scope}-{params.start}-to-{params.end}",
    timeout_seconds=3 * 3600,
)
def backfill(params: BackfillParams) -> RunSummary:
    logger = get_run_logger()
    settings = settings_for(params)
    summary = RunSummary(flow="backfill", scope=params.scope)
    tag_game_type(params.game_type)
    forecast = None
    try:
        with run_lock(settings, wait_seconds=params.lock_wait_minutes * 60, label="backfill"):
            paths = list_landing_files(settings, params.start, params.end)
            logger.info("%d landing file(s) from %s to %s", len(paths), params.start, params.end)
            # progress: a bar on a terminal, and a progress artifact on the run's page
            done: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync in a sync flow
                0.0, description="backfill: files re-ingested"
            )
            with Progress(transient=True) as bar:
                job = bar.add_task("re-ingesting", total=len(paths))
                for i, path in enumerate(paths, start=1):
                    summary.ingest += ingest_files(settings, [path])
                    bar.advance(job)
                    update_progress_artifact(done, 100.0 * i / len(paths))
            stored = sum(b.rows_stored for b in summary.ingest)
            if (
                params.reforecast == "always"
                or stored
                or not forecast_exists(settings, params.game_type)
            ):
                forecast = forecast_series(settings, params.horizon_hours, params.game_type)
                summary.forecast_rows = forecast.height
                score_forecast_accuracy(settings)
            else:
                summary.notes.append("nothing new stored: forecasts and scores kept as they are")
            if params.replay_decisions:
                start = datetime.combine(params.start, time.min)
                end = datetime.combine(params.end, time(23))
                for fleet in list_fleets(settings, params.game_type):
                    out = (
                        settings.reports_dir
                        / "backfill"
                        / (f"{fleet['fleet']}-{params.start}-{params.end}.csv")
                    )
                    request = BacktestRequest(
                        game_type=fleet["game_type"],
                        metric=fleet["metric"],
                        region=fleet["region"],
                        start=start,
                        end=end,
                        lead=fleet["lead_hours"],
                        margin=fleet["margin"],
                    )
                    replay = backtest_replay(settings, request, out)
                    summary.replays.append(
                        {"fleet": fleet["fleet"], "metric": fleet["metric"], **replay}
                    )
            summary.overrides, summary.margins, summary.accuracy = read_run_context(
                settings, params.game_type
            )
    except RunLockTimeout as exc:
        logger.warning("not run: %s", exc)
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    if forecast is not None:
        publish_forecast(params.game_type, forecast)
    if summary.replays:
        publish_replays(params.game_type, summary.replays)
        publish_replay_plots(params.game_type, summary.replays)
    publish_summary(summary)
    publish_links(params.game_type, settings.docs_dir, settings.reports_dir)
    return summary
