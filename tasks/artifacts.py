"""Publish what the Prefect UI shows: artifacts with stable keys per flow kind and game type.

What each artifact says is rendered in :mod:`fleetcast.stages.pages` (plain functions, tested
without Prefect); the tasks here only publish it. Keys: see that module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from fleetcast.resources import db
from fleetcast.stages.orchestration import is_transient
from fleetcast.stages.pages import (
    MAX_PLOTS,
    RunSummary,
    artifact_key,
    as_record,
    capacity_plot,
    forecast_description,
    forecast_plots,
    plots_markdown,
    render_forecast_table,
    render_plan_table,
    render_replay_table,
    render_summary,
)

# --------------------------------------------------------------------------- tasks (publish)

# Publishing talks to the Prefect API: safe to repeat, retried on transient errors only.
# Never cached: publishing is a side effect.
_publish: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
    "cache_policy": NO_CACHE,
}


@task(name="publish-forecast-table", **_publish)
def publish_forecast(scope: str | None, forecast: pl.DataFrame | None) -> str:
    key = artifact_key("forecast", scope)
    rows = render_forecast_table(forecast)
    create_table_artifact(
        rows or [{"note": "no forecast in this run"}],
        key=key,
        description=forecast_description(forecast, scope),
    )
    return key


@task(name="publish-capacity-plan", **_publish)
def publish_capacity_plan(scope: str | None, decisions: Sequence[Any]) -> str:
    key = artifact_key("capacity-plan", scope)
    rows = render_plan_table(decisions)
    create_table_artifact(
        rows or [{"note": "no fleet for this game type"}],
        key=key,
        description=f"Capacity decisions per fleet ({scope or 'all'})",
    )
    return key


def publish_summary(summary: RunSummary) -> str:
    """The run summary as the flow run's own artifact: called from the flow (not a task), so
    it shows on the flow run's Artifacts tab, not only under a task run. One key per flow kind
    and game type (``pipeline-summary-casual-puzzle``): a backfill's summary never hides the
    newest pipeline's."""
    key = artifact_key(f"{summary.flow}-summary", summary.scope)
    create_markdown_artifact(
        render_summary(summary), key=key, description=f"fleetcast {summary.flow} run summary"
    )
    return key


@task(name="publish-replays", **_publish)
def publish_replays(scope: str | None, replays: Sequence[Mapping[str, Any]]) -> str:
    key = artifact_key("backfill-replay", scope)
    create_table_artifact(
        render_replay_table(replays) or [{"note": "no decisions replayed"}],
        key=key,
        description="Backfill: replayed capacity decisions per fleet, policy vs reactive "
        "(unserved and idle in metric-hours; recorded, never applied)",
    )
    return key


@task(name="publish-plots", **_publish)
def publish_plots(
    settings: Any,
    scope: str | None,
    forecast: pl.DataFrame | None,
    decisions: Sequence[Any] = (),
) -> str | None:
    """The run's plots as one markdown artifact with the images inline (``plots-<game-type>``):
    per fleet decided, capacity in effect against demand over the last three days and the
    forecast ahead; per series of the capacity metric, the forecast against actuals."""
    if forecast is not None and forecast.height == 0:
        forecast = None
    if forecast is None and not decisions:
        return None
    out = Path(settings.reports_dir) / "runs" / artifact_key("plots", scope)
    images: list[tuple[str, bytes]] = []
    # Not read_only: this runs after the run lock is released, and DuckDB refuses a read-only
    # connection in a process that holds a read-write one to the same file (another run's).
    with db.session(settings.db_path) as con:
        fleets = {
            r["fleet"]: r
            for r in con.sql(db.sql("fleet_list"), params={"game_type": scope}).pl().to_dicts()
        }
        for d in [as_record(d) for d in decisions][:MAX_PLOTS]:
            if d["fleet"] in fleets:
                metric = fleets[d["fleet"]]["demand_metric"]
                images.append(capacity_plot(con, d, metric, forecast, out))
        if forecast is not None:
            images += forecast_plots(con, forecast, out)
    key_name = artifact_key("plots", scope)
    create_markdown_artifact(
        plots_markdown(
            images,
            "Capacity in effect (green steps: each recorded decision, this run's until the next "
            "hourly run) against demand (black) and the forecast ahead "
            "(blue, dashed; hours short in red); then each forecast (blue, with its interval) "
            f"against actuals. {len(images)} plot(s).",
        ),
        key=key_name,
        description=f"Plots of this run: capacity vs demand, forecasts ({scope or 'all'})",
    )
    return key_name


@task(name="publish-replay-plots", **_publish)
def publish_replay_plots(scope: str | None, replays: Sequence[Mapping[str, Any]]) -> str | None:
    """Each backfill replay's capacity-vs-demand plot inline (``backfill-plots-<game-type>``)."""
    plots = [(rep, Path(str(rep.get("plot")))) for rep in replays if rep.get("plot")]
    images = [
        (f"{rep['fleet']}: replayed capacity vs {rep['metric']}", path.read_bytes())
        for rep, path in plots
        if path.is_file()
    ][:MAX_PLOTS]
    if not images:
        return None
    key = artifact_key("backfill-plots", scope)
    create_markdown_artifact(
        plots_markdown(
            images,
            "Replayed capacity (green steps) against the demand that came (black); hours short "
            "in red. Recorded, never applied.",
        ),
        key=key,
        description=f"Backfill: replayed capacity vs demand per fleet ({scope or 'all'})",
    )
    return key


@task(name="publish-links", **_publish)
def publish_links(scope: str | None, docs_dir: Path, reports_dir: Path) -> list[str]:
    """Links to GX Data Docs and the report plots, where they exist."""
    keys = []
    docs = Path(docs_dir) / "index.html"
    if docs.exists():
        key = artifact_key("data-docs", scope)
        create_link_artifact(docs.resolve().as_uri(), link_text="GX Data Docs", key=key)
        keys.append(key)
    reports = Path(reports_dir)
    if reports.is_dir():
        pages = sorted(reports.rglob("*.html")) or sorted(reports.rglob("*.png"))
        if pages:
            key = artifact_key("report", scope)
            newest = max(pages, key=lambda p: p.stat().st_mtime)
            create_link_artifact(newest.resolve().as_uri(), link_text=newest.name, key=key)
            keys.append(key)
    return keys
