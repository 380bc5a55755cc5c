"""Events ahead, read-only: what each upcoming event is expected to do to each fleet it applies
to (``fleetcast events``), and the event windows shaded on the capacity-vs-demand plots.

The expected peak of an event for a fleet is the highest anchored forecast
(:meth:`models.nowcast.Nowcaster.project`) over the event's hours still to come, from the
decision forecaster fed the fleet's demand up to now
(:func:`fleetcast.stages.decide.forecaster_at`), with every stored event taken as known now.
The instances and cost follow :func:`models.event_plan.plan_for_peak`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.stages.decide import forecaster_at
from fleetcast.stages.fleets import load_fleets
from models.clock import utcnow
from models.decision import MIN_NOWCAST_HOURS, DecisionForecaster, floor_hour
from models.event_plan import PeakPlan, applies, effect_source, plan_for_peak
from models.names import check_name
from models.nowcast import Projection
from models.policy import FleetSpec

MAX_EVENT_HOURS = 31 * 24  # hours of one event scanned for its peak (a month-long promotion)


@dataclass(frozen=True)
class UpcomingEvent:
    """One row of the events table (game_type / region None = all), times naive UTC."""

    name: str
    kind: str
    game_type: str | None
    region: str | None
    start: datetime
    end: datetime
    multiplier: float | None = None


@dataclass(frozen=True)
class FleetOutlook:
    """One event for one fleet it applies to. ``peak`` None: no projection (``how`` says why)."""

    event: UpcomingEvent
    fleet: FleetSpec
    peak: float | None = None  # expected peak demand, in the fleet's demand metric
    peak_at: datetime | None = None
    plan: PeakPlan | None = None
    how: str = ""  # how the effect was obtained, or why there is no peak


@dataclass(frozen=True)
class EventsOutlook:
    now: datetime
    days: int
    events: list[UpcomingEvent]
    rows: list[FleetOutlook]


def read_upcoming(
    con: duckdb.DuckDBPyConnection, now: datetime, until: datetime, game_type: str | None = None
) -> list[UpcomingEvent]:
    """Events in progress at ``now`` or starting before ``until``, soonest first."""
    rows = con.sql(
        db.sql("events_upcoming"), params={"now": now, "until": until, "game_type": game_type}
    ).fetchall()
    return [
        UpcomingEvent(name, kind, gt, region, start, end, mult if mult and mult > 0 else None)
        for name, kind, gt, region, start, end, mult in rows
    ]


def event_spans(
    con: duckdb.DuckDBPyConnection,
    game_type: str,
    region: str,
    since: datetime,
    until: datetime,
) -> list[tuple[str, datetime, datetime]]:
    """The events that apply to a series and overlap [since, until], as (label, start, end)
    with the label "kind name" (for :func:`fleetcast.resources.plots.plot_capacity_vs_demand`)."""
    rows = con.sql(
        db.sql("plots_events"),
        params={"game_type": game_type, "region": region, "since": since, "until": until},
    ).fetchall()
    return [(f"{kind} {name}".strip(), start, end) for kind, name, start, end in rows]


def event_spans_over(
    con: duckdb.DuckDBPyConnection, game_type: str, region: str, ts: pl.Series
) -> list[tuple[str, datetime, datetime]]:
    """:func:`event_spans` over the range of a plotted ``ts`` column ([] when it is empty)."""
    ts = ts.drop_nulls()
    if ts.is_empty():
        return []
    first, last = ts.min(), ts.max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        raise TypeError(f"ts must be a datetime column, got {ts.dtype}")
    return event_spans(con, game_type, region, first, last)


def _hours(event: UpcomingEvent, after: datetime) -> list[datetime]:
    """The event's hours (each starting in [start, end)) later than ``after``."""
    first = max(floor_hour(event.start), after + timedelta(hours=1))
    out: list[datetime] = []
    t = first
    while t < event.end and len(out) < MAX_EVENT_HOURS:
        out.append(t)
        t += timedelta(hours=1)
    return out


def _same(p: Projection, event: UpcomingEvent) -> str:
    """How the effect of ``event`` at the projected hour was obtained."""
    mine = [
        a
        for a in p.effects
        if a.event.kind == event.kind
        and a.event.name == event.name
        and a.event.start == event.start
    ]
    return effect_source(mine[0] if mine else None)


def project_event(
    fc: DecisionForecaster | None, spec: FleetSpec, event: UpcomingEvent
) -> FleetOutlook:
    """One event's expected peak for one fleet from its fed forecaster (pure)."""
    seen = 0 if fc is None else fc.observed_hours
    if fc is None or fc.last_hour is None or seen < MIN_NOWCAST_HOURS:
        return FleetOutlook(
            event, spec, how=f"not enough history ({seen} h observed, a week needed)"
        )
    nc = fc.nowcaster()
    best: Projection | None = None
    for t in _hours(event, fc.last_hour):
        p = nc.project(t)
        if p is not None and (best is None or p.yhat > best.yhat):
            best = p
    if best is None:
        return FleetOutlook(event, spec, how="no hour of it left to forecast")
    return FleetOutlook(
        event,
        spec,
        peak=best.yhat,
        peak_at=best.target,
        plan=plan_for_peak(spec, best.yhat),
        how=_same(best, event),
    )


def events_outlook(
    con: duckdb.DuckDBPyConnection, now: datetime, days: int, game_type: str | None = None
) -> EventsOutlook:
    """Every event in progress or starting within ``days`` days, per fleet it applies to."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if game_type is not None:
        check_name("game type", game_type)
    events = read_upcoming(con, now, now + timedelta(days=days), game_type)
    rows: list[FleetOutlook] = []
    if not events:
        return EventsOutlook(now, days, events, rows)
    until = max(e.end for e in events)
    fleets = load_fleets(con, game_type)
    fed: dict[str, DecisionForecaster | None] = {}
    for event in events:
        for spec in fleets:
            if not applies(event.game_type, event.region, spec):
                continue
            if spec.fleet not in fed:
                fed[spec.fleet] = forecaster_at(con, spec, now, events_until=until)[0]
            rows.append(project_event(fed[spec.fleet], spec, event))
    return EventsOutlook(now, days, events, rows)


def read_events_outlook(
    settings: Settings, game_type: str | None = None, days: int = 7, *, now: datetime | None = None
) -> EventsOutlook:
    """:func:`events_outlook` with a read-only connection."""
    with db.session(settings.db_path, read_only=True) as con:
        return events_outlook(con, now or utcnow(), days, game_type)
