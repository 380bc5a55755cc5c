"""Budgets shared by fleets: a scope (every fleet, a region, a list of game types, or just the
fleets planned in one run) and a limit in instances and/or cost per hour.

Pure: nothing here reads a database, a clock or AWS. The caller gathers one :class:`Claim` per
fleet in the scope: the fleets planned in this run (their policy targets) and the other fleets
of the scope, planned by other runs (their group's current capacity and their standing wants,
read from their last recorded decision). :func:`share` then

1. fills the scope in priority order (lower ``priority`` first, then fleet name: tournament
   before ranked before casual with the default priorities): each fleet first keeps its floor
   (its busy instances and its minimum), then gets what it wants while the limit lasts;
2. sets this run's fleets to their share, but only within the room actually free now:
   ``limit - (the other fleets' current capacity) - (this run's fleets held at their share or
   current, whichever is lower)``. A lower-priority fleet of this run can thus be lowered
   (never below its floor) to make room for a higher-priority fleet's want, and a fleet grows
   only into capacity that no other fleet holds, so after this run the scope's total stays
   within the limit whenever the floors fit in it.

What a fleet wanted and did not get is its ``unserved`` count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["all", "region", "game_types", "run"]
SCOPES: tuple[str, ...] = ("all", "region", "game_types")  # "run": the ad-hoc per-run budget
_EPS = 1e-9


@dataclass(frozen=True)
class BudgetRule:
    """One budget. ``scope="run"`` covers only the fleets planned together in one run (the
    ``budget_instances`` / ``budget_cost_per_hour`` settings); no other fleet takes part."""

    name: str
    scope: Scope
    max_instances: int | None = None
    max_cost_per_hour: float | None = None
    region: str | None = None
    game_types: tuple[str, ...] = ()
    reason: str = ""
    # hard: cuts a person's capacity override too; soft (the default): an override holds and
    # the breach is reported (models/precedence.py, step 6)
    hard: bool = False

    def covers(self, game_type: str, region: str) -> bool:
        if self.scope in ("all", "run"):
            return True
        if self.scope == "region":
            return region == self.region
        return game_type in self.game_types

    def describe(self) -> str:
        where = {
            "all": "every fleet",
            "run": "the fleets of this run",
            "region": f"region {self.region}",
            "game_types": "game types " + ", ".join(self.game_types),
        }[self.scope]
        limits = []
        if self.max_instances is not None:
            limits.append(f"{self.max_instances} instances")
        if self.max_cost_per_hour is not None:
            limits.append(f"{self.max_cost_per_hour:g}/h")
        kind = " (hard)" if self.hard else ""
        return f"{where}: {' and '.join(limits) or 'no limit'}{kind}"


def validate_rule(rule: BudgetRule) -> list[str]:
    """Problems with a budget (empty = valid)."""
    errors = []
    if rule.scope not in (*SCOPES, "run"):
        errors.append(f"scope {rule.scope!r}: use one of {', '.join(SCOPES)}")
    if rule.scope == "region" and not rule.region:
        errors.append("a region budget needs a region")
    if rule.scope == "game_types" and not rule.game_types:
        errors.append("a game-types budget needs at least one game type")
    if rule.max_instances is None and rule.max_cost_per_hour is None:
        errors.append("a budget needs a limit: instances or cost per hour")
    if rule.max_instances is not None and rule.max_instances < 0:
        errors.append(f"instances must be >= 0 (got {rule.max_instances})")
    if rule.max_cost_per_hour is not None and not (
        math.isfinite(rule.max_cost_per_hour) and rule.max_cost_per_hour >= 0
    ):
        errors.append(f"cost per hour must be a number >= 0 (got {rule.max_cost_per_hour})")
    return errors


@dataclass(frozen=True)
class Claim:
    """One fleet's part in a budget's scope.

    ``current``: its group's desired capacity now (what it holds); ``want``: what it asks for
    (this run: the policy's target; another run's fleet: its standing decision's want);
    ``floor``: never lowered below (busy instances, minimum); ``in_run``: planned in this run
    (only those get a new target here)."""

    fleet: str
    priority: int
    current: int
    want: int
    floor: int
    cost_per_hour: float = 0.0
    in_run: bool = True


@dataclass(frozen=True)
class Share:
    """A fleet of this run after the budget: its target, what it wanted and did not get, and
    whether it was lowered below its current capacity for higher-priority fleets."""

    fleet: str
    target: int
    unserved: int
    lowered: int  # instances given up below current (0 = not lowered)


@dataclass(frozen=True)
class Usage:
    """The scope after this run: instances and cost held, against the limits."""

    instances: int
    cost_per_hour: float
    fleets: int


class _Left:
    """What is left of both limits; ``take`` grants at most ``n`` instances of one fleet."""

    def __init__(self, rule: BudgetRule, used_n: float, used_c: float) -> None:
        self.n = None if rule.max_instances is None else rule.max_instances - used_n
        self.c = None if rule.max_cost_per_hour is None else rule.max_cost_per_hour - used_c

    def take(self, n: int, cost: float) -> int:
        grant = max(n, 0)
        if self.n is not None:
            grant = min(grant, max(math.floor(self.n + _EPS), 0))
        if self.c is not None and cost > 0:
            grant = min(grant, max(math.floor(self.c / cost + _EPS), 0))
        if self.n is not None:
            self.n -= grant
        if self.c is not None:
            self.c -= grant * cost
        return grant


def _order(claims: Iterable[Claim]) -> list[Claim]:
    return sorted(claims, key=lambda c: (c.priority, c.fleet))


def share(rule: BudgetRule, claims: Sequence[Claim]) -> dict[str, Share]:
    """This run's fleets' targets under ``rule`` (see the module docstring), by fleet."""
    fleets = [c.fleet for c in claims]
    if len(set(fleets)) != len(fleets):
        raise ValueError("a fleet appears twice in a budget's claims")
    if rule.max_instances is None and rule.max_cost_per_hour is None:
        return {
            c.fleet: Share(c.fleet, c.want, 0, 0) for c in claims if c.in_run
        }  # no limit: nothing changes
    # this run's fleets never go above the policy's target, even to reach their floor
    floors = {c.fleet: min(c.floor, c.want) if c.in_run else c.floor for c in claims}
    # 1. priority shares over the whole scope
    left = _Left(
        rule,
        sum(floors.values()),
        sum(floors[c.fleet] * c.cost_per_hour for c in claims),
    )
    grant = {
        c.fleet: floors[c.fleet] + left.take(c.want - floors[c.fleet], c.cost_per_hour)
        for c in _order(claims)
    }
    # 2. this run's fleets: within the room free now
    mine = [c for c in claims if c.in_run]
    others = [c for c in claims if not c.in_run]
    hold = {c.fleet: max(min(grant[c.fleet], c.current), floors[c.fleet]) for c in mine}
    used_n = sum(c.current for c in others) + sum(hold.values())
    used_c = sum(c.current * c.cost_per_hour for c in others) + sum(
        hold[c.fleet] * c.cost_per_hour for c in mine
    )
    room = _Left(rule, used_n, used_c)
    out: dict[str, Share] = {}
    for c in _order(mine):
        target = hold[c.fleet] + room.take(grant[c.fleet] - hold[c.fleet], c.cost_per_hour)
        out[c.fleet] = Share(
            fleet=c.fleet,
            target=target,
            unserved=max(c.want - target, 0),
            lowered=max(c.current - target, 0) if target < c.want else 0,
        )
    return out


def usage(claims: Sequence[Claim], targets: Mapping[str, int]) -> Usage:
    """The scope's total after this run: this run's fleets at ``targets``, the others as they
    are now."""
    n = 0
    cost = 0.0
    for c in claims:
        held = targets.get(c.fleet, c.current) if c.in_run else c.current
        n += held
        cost += held * c.cost_per_hour
    return Usage(instances=n, cost_per_hour=round(cost, 6), fleets=len(claims))


def parse_game_types(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"a,b"`` or an iterable of names -> sorted unique names (not validated here)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return tuple(sorted({p.strip() for p in parts if p and p.strip()}))
