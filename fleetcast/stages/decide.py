"""The live side of the one decision path (:mod:`models.decision`): read one fleet's data at
``now`` from DuckDB and decide. ``fleetcast scale`` (via :func:`fleetcast.stages.allocate.plan`)
calls :func:`decide_live`; ``fleetcast backtest`` feeds the same pure function from a replay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import numpy as np
import polars as pl

from fleetcast.resources import db
from models.decision import (
    DecisionData,
    DecisionForecaster,
    FleetState,
    decide_fleet,
    decision_config,
    feed,
    feed_hours,
    floor_hour,
    lead_offsets,
    observed_demand,
)
from models.events import NOTICE, EventConfig, EventWindow
from models.nowcast import NowcastConfig
from models.policy import Decision, FleetSpec, SeriesForecast


def load_hourly(
    con: duckdb.DuckDBPyConnection,
    game_type: str,
    region: str,
    metric: str,
    since: datetime,
    until: datetime,
) -> tuple[list[datetime], np.ndarray]:
    """One series on a full hourly grid from its first hour at or after ``since`` to the hour
    of ``until`` (values observed after ``until`` are not read); missing hours are NaN; values
    within one hour are averaged (sub-hourly input). Empty lists when there is no data."""
    frame = con.sql(
        db.sql("backtest_series"),
        params={
            "game_type": game_type,
            "region": region,
            "metric": metric,
            "since": since,
            "until": until,
        },
    ).pl()
    if frame.is_empty():
        return [], np.empty(0)
    frame = (
        frame.with_columns(pl.col("ts").cast(pl.Datetime("us")).dt.truncate("1h"))
        .group_by("ts")
        .agg(pl.col("value").mean())
        .sort("ts")
    )
    first = frame["ts"][0]
    grid = pl.DataFrame(
        {"ts": pl.datetime_range(first, floor_hour(until), "1h", eager=True, time_unit="us")}
    )
    full = grid.join(frame, on="ts", how="left")
    values = full["value"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    return list(full["ts"].to_list()), values


def load_events(
    con: duckdb.DuckDBPyConnection,
    game_type: str,
    region: str,
    since: datetime,
    until: datetime,
    known_by: datetime | None = None,
) -> list[EventWindow]:
    """The events that apply to a series and touch [since, until], each with the time it became
    known (:data:`models.events.NOTICE` before its start unless announced; never before it was
    stored); ``known_by``: only those known by then (the live path: rows are only what has
    been ingested, and an event not yet known is not read)."""
    rows = con.sql(
        db.sql("series_events"),
        params={
            "game_type": game_type,
            "region": region,
            "since": since - timedelta(hours=EventConfig().post_hours + 1),
            "until": until + timedelta(hours=EventConfig().pre_hours + 1),
            "notice_hours": int(NOTICE.total_seconds() // 3600),
        },
    ).fetchall()
    return [
        EventWindow(
            kind=kind,
            start=start,
            end=max(end, start + timedelta(hours=1)),
            name=name,
            multiplier=mult if mult is not None and mult > 0 else None,
            announced=known,
        )
        for kind, name, start, end, mult, known in rows
        if known_by is None or known <= known_by
    ]


def offsets_for(spec: FleetSpec, now: datetime) -> tuple[int, ...]:
    return lead_offsets(spec.lead_time_minutes, spec.window_minutes, now.minute)


def forecaster_at(
    con: duckdb.DuckDBPyConnection,
    spec: FleetSpec,
    now: datetime,
    config: NowcastConfig | None = None,
    *,
    events_until: datetime | None = None,
) -> tuple[DecisionForecaster | None, list[datetime], np.ndarray]:
    """The decision forecaster fed the fleet's demand series up to ``now`` (None: no data),
    sized at the fleet's service level unless ``config`` says otherwise.

    ``events_until`` (a projection further ahead, ``fleetcast events``): the events up to then
    are fed too, every stored one taken as known at the newest hour fed (the decision uses an
    event only from when it is known; a projection asks what it will expect of it). The
    forecaster's state is the same for events ahead of the newest hour (they touch no hour it
    has seen); one in progress but not known yet is learned from the newest hour only."""
    cfg = config or decision_config(spec)
    offsets = offsets_for(spec, now)
    since = floor_hour(now) - timedelta(hours=feed_hours(cfg, max(offsets)))
    ts, values = load_hourly(con, spec.game_type, spec.region, spec.demand_metric, since, now)
    if not ts:
        return None, ts, values
    until = now + timedelta(hours=max(offsets) + 1)
    if events_until is None:
        events = load_events(con, spec.game_type, spec.region, since, until, now)
    else:
        newest = ts[-1]
        events = [
            e if e.announced is None or e.announced <= newest else replace(e, announced=newest)
            for e in load_events(con, spec.game_type, spec.region, since, max(until, events_until))
        ]
    return feed(ts, values.tolist(), offsets, cfg, events), ts, values


def ingest_failure(
    con: duckdb.DuckDBPyConnection, spec: FleetSpec, now: datetime, window: timedelta
) -> str | None:
    """Why the fleet's demand series cannot be trusted now: its newest input rows failed
    ingest validation (quarantined, nothing of the series stored since), or None."""
    rows = con.sql(
        db.sql("decide_ingest_failure"),
        params={
            "game_type": spec.game_type,
            "region": spec.region,
            "metric": spec.demand_metric,
            "now": now,
            "since": now - window,
        },
    ).fetchall()
    if not rows:
        return None
    at, reason, batch, n = rows[0]
    return (
        f"ingest validation failed for {spec.game_type}/{spec.region} {spec.demand_metric}: "
        f"{n} row(s) of batch {batch} quarantined at {at:%Y-%m-%d %H:%M} ({reason}), "
        "nothing of the series stored since"
    )


def decide_live(
    con: duckdb.DuckDBPyConnection,
    spec: FleetSpec,
    now: datetime,
    state: FleetState,
    *,
    stored: Mapping[str, SeriesForecast],
    observed: Mapping[str, float],
    observed_max_age: timedelta,
    forecast_error: str | None = None,
    max_forecast_age: timedelta = timedelta(hours=6),
    config: NowcastConfig | None = None,
) -> Decision:
    """One fleet's decision at ``now`` from the database (reads only). ``stored``: the stored
    forecasts per metric; ``observed``: the newest raw observations per metric (the demand
    metric's is replaced by the newest hourly value, as the replay sees it). The newest rows of
    the series having failed ingest validation is a ``forecast_error`` (fail-static: capacity is
    kept, the reason says why); the replay of history has no such check."""
    forecaster, ts, values = forecaster_at(con, spec, now, config)
    forecast_error = forecast_error or ingest_failure(con, spec, now, max_forecast_age)
    obs = {k: v for k, v in observed.items() if k != spec.demand_metric}
    if ts:
        demand = observed_demand(ts, values.tolist(), now, observed_max_age)
        if demand is not None and math.isfinite(demand):
            obs[spec.demand_metric] = demand
    data = DecisionData(forecaster=forecaster, stored=stored, observed=obs)
    return decide_fleet(
        spec,
        now,
        data,
        state,
        forecast_error=forecast_error,
        max_forecast_age=max_forecast_age,
    )
