"""Which rule wins: the one order in which the rules that move a fleet's capacity apply.

Pure (no database, clock, Prefect or AWS). ``fleetcast scale`` (:func:`fleetcast.stages.allocate.
plan`) and the replay (:func:`models.replay.replay`) both decide each fleet through
:func:`decide_one` (via :func:`models.decision.decide_fleet`); the live plan then settles the
fleets of the run together through :func:`settle` (budgets, then approval). As Kubernetes' HPA
applies its behaviours in one fixed order (stabilisation, rate limits, min/max), each step below
works on the previous one's result, so a later step wins over an earlier one:

1. **learned settings**: processes per instance learned from telemetry (a person's
   ``processes`` override wins over the learned value) set what one instance serves, before
   anything counts instances (:mod:`fleetcast.stages.processes`, applied to the fleet spec);
2. **recommendation**: the machine's need: the forecast's upper quantile over the lead window,
   the reactive floor of observed demand, then the scale-in guards (stabilisation, tolerance)
   and step limits (:func:`models.policy.decide`);
3. **min / max**: the fleet's bounds, with a person's ``min`` / ``max`` overrides, and the
   max breach behaviour (:func:`models.policy.decide`);
4. **a person's capacity override**: replaces steps 2-3 (only the max still caps it), with its
   reason and expiry (:func:`models.policy.decide`);
5. **event hold**: no scale-in into an event of a kind never seen before; a machine rule, so it
   never moves a person's override (:func:`decide_one`);
6. **budgets**: shared limits over a scope, in priority order (:func:`apply_budgets`). A budget
   never cuts below a fleet's busy instances or its minimum, and a **soft** budget (the
   default) never cuts a person's capacity override either: the override holds and the breach
   is written in the reason of every fleet of the run in the scope, naming the budget and the
   overridden fleets. A budget marked **hard** cuts an override like any other target;
7. **approval**: a change larger than the fleet's approval rule allows waits for a person
   (:func:`models.approval.gate`); a person's capacity override is itself that person's
   decision and is not asked about again;
8. **busy floor**: never below the instances hosting sessions. Every step above already keeps
   it (the policy raises to it, budgets and approval never go below it); it is last so that
   nothing after it can break it.

Why this order: from the least to the most authoritative. The machine's recommendation comes
first and every bound a person or the organisation set then limits it: the fleet's own bounds,
then a person's instruction for this fleet, then the limits shared by many fleets (which yield to
the person unless marked hard, because a person who sets an override for a launch expects it to
hold), then a person's sign-off on large changes. Sessions in progress are never cut by any rule.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from models.approval import ApprovalRule, PendingChange, Proposal, gate
from models.budgets import BudgetRule, Claim, Usage, share, usage
from models.policy import Decision, PolicyInput, decide

ORDER: tuple[str, ...] = (
    "learned settings",
    "recommendation",
    "min/max",
    "capacity override",
    "event hold",
    "budgets",
    "approval",
    "busy floor",
)


# ---------------------------------------------------------------------------------------------
# One fleet (live and replay)


def decide_one(inp: PolicyInput, hold: Callable[[Decision], Decision] | None = None) -> Decision:
    """Steps 2-5 (and 8) for one fleet: the policy (recommendation, min/max, a person's capacity
    override, busy floor), then ``hold``, the event hold, unless a person's override decided."""
    d = decide(inp)
    if hold is None or d.status == "override":
        return d
    held = hold(d)
    return held if held.target >= held.busy else replace(held, target=held.busy)


# ---------------------------------------------------------------------------------------------
# The fleets of one run together (live)


@dataclass(frozen=True)
class BudgetScope:
    """One budget and the fleets of its scope planned by other runs (their claims)."""

    rule: BudgetRule
    peers: tuple[Claim, ...] = ()


def is_override(d: Decision) -> bool:
    """A decision a person's capacity override made."""
    return d.status == "override"


def claim_of_decision(d: Decision, rule: BudgetRule) -> Claim:
    """This run's fleet in a budget's scope. Its floor: busy instances and its minimum; a fleet
    that could not be sized keeps what it has (R4); a person's override keeps its target unless
    the budget is hard."""
    current = d.current if d.current is not None else d.target  # unreadable group: not applied
    floor = max(d.busy, d.min_size, 0)
    if d.status == "fail_static":  # R4: a fleet that could not be sized is never lowered
        floor = max(floor, min(current, d.target))
    if is_override(d) and not rule.hard:
        floor = max(floor, d.target)
    return Claim(
        fleet=d.fleet,
        priority=d.priority,
        current=current,
        want=d.target,
        floor=floor,
        cost_per_hour=d.cost_per_hour,
        in_run=True,
    )


def _over(rule: BudgetRule, used: Usage) -> bool:
    over_n = rule.max_instances is not None and used.instances > rule.max_instances
    over_c = rule.max_cost_per_hour is not None and used.cost_per_hour > rule.max_cost_per_hour
    return over_n or over_c


