"""Budgets as data: the ``budgets`` table (``fleetcast budget set|list|clear``) and what the
budget step of every plan reads (:func:`budget_scopes`, called by
``fleetcast.stages.allocate.plan``; the step itself is :func:`models.precedence.apply_budgets`).

A run plans some fleets (one game type's, or all). For each budget whose scope covers one of
them, the step gathers the whole scope: this run's decisions, and every other fleet of the scope
that is in ``scale`` mode, with its group's current capacity (read from the capacity backend)
and its standing decision (its newest recorded decision: what it wanted before any budget).
:func:`models.budgets.share` then gives this run's fleets their part in priority order, so a
run for game type A counts B's and C's capacity and reserves what higher-priority fleets want.
Fleets configured ``forecast_only`` never count and are never capped.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from fleetcast.resources import db
from fleetcast.resources.aws import CapacityBackend, GroupState
from fleetcast.stages.fleets import load_fleets
from models.budgets import SCOPES, BudgetRule, Claim, parse_game_types, validate_rule
from models.names import check_name
from models.policy import Budget, Decision, FleetSpec
from models.precedence import BudgetScope

RUN_BUDGET = "run"  # the ad-hoc budget of the budget_* settings / scale --budget-* options


class BudgetError(ValueError):
    """A budget that cannot be stored; the message says why."""


# ---------------------------------------------------------------------------------------------
# The table


def _rule_from_row(row: Mapping[str, Any]) -> BudgetRule:
    return BudgetRule(
        name=row["name"],
        scope=row["scope"],
        region=row["region"],
        game_types=parse_game_types(row["game_types"] or ""),
        max_instances=row["max_instances"],
        max_cost_per_hour=row["max_cost_per_hour"],
        reason=row["reason"] or "",
        hard=bool(row.get("hard") or False),
    )


def list_budgets(con: duckdb.DuckDBPyConnection) -> list[BudgetRule]:
    frame = con.sql(db.sql("budget_list")).pl()
    return [_rule_from_row(r) for r in frame.iter_rows(named=True)]


def set_budget(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    scope: str,
    region: str | None = None,
    game_types: Sequence[str] | str = (),
    max_instances: int | None = None,
    max_cost_per_hour: float | None = None,
    reason: str,
    now: datetime,
    hard: bool = False,
) -> BudgetRule:
    """Add or replace the budget ``name``. Names are checked before they reach SQL."""
    check_name("budget name", name)
    if name == RUN_BUDGET:
        raise BudgetError(f"{RUN_BUDGET!r} is reserved for the per-run budget settings")
    if scope not in SCOPES:
        raise BudgetError(f"scope {scope!r}: use one of {', '.join(SCOPES)}")
    types = parse_game_types(game_types)
    for g in types:
        check_name("game type", g)
    if region is not None:
        check_name("region", region)
    if scope != "region" and region is not None:
        raise BudgetError("--region is only for a region budget")
    if scope != "game_types" and types:
        raise BudgetError("--game-types is only for a game-types budget")
    if not reason or not reason.strip():
        raise BudgetError("a budget needs a reason (--reason)")
    rule = BudgetRule(
        name=name,
        scope=scope,  # type: ignore[arg-type]
        region=region,
        game_types=types,
        max_instances=max_instances,
        max_cost_per_hour=max_cost_per_hour,
        reason=reason.strip(),
        hard=hard,
    )
    errors = validate_rule(rule)
    if errors:
        raise BudgetError(f"budget {name!r}: " + "; ".join(errors))
    con.execute(
        db.sql("budget_upsert"),
        {
            "name": name,
            "scope": scope,
            "region": region,
            "game_types": ",".join(types) or None,
            "max_instances": max_instances,
            "max_cost_per_hour": max_cost_per_hour,
            "reason": rule.reason,
            "hard": hard,
            "now": now,
        },
    ).fetchall()
    return rule


def clear_budget(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Remove the budget ``name``; False when there was none."""
    check_name("budget name", name)
    return bool(con.execute(db.sql("budget_clear"), {"name": name}).fetchall())


def run_rule(budget: Budget | None) -> BudgetRule | None:
    """The per-run budget (settings ``budget_instances`` / ``budget_cost_per_hour``, or the
    ``budget`` argument of ``plan``) as a rule over this run's fleets only."""
    if budget is None or (budget.max_instances is None and budget.max_cost_per_hour is None):
        return None
    return BudgetRule(
        name=RUN_BUDGET,
        scope="run",
        max_instances=budget.max_instances,
        max_cost_per_hour=budget.max_cost_per_hour,
        reason="per-run budget setting",
        hard=budget.hard,
    )


