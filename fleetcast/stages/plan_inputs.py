"""What a plan reads, for all its fleets at once: a handful of queries however many fleets
(``sql/queries/plan_*.sql``), turned into plain data per fleet (:class:`FleetInputs`) that the
decisions are then made from without the database (:func:`fleetcast.stages.decide.decide_from`).

Each bulk read is, per key, what the one-series read of the replay returns (the backtest reads
one series through the same functions with one key: :func:`read_series`, :func:`read_events`,
:func:`read_forecasts`), so live and replayed decisions see the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import polars as pl

from fleetcast.resources import db
from fleetcast.stages.overrides import naive
from models.decision import decision_config, feed_hours, floor_hour, lead_offsets
from models.events import NOTICE, EventConfig, EventWindow
from models.nowcast import NowcastConfig
from models.policy import RESOURCE_METRICS, FleetSpec, ForecastPoint, SeriesForecast

Series = tuple[str, str, str]  # game type, region, metric
Hourly = tuple[list[datetime], np.ndarray]


@dataclass(frozen=True)
class FleetInputs:
    """One fleet's data at the decision, read in bulk: its demand series on an hourly grid
    (the newest ``feed_hours``), the events that apply to it, the stored forecasts and the
    newest observed value per metric, its earlier recommendations, and why its demand series
    cannot be trusted (its newest rows failed ingest validation), if so."""

    offsets: tuple[int, ...]
    config: NowcastConfig
    ts: list[datetime] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    events: list[EventWindow] = field(default_factory=list)
    stored: dict[str, SeriesForecast] = field(default_factory=dict)
    observed: dict[str, float] = field(default_factory=dict)
    history: list[tuple[datetime, int]] = field(default_factory=list)
    ingest_error: str | None = None


def offsets_for(spec: FleetSpec, now: datetime) -> tuple[int, ...]:
    return lead_offsets(spec.lead_time_minutes, spec.window_minutes, now.minute)


def feed_since(spec: FleetSpec, now: datetime, config: NowcastConfig) -> datetime:
    """The first hour of the demand series a decision at ``now`` is fed."""
    return floor_hour(now) - timedelta(hours=feed_hours(config, max(offsets_for(spec, now))))


def metrics_for(spec: FleetSpec) -> list[str]:
    """The metrics whose stored forecasts a fleet's decision reads: demand, then resources."""
    metrics = [spec.demand_metric]
    for resource, cap in spec.capacities().items():
        if resource != "players" and cap is not None:
            metrics.extend(RESOURCE_METRICS[resource])
    return metrics


# ---------------------------------------------------------------------------------------------
# Series on an hourly grid


_GRIDS: dict[tuple[datetime, int], list[datetime]] = {}


