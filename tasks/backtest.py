"""Prefect task: replay one fleet's history and write its plan CSV (reads DuckDB read-only)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.stages.backtest import BacktestRequest, run_backtest, write_plan


@task(name="backtest-replay")
def backtest_replay(settings: Settings, request: BacktestRequest, out: Path) -> dict[str, object]:
    """Replay, write the plan to ``out`` and return the replay table as plain rows."""
    with db.session(settings.db_path, read_only=True) as con:
        result, _ = run_backtest(con, request)
    write_plan(result, request, out)
    return {"out": str(out), "table": result.table().to_dicts()}
