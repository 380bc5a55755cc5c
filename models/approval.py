"""Approval rules: which capacity changes wait for a person, and what a run may do meanwhile.

Pure (no database, clock, Prefect or AWS). A rule belongs to a fleet: a change needs approval
when it moves the fleet by more than ``max_change_pct`` % of its capacity, or by more than
``max_change_instances`` instances, or scales it in below ``scale_in_floor``. The changes allowed
without a person form a *band* around a base capacity (:func:`band`).

:func:`gate` applies a rule to one decision of the policy:

- no change waiting for the fleet: a target inside the band passes unchanged; a target outside
  it becomes a :class:`Proposal` (recorded before anyone is asked) and the decision is held at
  the nearest edge of the band;
- a change already waiting: the band is taken around the capacity the waiting change was
  proposed from (not the fleet's capacity now), so repeated runs cannot walk the fleet to the
  held target step by step. A run proposing the same target adds nothing; another target
  outside the band supersedes the waiting change;
- the one exception: scale-out that observed demand needs right now (the policy's reactive
  floor) goes past the band, and the decision says so.

A capacity override (``fleetcast override set --kind capacity``) is itself a person's decision
with a reason and an expiry: it is not asked about again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from models.policy import Decision

RULE_COLUMNS: dict[str, str] = {
    # fleet file column -> ApprovalRule field
    "approval_max_change_pct": "max_change_pct",
    "approval_max_change_instances": "max_change_instances",
    "approval_scale_in_floor": "scale_in_floor",
    "approval_expiry_minutes": "expiry_minutes",
}
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "expired", "superseded")
DEFAULT_EXPIRY_MINUTES = 60
_EPS = 1e-9


@dataclass(frozen=True)
class ApprovalRule:
    fleet: str
    max_change_pct: float | None = None
    max_change_instances: int | None = None
    scale_in_floor: int | None = None
    expiry_minutes: int = DEFAULT_EXPIRY_MINUTES

    def describe(self) -> str:
        parts = []
        if self.max_change_pct is not None:
            parts.append(f"more than {self.max_change_pct:g}%")
        if self.max_change_instances is not None:
            parts.append(f"more than {self.max_change_instances} instances")
        if self.scale_in_floor is not None:
            parts.append(f"scale-in below {self.scale_in_floor}")
        return " or ".join(parts) or "nothing"


def validate_rule(rule: ApprovalRule) -> list[str]:
    """Problems with a rule (empty = valid)."""
    errors = []
    pct = rule.max_change_pct
    if pct is not None and not (math.isfinite(pct) and pct >= 0):
        errors.append(f"max_change_pct must be a number >= 0 (got {pct})")
    if rule.max_change_instances is not None and rule.max_change_instances < 0:
        errors.append(f"max_change_instances must be >= 0 (got {rule.max_change_instances})")
    if rule.scale_in_floor is not None and rule.scale_in_floor < 0:
        errors.append(f"scale_in_floor must be >= 0 (got {rule.scale_in_floor})")
    if rule.expiry_minutes < 1:
        errors.append(f"expiry_minutes must be >= 1 (got {rule.expiry_minutes})")
    if pct is None and rule.max_change_instances is None and rule.scale_in_floor is None:
        errors.append("a rule needs a max change %, a max change in instances or a floor")
    return errors


@dataclass(frozen=True)
class PendingChange:
    """A change waiting for a person (a ``pending_changes`` row)."""

    change_id: str
    fleet: str
    game_type: str
    asg_name: str
    current: int
    proposed: int
    held: int
    reason: str
    asked_by: str
    created_at: datetime
    expires_at: datetime
    status: str = "pending"
    waiting: str | None = None
    waiting_until: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    applied_desired: int | None = None
    outcome: str | None = None
    superseded_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.status == "pending" and now < self.expires_at


@dataclass(frozen=True)
class Proposal:
    """A change this run found needs approval: becomes a pending change when recorded."""

    change_id: str
    fleet: str
    game_type: str
    asg_name: str
    current: int
    proposed: int
    held: int
    reason: str
    expires_at: datetime
    supersedes: str | None = None


def band(rule: ApprovalRule, base: int) -> tuple[int, int]:
    """The lowest and highest capacity reachable from ``base`` without approval."""
    allowed = math.inf
    if rule.max_change_pct is not None:
        allowed = math.floor(max(base, 0) * rule.max_change_pct / 100 + _EPS)
    if rule.max_change_instances is not None:
        allowed = min(allowed, rule.max_change_instances)
    hi = base + allowed if math.isfinite(allowed) else math.inf
    lo = base - allowed if math.isfinite(allowed) else -math.inf
    if rule.scale_in_floor is not None:
        lo = max(lo, min(base, rule.scale_in_floor))
    lo = max(lo, 0)
    return int(lo), (int(hi) if math.isfinite(hi) else 2**31 - 1)


def why_approval(rule: ApprovalRule, base: int, target: int) -> str | None:
    """Why moving from ``base`` to ``target`` needs approval (None = it does not)."""
    lo, hi = band(rule, base)
    change = target - base
    if lo <= target <= hi:
        return None
    if rule.scale_in_floor is not None and target < base and target < rule.scale_in_floor:
        return f"scale-in to {target} below the floor {rule.scale_in_floor}"
    pct = f"{abs(change) / base:.0%} of {base}" if base > 0 else f"from {base}"
    return f"change {change:+d} ({pct}) is {rule.describe()}"


@dataclass(frozen=True)
class Gated:
    decision: Decision
    proposal: Proposal | None = None
    exception: str | None = None  # the observed-demand scale-out past the band, when taken


def gate(
    d: Decision,
    rule: ApprovalRule | None,
    pending: PendingChange | None,
    *,
    now: datetime,
    new_id: str,
) -> Gated:
    """Apply a fleet's approval rule to its decision (see the module docstring)."""
    if pending is not None and not pending.active(now):
        pending = None
    if d.mode != "scale" or d.current is None or (rule is None and pending is None):
        return Gated(d)
    if d.status == "override":  # a person's capacity override (with its reason) is the approval
        return Gated(d)
    if rule is None:  # the rule was removed while a change waits: the change still waits
        rule = ApprovalRule(fleet=d.fleet, max_change_instances=0)
    base = pending.current if pending is not None else d.current
    lo, hi = band(rule, base)
    wants = d.target
    why = why_approval(rule, base, wants)
    if why is None:
        if pending is None:
            return Gated(d)
        note = (
            f"; change {pending.change_id} ({pending.current} -> {pending.proposed}) waits for "
            f"approval: this run stays within {lo}-{hi}"
        )
        return Gated(replace(d, reason=d.reason + note))
    held = min(max(wants, lo), hi)
    held = max(held, d.busy)
    exception = None
    if wants > hi and d.reactive_floor is not None and d.reactive_floor > held:
        held = min(wants, d.reactive_floor)
        exception = (
            f"observed demand needs {d.reactive_floor} now: scaled out past the approval "
            f"band ({lo}-{hi}) to {held} without waiting (the documented exception)"
        )
    proposal: Proposal | None = None
    if pending is not None and pending.proposed == wants:
        change_id = pending.change_id
        text = f"needs approval ({why}): {wants} waits as change {change_id}"
    else:
        change_id = new_id
        proposal = Proposal(
            change_id=new_id,
            fleet=d.fleet,
            game_type=d.game_type,
            asg_name=d.asg_name,
            current=base,
            proposed=wants,
            held=held,
            reason=f"{why}; policy: {d.reason}",
            expires_at=now + timedelta(minutes=rule.expiry_minutes),
            supersedes=pending.change_id if pending is not None else None,
        )
        text = f"needs approval ({why}): {wants} waits as change {new_id}"
        if pending is not None:
            text += f", superseding {pending.change_id} ({pending.proposed})"
    text += f"; {held} meanwhile"
    if exception:
        text += f"; {exception}"
    inputs = dict(d.inputs)
    inputs["approval"] = {
        "change_id": change_id,
        "proposed": wants,
        "held": held,
        "band": [lo, hi],
        "rule": rule.describe(),
        "exception": exception,
    }
    held_decision = replace(
        d,
        target=held,
        status="pending",
        reason=f"{d.reason}; {text}",
        inputs=inputs,
    )
    return Gated(held_decision, proposal, exception)


