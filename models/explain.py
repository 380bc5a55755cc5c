"""How a decision reads: one renderer of a decision's figures and reason for every page.

``fleetcast status``, the HTML report and the Prefect UI artifacts all show decisions; they take
their short reason, full reason, figures with units and the forecaster that decided from here,
so a decision reads the same everywhere. Pure: plain values and records (dicts) in, text out.

A decision's reason (written by :func:`models.policy.decide`) opens with its change, then the
clauses separated by ``"; "``::

    2 -> 17 (+15): 17 instances for 1,650 players (x1.1 margin, 100 players per instance) from
    2024-05-01 11:00 UTC (lead 60 min); forecast: nowcast-weekly; observed demand needs 9
    instances (players)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# a decision's reason opens with its change ("2 -> 60 (+58): "); pages show it in its own column
CHANGE_PREFIX = re.compile(r"^(\?|\d+) -> \d+( \([+-]?\d+\))?: ")
# the unit of each resource's demand (players: the fleet's demand metric)
RESOURCE_UNITS: dict[str, str] = {"cpu": "cores", "memory": "GB", "net": "Mbps"}


def rounded(value: float) -> float | int:
    """A figure an operator reads: whole numbers from 100 up, 3 significant digits below."""
    if value != value:  # NaN stays as it is
        return value
    if abs(value) >= 100:
        return round(value)
    return float(f"{value:.3g}")


def figure(value: Any, unit: str | None = None) -> str | None:
    """``1650.4`` -> ``"1,650"``, ``2.345`` -> ``"2.35"``, with the unit after it."""
    if value is None:
        return None
    shown = rounded(float(value))
    text = f"{shown:,}" if isinstance(shown, int) else f"{shown:g}"
    return f"{text} {unit}" if unit else text


def resource_unit(resource: str, demand_metric: str = "players") -> str:
    """The unit a resource's demand is counted in."""
    return demand_metric if resource == "players" else RESOURCE_UNITS.get(resource, resource)


def instances(n: int) -> str:
    return f"{n} instance" + ("" if n == 1 else "s")


def change(current: Any, target: Any) -> str:
    """``"2 -> 17 (+15)"``; ``"? -> 17"`` when the current capacity is unknown."""
    if current is None:
        return f"? -> {target}"
    delta = int(target) - int(current)
    return f"{current} -> {target}" + (f" ({delta:+d})" if delta else " (no change)")


def full_reason(reason: str | None) -> str:
    """The reason without the change it opens with (pages show the change in its own column)."""
    return CHANGE_PREFIX.sub("", reason or "")


def short_reason(reason: str | None) -> str | None:
    """What decided, in a line: the reason's first clause without its date and lead-time detail,
    and the forecaster when the reason names it ("17 instances for 1,650 players (x1.1 margin,
    100 players per instance) from 11:00 UTC; forecast: nowcast"). Never cut: the page wraps
    it; the full reason has the date."""
    if not reason:
        return reason
    clauses = full_reason(reason).split("; ")
    first = re.sub(r" \(lead [^)]*\)$", "", clauses[0])
    first = re.sub(r" from \d{4}-\d\d-\d\d (\d\d:\d\d UTC)$", r" from \1", first)
    named = [c for c in clauses[1:] if c.startswith("forecast: ")]
    return "; ".join([first, *named[:1]])


def brief_reason(reason: str | None) -> str:
    """The reason for a glance (``fleetcast status``'s narrow column): the first clause without
    its knobs and window ("17 instances for 1,650 players"), the forecaster, then the other
    clauses ("nowcast-weekly; observed demand needs 9 instances (players); ...")."""
    clauses = full_reason(reason).split("; ")
    first = re.sub(r" \([^()]*\) from .* UTC \(lead [^)]*\)$", "", clauses[0])
    rest = [c.removeprefix("forecast: ") for c in clauses[1:]]
    return "; ".join([first, *rest])


def forecaster(record: Mapping[str, Any]) -> str | None:
    """The forecaster that decided (the decision's inputs), e.g. ``nowcast-weekly``; None when
    no forecast was read (an override, a fail-static hold before any forecast)."""
    models = (record.get("inputs") or {}).get("forecast_models") or {}
    names = sorted({str(m) for m in models.values() if m})
    return ", ".join(names) or None


def demand_unit(record: Mapping[str, Any]) -> str | None:
    """The unit of a decision's ``demand_forecast`` (the players resource's required demand:
    the fleet's demand metric)."""
    inputs = record.get("inputs") or {}
    models = inputs.get("forecast_models") or {}
    if len(models) == 1:
        return str(next(iter(models)))
    return "players" if "required_players" in inputs or "players" in models else None


def breaches(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """Soft budgets exceeded because a person's capacity override holds, from the decisions'
    inputs: budget name -> (its total, e.g. "scope 12 of 10 instances over 3 fleet(s)", the
    overridden fleets)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for r in records:
        budgets = ((r.get("inputs") or {}).get("budget") or {}).get("budgets") or {}
        for name, b in budgets.items():
            if b.get("breach"):
                found[name] = (str(b.get("total")), sorted(b["breach"]))
    return found
