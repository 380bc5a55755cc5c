"""What the forecasting stages read: each series' hourly history and the events that apply to it.

- ``load_histories(con, game_type=None, metric=None, region=None) -> {SeriesKey: ds, y frame}``
- ``load_events(con) -> pandas.DataFrame`` (all events), ``events_for(events, key)`` (one series')
"""

from __future__ import annotations

import duckdb
import pandas as pd

from fleetcast.resources import db
from fleetcast.resources.registry import SeriesKey
from models.names import check_name

MAX_HISTORY_DAYS = 56  # training window: the last 8 weeks of each series


def load_histories(
    con: duckdb.DuckDBPyConnection,
    game_type: str | None = None,
    metric: str | None = None,
    region: str | None = None,
    max_days: int = MAX_HISTORY_DAYS,
) -> dict[SeriesKey, pd.DataFrame]:
    """Hourly ``ds, y`` per series (the last ``max_days`` days before its own last observation)."""
    for kind, value in (("game type", game_type), ("metric", metric), ("region", region)):
        if value is not None:
            check_name(kind, value)
    frame = con.sql(
        db.sql("forecast_series_history"),
        params={"game_type": game_type, "metric": metric, "region": region, "max_days": max_days},
    ).pl()
    out: dict[SeriesKey, pd.DataFrame] = {}
    for (g, r, m), part in frame.group_by(["game_type", "region", "metric"], maintain_order=True):
        out[SeriesKey(str(g), str(r), str(m))] = pd.DataFrame(
            {"ds": part["ts"].to_numpy(), "y": part["value"].to_numpy()}
        )
    return out


def load_events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.sql(db.sql("forecast_events")).pl().to_pandas()


def events_for(events: pd.DataFrame, key: SeriesKey) -> pd.DataFrame:
    """Events that apply to a series: its game type or all (null), its region or all (null)."""
    if events.empty:
        return events
    game = events["game_type"].isna() | (events["game_type"] == key.game_type)
    region = events["region"].isna() | (events["region"] == key.region)
    return events.loc[game & region, ["kind", "starts_at", "ends_at"]].reset_index(drop=True)
