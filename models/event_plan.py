"""What an upcoming event asks of a fleet: the instances planned for its expected peak, their
cost, and a line saying where the event's effect came from (``fleetcast events``).

The planned instances follow the capacity rule for one demand value: ``ceil(peak x (1 +
safety_margin) / capacity_players)``, then the fleet's min and max (a max that binds is said).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.events import EffectAt, EventConfig
from models.policy import FleetSpec, instances_for


@dataclass(frozen=True)
class PeakPlan:
    """The instances planned for one expected peak."""

    needed: int  # before min/max
    instances: int  # within [min_size, max_size]
    max_binds: bool  # needed > max_size: the fleet is capped below the peak's need
    cost_per_hour: float | None  # instances x cost_per_hour; None when the fleet has no cost


def applies(game_type: str | None, region: str | None, spec: FleetSpec) -> bool:
    """An event row (game type / region, None = all) applies to this fleet."""
    return (game_type is None or game_type == spec.game_type) and (
        region is None or region == spec.region
    )


def plan_for_peak(spec: FleetSpec, peak: float) -> PeakPlan:
    """The instances for ``peak`` (demand units) with the fleet's margin, clipped to min/max."""
    if not math.isfinite(peak) or peak < 0:
        raise ValueError(f"peak must be a finite demand >= 0, got {peak}")
    if spec.capacity_players <= 0:
        raise ValueError(f"fleet {spec.fleet}: capacity_players must be > 0")
    needed = instances_for(peak * (1 + spec.safety_margin), spec.capacity_players)
    instances = min(max(needed, spec.min_size), spec.max_size)
    cost = instances * spec.cost_per_hour if spec.cost_per_hour else None
    return PeakPlan(needed, instances, needed > spec.max_size, cost)


def _plural(kind: str, n: int) -> str:
    return f"{n} earlier {kind}{'' if n == 1 else 's'}"


def effect_source(effect: EffectAt | None) -> str:
    """How an event's effect at its peak hour was obtained, for people."""
    if effect is None:
        return "no effect known at its peak hour"
    e = effect.event
    if effect.source == "unknown":
        return (
            f"never seen: no effect known, no scale-in in its first {EventConfig().unknown_hours} h"
        )
    if effect.source == "weekly":
        return "recurs weekly at this hour: in the hour-of-week shape (peak as forecast)"
    if effect.source == "expected":
        seen = f" (only {_plural(e.kind, effect.earlier)})" if effect.earlier else ""
        low = ": below 1, no scale-in from it" if effect.value < 0 else ""
        return f"the row's expected multiplier x{math.exp(effect.value):.2f}{seen}{low}"
    if effect.source == "none" or effect.value == 0.0:
        return f"learned from {_plural(e.kind, effect.earlier)}: no effect at its peak hour"
    return (
        f"learned from {_plural(e.kind, effect.earlier)}: x{math.exp(effect.value):.2f} "
        "at its peak hour"
    )