def _scope_note(rule: BudgetRule, used: Usage) -> str:
    parts = []
    if rule.max_instances is not None:
        parts.append(f"{used.instances} of {rule.max_instances} instances")
    if rule.max_cost_per_hour is not None:
        parts.append(f"{used.cost_per_hour:g} of {rule.max_cost_per_hour:g}/h")
    return f"scope {' and '.join(parts)} over {used.fleets} fleet(s)"


def apply_budgets(
    decisions: Sequence[Decision], scopes: Sequence[BudgetScope], counted: Collection[str]
) -> list[Decision]:
    """Step 6: this run's decisions with every budget applied in turn (each only lowers
    targets, so a later one keeps the earlier ones' totals). ``counted``: the fleets of the run
    that take part (configured in scale mode). What a fleet did not get, and a soft budget
    exceeded because of a person's override, are written in its reason and
    ``inputs["budget"]``."""
    current = {d.fleet: d for d in decisions}
    wanted = {d.fleet: d.target for d in decisions}
    notes: dict[str, list[str]] = {d.fleet: [] for d in decisions}
    detail: dict[str, dict[str, Any]] = {d.fleet: {} for d in decisions}
    for scope in scopes:
        rule = scope.rule
        mine = [
            current[d.fleet]
            for d in decisions
            if d.fleet in counted and rule.covers(d.game_type, d.region)
        ]
        if not mine:
            continue
        claims = [claim_of_decision(d, rule) for d in mine] + list(scope.peers)
        shares = share(rule, claims)
        targets = {f: s.target for f, s in shares.items()}
        used = usage(claims, targets)
        scope_note = _scope_note(rule, used)
        kept = (
            sorted(
                d.fleet
                for d in mine
                if is_override(d) and targets[d.fleet] > max(d.busy, d.min_size)
            )
            if not rule.hard and _over(rule, used)
            else []
        )
        breach = (
            f"budget {rule.name} exceeded ({scope_note}): a person's capacity override holds on "
            f"{', '.join(kept)} (a soft budget does not cut an override; a hard one would)"
            if kept
            else ""
        )
        for d in mine:
            s = shares[d.fleet]
            detail[d.fleet][rule.name] = {
                "scope": rule.describe(),
                "hard": rule.hard,
                "unserved": s.unserved,
                "lowered": s.lowered,
                "total": scope_note,
                "breach": kept,
            }
            if breach:
                notes[d.fleet].append(breach)
            if s.target == d.target:
                continue
            short = d.target - s.target
            why = f"budget {rule.name}: {short} instances not served (priority {d.priority})"
            if s.lowered:
                why += f", lowered by {s.lowered} for higher-priority fleets"
            if is_override(d):
                why += ", below a person's capacity override (the budget is hard)"
            notes[d.fleet].append(f"{why}; {scope_note}; target {d.target} -> {s.target}")
            current[d.fleet] = replace(
                d,
                target=s.target,
                unserved_instances=d.unserved_instances + short,
                status="capped",
            )
    out = []
    for d0 in decisions:
        d = current[d0.fleet]
        inputs = dict(d.inputs)
        if detail[d.fleet]:
            inputs["budget"] = {"wanted": wanted[d.fleet], "budgets": detail[d.fleet]}
        reason = d.reason
        if notes[d.fleet]:
            head, sep, tail = reason.partition(": ")
            # the reason starts with "current -> target (+n)": keep it true after the cap
            if sep and d.current is not None:
                change = d.target - d.current
                head = f"{d.current} -> {d.target} ({change:+d})"
            reason = f"{head}{sep}{tail}; " + "; ".join(notes[d.fleet])
        out.append(replace(d, inputs=inputs, reason=reason))
    return out


def apply_approval(
    decisions: Sequence[Decision],
    rules: Mapping[str, ApprovalRule],
    pending: Mapping[str, PendingChange],
    now: datetime,
    new_id: Callable[[], str],
) -> tuple[list[Decision], list[Proposal]]:
    """Step 7: every decision through its fleet's approval rule (:func:`models.approval.gate`);
    ``new_id`` names each new pending change."""
    out: list[Decision] = []
    proposals: list[Proposal] = []
    for d in decisions:
        g = gate(d, rules.get(d.fleet), pending.get(d.fleet), now=now, new_id=new_id())
        out.append(g.decision)
        if g.proposal is not None:
            proposals.append(g.proposal)
    return out, proposals


def settle(
    decisions: Sequence[Decision],
    *,
    budgets: Sequence[BudgetScope],
    counted: Collection[str],
    rules: Mapping[str, ApprovalRule],
    pending: Mapping[str, PendingChange],
    now: datetime,
    new_id: Callable[[], str],
) -> tuple[list[Decision], list[Proposal]]:
    """Steps 6-8 over the fleets of one run, in that order: budgets, approval, busy floor."""
    budgeted = apply_budgets(decisions, budgets, counted)
    gated, proposals = apply_approval(budgeted, rules, pending, now, new_id)
    floored = [d if d.target >= d.busy else replace(d, target=d.busy) for d in gated]
    return floored, proposals
