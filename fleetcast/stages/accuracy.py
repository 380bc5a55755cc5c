"""Realised accuracy: score every stored forecast run against the actuals that have arrived, and
say which series the accuracy loop flags for retraining.

- ``score_accuracy(settings, policy=None) -> polars.DataFrame``
- ``series_needing_retrain(con) -> [(SeriesKey, reason)]``
"""

from __future__ import annotations

import duckdb
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.registry import SeriesKey
from models.accuracy import RetrainPolicy, realised_accuracy, retrain_flags
from models.clock import utcnow


def series_needing_retrain(con: duckdb.DuckDBPyConnection) -> list[tuple[SeriesKey, str]]:
    rows = con.sql(db.sql("accuracy_retrain_series")).fetchall()
    return [(SeriesKey(g, r, m), reason) for g, r, m, reason in rows]


def score_accuracy(settings: Settings, policy: RetrainPolicy | None = None) -> pl.DataFrame:
    """Realised MASE/sMAPE/coverage of every stored forecast run against the actuals that have
    arrived, per series and model, upserted into ``accuracy`` with the retrain flag."""
    with db.session(settings.db_path) as con:
        forecasts = con.sql(db.sql("accuracy_forecasts")).pl()
        actuals = con.sql(db.sql("accuracy_actuals")).pl()
        scales = con.sql(db.sql("accuracy_scales")).pl()
        backtest = con.sql(db.sql("model_backtest_scores")).pl()
        realised = realised_accuracy(
            forecasts.with_columns(pl.col("ts").cast(pl.Datetime("us"))),
            actuals.with_columns(pl.col("ts").cast(pl.Datetime("us"))),
            scales,
        )
        scored = retrain_flags(realised, backtest, policy or RetrainPolicy()).with_columns(
            pl.lit(utcnow()).cast(pl.Datetime("us")).alias("scored_at")
        )
        if scored.height:
            with db.transaction(con):
                con.register("new_accuracy", scored)
                try:
                    con.execute(db.sql("accuracy_upsert")).fetchall()
                finally:
                    con.unregister("new_accuracy")
    return scored
