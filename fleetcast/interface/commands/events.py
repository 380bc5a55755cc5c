"""``fleetcast events``: upcoming events and, per fleet they apply to, the expected peak, the
instances planned for it and their cost, and where the event's effect comes from."""

from __future__ import annotations

import argparse
from datetime import datetime

from fleetcast.config import Settings

HELP = (
    "list the events in progress or starting within the next days and, per fleet they apply "
    "to, the expected peak demand, the instances planned for it and their cost per hour"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", help="only this game type (default: all)")
    parser.add_argument(
        "--days", type=int, default=7, help="events starting within this many days (default 7)"
    )


def _when(start: datetime, end: datetime) -> str:
    same_day = start.date() == end.date()
    return (
        f"{start:%Y-%m-%d %H:%M} .. {end:%H:%M}"
        if same_day
        else (f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}")
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from fleetcast.stages.events import read_events_outlook

    if args.days < 1:
        raise ValueError(f"--days must be at least 1 (got {args.days})")
    outlook = read_events_outlook(settings, args.game_type, args.days)
    console = Console()
    if not console.is_terminal:  # piped or captured: no wrapping
        console = Console(width=240)
    if not outlook.events:
        console.print(f"no events in the next {args.days} days", markup=False)
        return 0
    table = Table(
        title=(
            f"events in progress or starting in the next {args.days} days "
            f"({outlook.now:%Y-%m-%d %H:%M} UTC)"
        )
    )
    for name in (
        "event",
        "when (UTC)",
        "fleet",
        "expected peak",
        "instances planned",
        "cost",
        "effect",
    ):
        table.add_column(name, overflow="fold", max_width=60 if name == "effect" else None)
    shown = set()
    for r in outlook.rows:
        e = r.event
        key = (e.kind, e.name, e.start)
        first = key not in shown
        shown.add(key)
        scope = f"{e.game_type or 'all games'}/{e.region or 'all regions'}"
        label = f"{e.kind} {e.name} ({scope})" if first else ""
        when = _when(e.start, e.end) if first else ""
        metric = r.fleet.demand_metric
        if r.peak is None or r.plan is None or r.peak_at is None:
            table.add_row(label, when, r.fleet.fleet, "-", "-", "-", r.how)
            continue
        peak = f"{r.peak:,.0f} {metric} at {r.peak_at:%m-%d %H:%M}"
        p = r.plan
        inst = f"{p.instances} instances"
        if p.max_binds:
            inst += f" (max {r.fleet.max_size} binds: {p.needed} needed)"
        elif p.instances > p.needed:
            inst += f" (min {r.fleet.min_size})"
        cost = "-" if p.cost_per_hour is None else f"{p.cost_per_hour:,.2f} $/h"
        table.add_row(label, when, r.fleet.fleet, peak, inst, cost, r.how)
    console.print(table)
    without = [e for e in outlook.events if (e.kind, e.name, e.start) not in shown]
    for e in without:
        console.print(
            f"{e.kind} {e.name} {_when(e.start, e.end)} UTC: applies to no fleet "
            f"({e.game_type or 'all games'}/{e.region or 'all regions'})",
            markup=False,
        )
    console.print(
        "peak: the highest hourly forecast during the event (UTC), in the fleet's demand metric; "
        "instances: ceil(peak x (1 + safety margin) / players per instance) within min/max; "
        "cost: instances x cost_per_hour",
        markup=False,
    )
    return 0