# ---------------------------------------------------------------------------------------------
# The budget step of a plan


@dataclass(frozen=True)
class _Peer:
    spec: FleetSpec
    state: GroupState | None
    standing: Mapping[str, Any] | None


def _floor(busy: int, min_size: int) -> int:
    return max(busy, min_size, 0)


def _claim_of_peer(p: _Peer) -> Claim:
    spec = p.spec
    standing = p.standing or {}
    target = standing.get("target")
    if p.state is not None:
        current = p.state.desired
        busy = len(p.state.busy_ids)
        min_size = p.state.min_size
    else:  # unreadable group: count what it last decided (or its minimum)
        current = int(target) if target is not None else spec.min_size
        busy, min_size = 0, spec.min_size
    wanted = standing.get("wanted")
    want = int(wanted) if wanted is not None else current
    return Claim(
        fleet=spec.fleet,
        priority=spec.priority,
        current=int(current),
        want=want,
        floor=_floor(busy, min_size),
        cost_per_hour=spec.cost_per_hour,
        in_run=False,
    )


def budget_scopes(
    con: duckdb.DuckDBPyConnection,
    backend: CapacityBackend,
    decisions: Sequence[Decision],
    *,
    configured_modes: Mapping[str, str],
    now: datetime,
    extra: BudgetRule | None = None,
    standing_max_age: timedelta = timedelta(hours=6),
    known_states: Mapping[str, GroupState] | None = None,
) -> tuple[list[BudgetScope], set[str]]:
    """Every budget that may cover this run's decisions (stored budgets by name, then
    ``extra``, the per-run one), each with the other fleets of its scope as claims, and the
    fleets of the run that take part. ``configured_modes``: every fleet's mode as configured
    (a fleet configured ``forecast_only`` takes no part, even in a run that forces shadow
    mode). The budgets are applied by :func:`models.precedence.settle` (step 6 of the order)."""
    rules = list_budgets(con)
    if extra is not None:
        rules.append(extra)
    counted = {d.fleet for d in decisions if configured_modes.get(d.fleet) == "scale"}
    if not rules or not counted:
        return [], counted
    in_run = {d.fleet for d in decisions}
    all_fleets = [f for f in load_fleets(con) if f.mode == "scale" and f.fleet not in in_run]
    peers_in: dict[str, list[FleetSpec]] = {
        r.name: []
        if r.scope == "run"
        else [f for f in all_fleets if r.covers(f.game_type, f.region)]
        for r in rules
    }
    peer_specs = {f.fleet: f for fs in peers_in.values() for f in fs}
    states = dict(known_states or {})
    missing = [f.asg_name for f in peer_specs.values() if f.asg_name not in states]
    if missing:
        try:
            states.update(backend.describe_many(missing))
        except Exception:  # noqa: S110 - counted from their standing decisions (conservative)
            pass
    standing: dict[str, dict[str, Any]] = {}
    if peer_specs:
        frame = con.sql(
            db.sql("budget_standing"), params={"since": now - standing_max_age, "now": now}
        ).pl()
        standing = {r["fleet"]: r for r in frame.iter_rows(named=True)}
    peers = {
        name: _Peer(spec, states.get(spec.asg_name), standing.get(name))
        for name, spec in peer_specs.items()
    }
    scopes = [
        BudgetScope(rule, tuple(_claim_of_peer(peers[f.fleet]) for f in peers_in[rule.name]))
        for rule in rules
    ]
    return scopes, counted


def scope_rows(
    con: duckdb.DuckDBPyConnection, rules: Collection[BudgetRule]
) -> list[dict[str, Any]]:
    """Per budget: its scope, limits, the scale-mode fleets in it, and the sums of their newest
    decisions' targets and unserved instances (``fleetcast budget list``)."""
    fleets = [f for f in load_fleets(con) if f.mode == "scale"]
    last = {
        r[0]: (int(r[1]), int(r[2] or 0))
        for r in con.sql(db.sql("budget_last_decisions")).fetchall()
    }
    rows = []
    for rule in rules:
        members = [f for f in fleets if rule.covers(f.game_type, f.region)]
        held = [last[f.fleet][0] for f in members if f.fleet in last]
        cost = sum(last[f.fleet][0] * f.cost_per_hour for f in members if f.fleet in last)
        rows.append(
            {
                "name": rule.name,
                "scope": rule.describe(),
                "fleets": len(members),
                "last_targets": sum(held),
                "last_cost_per_hour": None if not math.isfinite(cost) else round(cost, 3),
                "unserved": sum(last[f.fleet][1] for f in members if f.fleet in last),
                "reason": rule.reason,
            }
        )
    return rows
