"""Prefect task: replay one fleet's history and write its plan CSV and its capacity-vs-demand
plot (reads DuckDB read-only)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import task

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.plots import plot_capacity_vs_demand
from fleetcast.stages.backtest import BacktestRequest, run_backtest, write_plan
from fleetcast.stages.events import event_spans_over


@task(name="backtest-replay")
def backtest_replay(settings: Settings, request: BacktestRequest, out: Path) -> dict[str, object]:
    """Replay, write the plan to ``out`` (and its plot beside it, ``.png``) and return the
    replay table as plain rows."""
    with db.session(settings.db_path, read_only=True) as con:
        result, _ = run_backtest(con, request)
        frame = result.frame.filter(pl.col("demand").is_not_null())  # hours that have come
        events = event_spans_over(con, request.game_type, request.region, frame["ts"])
    write_plan(result, request, out)
    plot = plot_capacity_vs_demand(
        frame.select("ts", pl.col("demand").alias("value")),
        frame.select("ts", "capacity"),
        f"{request.game_type} {request.region}: {request.metric}, replayed capacity vs demand",
        Path(out).with_suffix(".png"),
        events=events,
    )
    return {"out": str(out), "plot": str(plot), "table": result.table().to_dicts()}
