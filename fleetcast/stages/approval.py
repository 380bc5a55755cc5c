"""Approval of large capacity changes: rules per fleet, changes waiting for a person, decisions.

The rule check is step 7 of the one order of the rules (:func:`models.precedence.settle`, called
by :func:`fleetcast.stages.allocate.plan`: every path that applies capacity goes through it, the
flows and ``fleetcast scale``); the rules are stored by :mod:`fleetcast.stages.approval_rules`;
the changes it holds are recorded here by
:func:`record_proposals` (called by ``apply_and_record`` before any AWS call), and decided by
:func:`decide_change`, the one code path behind ``fleetcast approve|reject`` and the Prefect UI
form. Expiry is recorded by :func:`expire_due` (every scale run and every decision call it).
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import duckdb

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.aws import CapacityBackend, GroupNotAllowed, apply_decision
from fleetcast.stages.fleets import load_fleets
from fleetcast.stages.overrides import list_overrides, naive
from fleetcast.stages.records import record_decision
from models.approval import (
    PendingChange,
    Proposal,
    recheck_target,
)
from models.clock import utcnow
from models.names import check_name
from models.policy import Decision, active_overrides, processes_per_instance


class NothingPending(LookupError):
    """No change waits for approval for that fleet (or not the one named)."""


class ApprovalNotApplied(RuntimeError):
    """An approval that could not be applied (group refused or unreadable): still pending."""


# ---------------------------------------------------------------------------------------------
# Rules


# ---------------------------------------------------------------------------------------------
# Pending changes


def _change_from_row(r: Mapping[str, Any]) -> PendingChange:
    return PendingChange(
        change_id=r["change_id"],
        fleet=r["fleet"],
        game_type=r["game_type"],
        asg_name=r["asg_name"],
        current=int(r["current_desired"]),
        proposed=int(r["proposed_desired"]),
        held=int(r["held_desired"]),
        reason=r["reason"],
        asked_by=r["asked_by"],
        created_at=naive(r["created_at"]),  # type: ignore[arg-type]
        expires_at=naive(r["expires_at"]),  # type: ignore[arg-type]
        status=r["status"],
        waiting=r["waiting"],
        waiting_until=naive(r["waiting_until"]),
        decided_at=naive(r["decided_at"]),
        decided_by=r["decided_by"],
        note=r["note"],
        applied_desired=r["applied_desired"],
        outcome=r["outcome"],
        superseded_by=r["superseded_by"],
    )


def list_changes(
    con: duckdb.DuckDBPyConnection, *, fleet: str | None = None, include_decided: bool = False
) -> list[PendingChange]:
    """Changes that waited for approval (newest first): only the pending ones by default."""
    if fleet is not None:
        check_name("fleet", fleet)
    frame = con.sql(db.sql("pending_list"), params={"fleet": fleet, "all": include_decided}).pl()
    return [_change_from_row(r) for r in frame.iter_rows(named=True)]


def pending_by_fleet(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, PendingChange]:
    """The newest change still waiting (not past its expiry) for each fleet."""
    out: dict[str, PendingChange] = {}
    for c in list_changes(con):
        if c.active(now) and c.fleet not in out:
            out[c.fleet] = c
    return out


def expire_due(con: duckdb.DuckDBPyConnection, now: datetime) -> list[str]:
    """Record every pending change past its expiry as expired (nothing applied), each with an
    allocation row saying so. Returns the ids expired now."""
    rows = con.execute(db.sql("pending_expire"), {"now": now}).fetchall()
    for change_id, fleet, game_type, asg, current, proposed, expires_at, waiting in rows:
        _record_outcome(
            con,
            run_id=f"expire-{change_id}",
            now=now,
            fleet=fleet,
            game_type=game_type,
            asg_name=asg,
            current=current,
            target=proposed,
            status="expired",
            reason=(
                f"change {change_id} ({current} -> {proposed}) expired unanswered at "
                f"{expires_at:%Y-%m-%d %H:%M}: nothing changed"
                + (f" (was: {waiting})" if waiting else "")
            ),
            approval={"change_id": change_id, "decision": "expired"},
        )
    return [r[0] for r in rows]


def record_proposals(
    con: duckdb.DuckDBPyConnection, proposals: Sequence[Proposal], asked_by: str, now: datetime
) -> None:
    """Write each proposal as a pending change (superseding the fleet's earlier one), before
    anyone is asked and before any AWS call of the run. One transaction."""
    with db.transaction(con):
        for p in proposals:
            if p.supersedes:
                con.execute(
                    db.sql("pending_decide"),
                    {
                        "change_id": p.supersedes,
                        "status": "superseded",
                        "now": now,
                        "decided_by": asked_by,
                        "note": None,
                        "applied_desired": None,
                        "outcome": f"superseded by {p.change_id} ({p.proposed}): nothing changed",
                        "superseded_by": p.change_id,
                    },
                ).fetchall()
            con.execute(
                db.sql("pending_insert"),
                {
                    "change_id": p.change_id,
                    "fleet": p.fleet,
                    "game_type": p.game_type,
                    "asg_name": p.asg_name,
                    "current_desired": p.current,
                    "proposed_desired": p.proposed,
                    "held_desired": p.held,
                    "reason": p.reason,
                    "asked_by": asked_by,
                    "created_at": now,
                    "expires_at": p.expires_at,
                },
            ).fetchall()


def set_waiting(
    settings: Settings, change_ids: Collection[str], text: str, until: datetime
) -> None:
    """Say on each pending change who waits on it (a paused run) and until when."""
    with db.session(settings.db_path) as con:
        for cid in change_ids:
            con.execute(
                db.sql("pending_note"),
                {"change_id": cid, "waiting": text, "until": until, "outcome": None},
            ).fetchall()


# ---------------------------------------------------------------------------------------------
# Decisions (the CLI and the UI form)


@dataclass(frozen=True)
class ChangeDecision:
    change: PendingChange  # as it is after the decision
    decision: Decision | None  # the allocation recorded (approve), None for a refusal


def default_decider() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _record_outcome(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    now: datetime,
    fleet: str,
    game_type: str,
    asg_name: str,
    current: int | None,
    target: int,
    status: str,
    reason: str,
    approval: dict[str, Any],
    region: str = "",
    applied: bool = False,
    applied_desired: int | None = None,
    outcome: str = "nothing changed",
) -> None:
    """An allocation row for a decision on a pending change (rejected, expired): nothing sent."""
    if not region:
        found = con.sql("select region from fleets where fleet = ?", params=[fleet]).fetchall()
        region = found[0][0] if found else "global"
    con.execute(
        db.sql("alloc_insert"),
        {
            "decision_id": uuid.uuid4().hex,
            "run_id": run_id,
            "decided_at": now,
            "fleet": fleet,
            "game_type": game_type,
            "region": region,
            "asg_name": asg_name,
            "mode": "scale",
            "current_desired": current,
            "target_desired": target,
            "applied_desired": applied_desired,
            "applied": applied,
            "processes_per_instance": 1,
            "demand_forecast": None,
            "inputs": json.dumps({"approval": approval}, default=str, sort_keys=True),
            "reason": reason,
            "recommended": None,
            "status": status,
            "new_max_size": None,
            "unserved_instances": None,
            "outcome": outcome,
        },
    ).fetchall()


def _find(
    con: duckdb.DuckDBPyConnection, fleet: str, change_id: str | None, now: datetime
) -> PendingChange:
    changes = list_changes(con, fleet=fleet, include_decided=True)
    if change_id is not None:
        match = [c for c in changes if c.change_id == change_id]
        if not match:
            raise NothingPending(f"no change {change_id} for fleet {fleet}")
        c = match[0]
        if c.status != "pending":
            by = f" by {c.superseded_by}" if c.superseded_by else ""
            raise NothingPending(f"change {change_id} for {fleet} is {c.status}{by}, not pending")
        return c
    pending = [c for c in changes if c.status == "pending"]
    if not pending:
        last = f" (last: {changes[0].change_id} {changes[0].status})" if changes else ""
        raise NothingPending(f"no change waits for approval for fleet {fleet}{last}")
    return pending[0]


def decide_change(
    settings: Settings,
    *,
    fleet: str,
    approve: bool,
    note: str = "",
    decided_by: str | None = None,
    change_id: str | None = None,
    backend: CapacityBackend,
    now: datetime | None = None,
) -> ChangeDecision:
    """Approve (apply) or reject (change nothing) the change waiting for ``fleet``.

    ``backend``: the command's or run's capacity backend (``config.capacity_backend``).
    Approve re-reads the group and sends the recorded target re-checked against the fleet's
    min/max (with overrides in force) and its busy instances, through the same allow-list and
    apply code as a scale run; the allocation row says ``approved`` with the note. A change past
    its expiry is recorded as expired and refused here (:class:`NothingPending`). When the
    approval cannot be applied (group refused or unreadable) the change stays pending, with the
    outcome recorded, and :class:`ApprovalNotApplied` is raised.
    """
    check_name("fleet", fleet)
    now = now or utcnow()
    decided_by = decided_by or default_decider()
    note = (note or "").strip()
    with db.session(settings.db_path) as con:
        expire_due(con, now)
        change = _find(con, fleet, change_id, now)
        if not approve:
            con.execute(
                db.sql("pending_decide"),
                {
                    "change_id": change.change_id,
                    "status": "rejected",
                    "now": now,
                    "decided_by": decided_by,
                    "note": note,
                    "applied_desired": None,
                    "outcome": "rejected: nothing changed",
                    "superseded_by": None,
                },
            ).fetchall()
            _record_outcome(
                con,
                run_id=f"reject-{change.change_id}",
                now=now,
                fleet=fleet,
                game_type=change.game_type,
                asg_name=change.asg_name,
                current=None,
                target=change.proposed,
                status="rejected",
                reason=(
                    f"change {change.change_id} ({change.current} -> {change.proposed}) "
                    f"rejected by {decided_by}" + (f": {note}" if note else "")
                ),
                approval={"change_id": change.change_id, "decision": "rejected", "note": note},
            )
            return ChangeDecision(_find_any(con, change.change_id), None)
        specs = {s.fleet: s for s in load_fleets(con)}
        spec = specs.get(fleet)
        if spec is None:
            raise NothingPending(f"fleet {fleet} is no longer configured")
        ovr = active_overrides(list_overrides(con, now), fleet, now)
    eff_min = int(ovr["min"].value) if "min" in ovr else spec.min_size
    eff_max = int(ovr["max"].value) if "max" in ovr else spec.max_size
    try:
        state = backend.describe(change.asg_name)
    except Exception as exc:
        return _not_applied(settings, change, f"could not read group {change.asg_name}: {exc}")
    live = {i.instance_id for i in state.instances if i.lifecycle_state != "Terminating"}
    busy = len(set(state.busy_ids) & live)
    target, notes = recheck_target(
        change.proposed, min_size=min(eff_min, eff_max), max_size=eff_max, busy=busy
    )
    reason = (
        f"{state.desired} -> {target}: change {change.change_id} ({change.current} -> "
        f"{change.proposed}) approved by {decided_by}" + (f": {note}" if note else "")
    )
    if notes:
        reason += "; re-checked now: " + ", ".join(notes)
    d = Decision(
        fleet=fleet,
        game_type=spec.game_type,
        region=spec.region,
        asg_name=change.asg_name,
        mode="scale",
        decided_at=now,
        current=state.desired,
        target=target,
        recommended=change.proposed,
        processes_per_instance=processes_per_instance(spec),
        status="approved",
        reason=reason,
        busy=busy,
        min_size=eff_min,
        max_size=eff_max,
        inputs={
            "approval": {
                "change_id": change.change_id,
                "decision": "approved",
                "note": note,
                "decided_by": decided_by,
                "recorded_current": change.current,
                "proposed": change.proposed,
            }
        },
    )
    try:
        result = apply_decision(
            backend,
            d,
            state,
            allowed_groups=settings.allowed_groups,
            allowed_tag=settings.allowed_tag,
        )
    except GroupNotAllowed as exc:
        return _not_applied(settings, change, f"refused: {exc}")
    except Exception as exc:
        return _not_applied(settings, change, f"error: {type(exc).__name__}: {exc}")
    d = replace(
        d, applied=result.applied, applied_desired=result.applied_desired, outcome=result.outcome
    )
    with db.session(settings.db_path) as con:
        con.execute(
            db.sql("pending_decide"),
            {
                "change_id": change.change_id,
                "status": "approved",
                "now": now,
                "decided_by": decided_by,
                "note": note,
                "applied_desired": result.applied_desired
                if result.applied_desired is not None
                else state.desired,
                "outcome": result.outcome,
                "superseded_by": None,
            },
        ).fetchall()
        record_decision(con, f"approve-{change.change_id}", d, result, state)
        return ChangeDecision(_find_any(con, change.change_id), d)


def _find_any(con: duckdb.DuckDBPyConnection, change_id: str) -> PendingChange:
    rows = con.sql("select * from pending_changes where change_id = ?", params=[change_id]).pl()
    return _change_from_row(rows.row(0, named=True))


def _not_applied(settings: Settings, change: PendingChange, why: str) -> ChangeDecision:
    with db.session(settings.db_path) as con:
        con.execute(
            db.sql("pending_note"),
            {
                "change_id": change.change_id,
                "waiting": None,
                "until": None,
                "outcome": f"approval not applied ({why}); still pending",
            },
        ).fetchall()
    raise ApprovalNotApplied(
        f"change {change.change_id} for {change.fleet} not applied: {why}; it is still pending"
    )


def describe_change(c: PendingChange, now: datetime) -> str:
    """One line: fleet, current -> proposed, status, expiry, who waits, the decision."""
    text = f"{c.fleet}: {c.current} -> {c.proposed} [{c.change_id}] {c.status}"
    if c.status == "pending":
        if c.expires_at <= now:
            text += f", past its expiry {c.expires_at:%Y-%m-%d %H:%M} (expired at the next run)"
        else:
            text += f" until {c.expires_at:%Y-%m-%d %H:%M} UTC ({c.held} meanwhile)"
        text += f"; asked by {c.asked_by}"
        if c.waiting:
            text += f"; {c.waiting}"
            gone = c.waiting_until is not None and c.waiting_until < now
            if gone and "stopped waiting" not in c.waiting:
                text += " (that time has passed unanswered: the run is no longer waiting)"
        if c.outcome:
            text += f"; {c.outcome}"
    else:
        text += f" by {c.decided_by} at {c.decided_at:%Y-%m-%d %H:%M}" if c.decided_at else ""
        if c.note:
            text += f": {c.note}"
        if c.outcome:
            text += f" ({c.outcome})"
    return text


def run_stopped_waiting(settings: Settings, flow_run: str, why: str) -> str:
    """Record on the changes a flow run was waiting on that it stopped waiting (``why``: no
    answer, the run ended Crashed/Cancelled); they stay pending until their expiry."""
    text = (
        f"stopped waiting at {utcnow():%Y-%m-%d %H:%M:%S} UTC ({why}); still "
        "pending until its expiry: fleetcast approve|reject --fleet F"
    )
    with db.session(settings.db_path) as con:
        con.execute(db.sql("pending_run_stopped"), {"text": text, "flow_run": flow_run}).fetchall()
    return text