def recheck_target(
    proposed: int, *, min_size: int, max_size: int, busy: int
) -> tuple[int, list[str]]:
    """An approved target re-checked against the fleet's bounds and busy instances now."""
    notes = []
    target = proposed
    if target > max_size:
        notes.append(f"capped at max {max_size}")
        target = max_size
    if target < min_size:
        notes.append(f"raised to min {min_size}")
        target = min_size
    if target < busy:
        notes.append(f"raised to the {busy} busy instances")
        target = busy
    return target, notes


def with_answers(decisions: Sequence[Decision], changes: Sequence[PendingChange]) -> list[Decision]:
    """This run's decisions as they stand after a person answered the changes it asked about
    (``changes``: their rows now): an approved change shows what was applied, a rejected or
    expired one what was kept; a change still pending leaves its decision as it was. So the
    pages published after the answer say what happened, not what was planned."""
    answered = {c.fleet: c for c in changes if c.status in ("approved", "rejected", "expired")}
    out = []
    for d in decisions:
        c = answered.get(d.fleet)
        if c is None:
            out.append(d)
            continue
        who = f" by {c.decided_by}" if c.decided_by else ""
        note = f" ({c.note})" if c.note else ""
        if c.status == "approved" and c.applied_desired is not None:
            said = f"approved{who}{note}: {c.applied_desired} applied"
            d = replace(
                d,
                target=c.applied_desired,  # what the person approved, as applied
                applied=True,
                applied_desired=c.applied_desired,
                status="approved",
            )
        else:
            kept = d.applied_desired if d.applied else d.current
            said = f"{c.status}{who}{note}: {kept} kept"
            d = replace(d, status=c.status)  # type: ignore[arg-type] # answered statuses
        out.append(replace(d, outcome=said, reason=f"{d.reason}; {said}"))
    return out