def key_lists(keys: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """The bulk queries' parameters: the keys' game types, regions and (for a series) metrics
    as parallel lists, unnested together in SQL."""
    names = ("game_types", "regions", "metrics")
    width = len(keys[0]) if keys else 0
    return {names[i]: [k[i] for k in keys] for i in range(min(width, 3))}


def _grid(first: datetime, hours: int) -> list[datetime]:
    """The hours from ``first`` (a list shared by every series with the same range: read,
    never changed)."""
    key = (first, hours)
    got = _GRIDS.get(key)
    if got is None:
        if len(_GRIDS) > 64:
            _GRIDS.clear()
        got = [first + timedelta(hours=h) for h in range(hours)]
        _GRIDS[key] = got
    return got


def read_series(
    con: duckdb.DuckDBPyConnection,
    wanted: Iterable[tuple[str, str, str, datetime]],
    until: datetime,
) -> dict[tuple[str, str, str, datetime], Hourly]:
    """Each (game type, region, metric, since) series on a full hourly grid from its first
    hour at or after ``since`` to the hour of ``until`` (values observed after ``until`` are
    not read); missing hours are NaN; values within one hour are averaged (sub-hourly input).
    A series without data is absent."""
    keys = sorted(set(wanted))
    if not keys:
        return {}
    frame = con.sql(
        db.sql("plan_series"),
        params={
            **key_lists(keys),
            "since": [k[3] for k in keys],
            "until": until,
        },
    ).pl()
    if frame.is_empty():
        return {}
    names = ["game_type", "region", "metric", "since"]
    hourly = (
        frame.with_columns(pl.col("ts").cast(pl.Datetime("us")).dt.truncate("1h"))
        .group_by([*names, "ts"], maintain_order=True)
        .agg(pl.col("value").mean())
        .sort([*names, "ts"])
    )
    last = floor_hour(until)
    out: dict[tuple[str, str, str, datetime], Hourly] = {}
    for (g, r, m, since), part in hourly.partition_by(names, as_dict=True).items():
        ts = part["ts"]
        first = ts[0]
        n = int((last - first) // timedelta(hours=1)) + 1
        values = np.full(n, np.nan)
        at = ((ts - first).dt.total_microseconds() // 3_600_000_000).to_numpy()
        values[at] = part["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        out[(str(g), str(r), str(m), naive(since))] = (_grid(first, n), values)  # type: ignore[index]
    return out


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class EventRow:
    game_type: str | None
    region: str | None
    ends_at: datetime  # as stored (the window lasts an hour at least)
    window: EventWindow


def read_events(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime) -> list[EventRow]:
    """Every event that touches [since, until] (widened by an event's reach before and after
    it), oldest first, with the game type and region it applies to (None = all)."""
    cfg = EventConfig()
    rows = con.sql(
        db.sql("plan_events"),
        params={
            "since": since - timedelta(hours=cfg.post_hours + 1),
            "until": until + timedelta(hours=cfg.pre_hours + 1),
            "notice_hours": int(NOTICE.total_seconds() // 3600),
        },
    ).fetchall()
    return [
        EventRow(
            gt,
            region,
            end,
            EventWindow(
                kind=kind,
                start=start,
                end=max(end, start + timedelta(hours=1)),
                name=name,
                multiplier=mult if mult is not None and mult > 0 else None,
                announced=known,
            ),
        )
        for gt, region, kind, name, start, end, mult, known in rows
    ]


def events_of(
    rows: Sequence[EventRow],
    game_type: str,
    region: str,
    since: datetime,
    until: datetime,
    known_by: datetime | None = None,
) -> list[EventWindow]:
    """The events of ``rows`` that apply to a series and touch [since, until] (widened as
    :func:`read_events` does); ``known_by``: only those known by then."""
    cfg = EventConfig()
    lo = since - timedelta(hours=cfg.post_hours + 1)
    hi = until + timedelta(hours=cfg.pre_hours + 1)
    return [
        e.window
        for e in rows
        if (e.game_type is None or e.game_type == game_type)
        and (e.region is None or e.region == region)
        and e.ends_at >= lo
        and e.window.start <= hi
        and (known_by is None or e.window.announced is None or e.window.announced <= known_by)
    ]


# ---------------------------------------------------------------------------------------------
# Stored forecasts, observed values, history, ingest failures


def _series_forecast(part: pl.DataFrame, metric: str) -> SeriesForecast:
    """A stored forecast run's rows (one series, oldest first) as the policy reads it: the
    upper quantile is ``yhat_q90`` where that column exists and is filled, else
    ``yhat_upper``."""
    has_q90 = "yhat_q90" in part.columns
    points = []
    for row in part.iter_rows(named=True):
        q90 = row.get("yhat_q90") if has_q90 else None
        upper = row["yhat_upper"] if q90 is None else q90
        points.append(
            ForecastPoint(
                ts=naive(row["ts"]),  # type: ignore[arg-type]
                yhat=float(row["yhat"]) if row["yhat"] is not None else math.nan,
                upper=float(upper) if upper is not None else math.nan,
            )
        )
    first = part.row(0, named=True)
    note = str(first.get("note") or "")
    # A forecast made after the stored models were refused (tampered, unloadable) comes from an
    # unstored last resort: R4/R15 say keep the fleet as it is rather than size on it.
    problem = (
        f"no stored model could be used ({note})"
        if first.get("model_id") is None and "refused" in note
        else None
    )
    return SeriesForecast(
        metric=metric,
        points=tuple(points),
        created_at=naive(part["created_at"].max()),
        model=str(first["model"]),
        run_id=str(first["run_id"]),
        problem=problem,
    )


def read_forecasts(
    con: duckdb.DuckDBPyConnection, series: Iterable[Series], now: datetime
) -> dict[Series, SeriesForecast]:
    """Each series' newest forecast run created at or before ``now``, its points from two
    hours before ``now`` on; a series without one is absent."""
    keys = sorted(set(series))
    if not keys:
        return {}
    frame = con.sql(
        db.sql("plan_forecasts"),
        params={
            **key_lists(keys),
            "now": now,
            "since": now - timedelta(hours=2),
        },
    ).pl()
    if frame.is_empty():
        return {}
    names = ["game_type", "region", "metric"]
    return {
        (str(g), str(r), str(m)): _series_forecast(part, str(m))
        for (g, r, m), part in frame.partition_by(names, as_dict=True).items()
    }


def read_observed(
    con: duckdb.DuckDBPyConnection,
    pairs: Iterable[tuple[str, str]],
    now: datetime,
    max_age: timedelta,
) -> dict[tuple[str, str], dict[str, float]]:
    """Per (game type, region) the newest observed value of each metric no older than
    ``max_age`` and not after ``now``."""
    keys = sorted(set(pairs))
    if not keys:
        return {}
    rows = con.sql(
        db.sql("plan_observed"),
        params={
            **key_lists(keys),
            "now": now,
            "since": now - max_age,
        },
    ).fetchall()
    out: dict[tuple[str, str], dict[str, float]] = {}
    for g, r, metric, value, _ in rows:
        if value is not None:
            out.setdefault((g, r), {})[metric] = float(value)
    return out


def history_since(spec: FleetSpec, now: datetime) -> datetime:
    """How far back a fleet's earlier recommendations count: one stabilisation window (plus
    one decision)."""
    return now - timedelta(minutes=spec.scale_in_stabilisation_minutes) - timedelta(hours=2)


def read_history(
    con: duckdb.DuckDBPyConnection, fleets: Sequence[FleetSpec], now: datetime
) -> dict[str, list[tuple[datetime, int]]]:
    """Each fleet's earlier recommendations since :func:`history_since`, oldest first."""
    if not fleets:
        return {}
    since = {f.fleet: history_since(f, now) for f in fleets}
    rows = con.sql(
        db.sql("plan_history"),
        params={"fleets": sorted(since), "since": min(since.values()), "now": now},
    ).fetchall()
    out: dict[str, list[tuple[datetime, int]]] = {}
    for fleet, decided_at, recommended in rows:
        at: datetime = naive(decided_at)  # type: ignore[assignment]
        if at >= since[fleet]:
            out.setdefault(fleet, []).append((at, int(recommended)))
    return out


def read_ingest_failures(
    con: duckdb.DuckDBPyConnection, series: Iterable[Series], now: datetime, window: timedelta
) -> dict[Series, str]:
    """Why each series cannot be trusted now: its newest input rows failed ingest validation
    (quarantined, nothing of the series stored since); series without such rows are absent."""
    keys = sorted(set(series))
    if not keys:
        return {}
    rows = con.sql(
        db.sql("plan_ingest_failures"),
        params={
            **key_lists(keys),
            "now": now,
            "since": now - window,
        },
    ).fetchall()
    return {
        (g, r, m): (
            f"ingest validation failed for {g}/{r} {m}: {n} row(s) of batch {batch} quarantined "
            f"at {at:%Y-%m-%d %H:%M} ({reason}), nothing of the series stored since"
        )
        for g, r, m, at, reason, batch, n in rows
    }


def read_one_series(
    con: duckdb.DuckDBPyConnection,
    game_type: str,
    region: str,
    metric: str,
    since: datetime,
    until: datetime,
) -> Hourly:
    """One series as :func:`read_series` reads it (the replay's); empty when it has no data."""
    key = (game_type, region, metric, since)
    return read_series(con, [key], until).get(key, ([], np.empty(0)))


def read_one_forecast(
    con: duckdb.DuckDBPyConnection, game_type: str, region: str, metric: str, now: datetime
) -> SeriesForecast | None:
    """One series' newest stored forecast as :func:`read_forecasts` reads it."""
    key = (game_type, region, metric)
    return read_forecasts(con, [key], now).get(key)


def read_series_events(
    con: duckdb.DuckDBPyConnection,
    game_type: str,
    region: str,
    since: datetime,
    until: datetime,
    known_by: datetime | None = None,
) -> list[EventWindow]:
    """The events that apply to one series and touch [since, until], each with the time it
    became known (:data:`models.events.NOTICE` before its start unless announced; never before
    it was stored); ``known_by``: only those known by then (the live path: an event not yet
    known is not read)."""
    return events_of(read_events(con, since, until), game_type, region, since, until, known_by)


# ---------------------------------------------------------------------------------------------
# Everything a plan reads


def read_plan_inputs(
    con: duckdb.DuckDBPyConnection,
    fleets: Sequence[FleetSpec],
    now: datetime,
    *,
    observed_max_age: timedelta,
    ingest_window: timedelta,
    config: NowcastConfig | None = None,
) -> dict[str, FleetInputs]:
    """Every fleet's :class:`FleetInputs` at ``now``, in six queries however many fleets.
    ``config``: the decision forecaster's configuration (default: each fleet's own,
    :func:`models.decision.decision_config`)."""
    if not fleets:
        return {}
    cfgs = {f.fleet: config or decision_config(f) for f in fleets}
    offsets = {f.fleet: offsets_for(f, now) for f in fleets}
    since = {f.fleet: feed_since(f, now, cfgs[f.fleet]) for f in fleets}
    demand = {f.fleet: (f.game_type, f.region, f.demand_metric) for f in fleets}
    series = read_series(con, [(*demand[f.fleet], since[f.fleet]) for f in fleets], now)
    until = max(now + timedelta(hours=max(o) + 1) for o in offsets.values())
    event_rows = read_events(con, min(since.values()), until)
    wanted = [(f.game_type, f.region, m) for f in fleets for m in metrics_for(f)]
    stored = read_forecasts(con, wanted, now)
    observed = read_observed(con, [(f.game_type, f.region) for f in fleets], now, observed_max_age)
    history = read_history(con, fleets, now)
    failures = read_ingest_failures(con, demand.values(), now, ingest_window)
    out: dict[str, FleetInputs] = {}
    for f in fleets:
        ts, values = series.get((*demand[f.fleet], since[f.fleet]), ([], np.empty(0)))
        events: list[EventWindow] = []
        if ts:
            events = events_of(
                event_rows,
                f.game_type,
                f.region,
                since[f.fleet],
                now + timedelta(hours=max(offsets[f.fleet]) + 1),
                known_by=now,
            )
        out[f.fleet] = FleetInputs(
            offsets=offsets[f.fleet],
            config=cfgs[f.fleet],
            ts=ts,
            values=values,
            events=events,
            stored={
                m: fc
                for m in metrics_for(f)
                if (fc := stored.get((f.game_type, f.region, m))) is not None
            },
            observed=dict(observed.get((f.game_type, f.region), {})),
            history=history.get(f.fleet, []),
            ingest_error=failures.get(demand[f.fleet]),
        )
    return out
