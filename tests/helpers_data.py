"""Shared test helper: store a metrics frame straight into DuckDB (setup, not the ingest path)."""

from __future__ import annotations

import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db


def store_metrics(settings: Settings, frame: pl.DataFrame) -> None:
    """Insert ``frame`` (ts, game_type, region, metric, value, batch_id) into ``metrics``."""
    with db.session(settings.db_path) as con:
        con.register("frame", frame)
        con.execute(
            "insert into metrics (ts, game_type, region, metric, value, batch_id) "
            "select ts, game_type, region, metric, value, batch_id from frame"
        ).fetchall()
