"""Shared test helpers: store a metrics frame straight into DuckDB (setup, not the ingest path),
and read rows back from the database file."""

from __future__ import annotations

import polars as pl
from helpers_reliability import query as query_file

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


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    """The rows of ``sql`` on the settings' database file, read-only."""
    return query_file(settings.db_path, sql, params)
