"""A human in the loop: the changes a fleet's approval rule held wait for a person.

By the time a flow asks, the changes are already recorded as pending (``pending_changes``,
written by the apply step before any AWS call), the rest of the plan is applied, and the run
lock is released: while the run is paused it holds no DuckDB file, no run lock and no
concurrency slot, so other runs go on (and keep the held fleets within their band).

The flow run pauses with an :class:`ApprovalAnswer` form. The answer goes through
:func:`fleetcast.stages.approval.decide_change`, the same code as ``fleetcast approve|reject``,
with the note stored. Without an answer the run stops waiting and the changes stay pending
until their expiry (``fleetcast approve|reject`` still decide them); expiry applies nothing.
Called from a flow (pausing is a flow-run action), not a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from fleetcast.config import Settings, capacity_backend
from fleetcast.resources import db
from fleetcast.resources.locking import run_lock
from fleetcast.stages.approval import (
    ApprovalNotApplied,
    NothingPending,
    decide_change,
    list_changes,
    run_stopped_waiting,
    set_waiting,
)
from models.approval import PendingChange, with_answers
from models.clock import utcnow
from models.policy import Decision


class ApprovalAnswer(RunInput):
    """The approval form. There is no default answer: the form cannot be submitted without a
    choice, and leaving it unanswered applies nothing (the changes expire)."""

    decision: Literal["approve", "reject"] = Field(
        description="approve: apply the changes listed (each re-checked against its group "
        "now); reject: record the rejection and change nothing"
    )
    note: str = Field(default="", description="Why (stored with the decision)")


@task(name="read-pending-changes")
def read_pending(settings: Settings, game_type: str | None) -> list[PendingChange]:
    """The changes waiting for approval for the fleets in scope (newest first)."""
    with db.session(settings.db_path) as con:
        fleets = {
            r[0]
            for r in con.sql(
                "select fleet from fleets where cast($g as varchar) is null or game_type = $g",
                params={"g": game_type},
            ).fetchall()
        }
        return [c for c in list_changes(con) if c.fleet in fleets]


@task(name="read-answers", cache_policy=NO_CACHE)
def decisions_after_answers(
    settings: Settings, decisions: Sequence[Decision], change_ids: Sequence[str]
) -> list[Decision]:
    """This run's decisions as they stand after the answers to the changes it asked about
    (approved: what was applied; rejected or expired: what was kept)."""
    asked = set(change_ids)
    with db.session(settings.db_path) as con:
        changes = [c for c in list_changes(con, include_decided=True) if c.change_id in asked]
    return with_answers(decisions, changes)


def describe_form(changes: Sequence[PendingChange], until: datetime) -> str:
    lines = [
        "**Capacity changes wait for your approval.** Choose *approve* (apply them) or "
        "*reject* (change nothing).",
        "",
        f"If nobody answers, this run stops waiting at {until:%Y-%m-%d %H:%M} UTC and **nothing "
        "is applied**; each change stays pending until its expiry (below) for "
        "`fleetcast approve|reject --fleet F`, then expires (nothing applied).",
        "",
        "| fleet | current -> proposed | meanwhile | reason | expires (UTC) |",
        "|---|---|---|---|---|",
    ]
    for c in changes:
        lines.append(
            f"| {c.fleet} | {c.current} -> {c.proposed} | {c.held} | {c.reason} "
            f"| {c.expires_at:%Y-%m-%d %H:%M} |"
        )
    return "\n".join(lines)


def _flow_run() -> tuple[str, str]:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return "local", "local"
    return ctx.flow_run.name, str(ctx.flow_run.id)


def _take_back_the_run() -> None:
    """Nobody answered: move the paused run back to Running so it can finish (record that it
    stopped waiting) instead of failing as "paused and never resumed"."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(ctx.flow_run.id, Running(), force=True)


def ask_for_approval(
    settings: Settings,
    changes: Sequence[PendingChange],
    timeout_minutes: float,
    *,
    lock_wait_minutes: float = 10,
    poll_seconds: int = 10,
) -> list[str]:
    """Pause the flow run for an answer about ``changes`` (recorded pending changes), then
    approve or reject them through the CLI's code. Returns notes for the run summary."""
    if not changes:
        return []
    logger = get_run_logger()
    now = utcnow()
    until = min([now + timedelta(minutes=timeout_minutes), *(c.expires_at for c in changes)])
    seconds = max(1, round((until - now).total_seconds()))
    name, run_id = _flow_run()
    ids = [c.change_id for c in changes]
    fleets = ", ".join(c.fleet for c in changes)
    set_waiting(
        settings,
        ids,
        f"flow run {name} [{run_id}] waits for an answer in the Prefect UI until "
        f"{until:%Y-%m-%d %H:%M:%S} UTC",
        until,
    )
    logger.info("waiting up to %d s for approval of %s", seconds, fleets)
    try:
        answer: Any = pause_flow_run(
            wait_for_input=ApprovalAnswer.with_initial_data(
                description=describe_form(changes, until)
            ),
            timeout=seconds,
            poll_interval=max(1, min(poll_seconds, seconds)),
        )
    except FlowPauseTimeout:
        _take_back_the_run()
        text = run_stopped_waiting(settings, run_id, "no answer")
        logger.warning("%s: %s", text, fleets)
        return [f"{fleets}: {text}"]
    approve = answer.decision == "approve"
    notes = []
    backend = capacity_backend(settings)
    with run_lock(settings, wait_seconds=lock_wait_minutes * 60, label="approval"):
        for c in changes:
            try:
                done = decide_change(
                    settings,
                    fleet=c.fleet,
                    change_id=c.change_id,
                    approve=approve,
                    note=answer.note,
                    decided_by=f"Prefect UI (flow run {name})",
                    backend=backend,
                )
                notes.append(
                    f"{c.fleet}: change {c.change_id} {done.change.status}"
                    + (f" ({done.change.outcome})" if done.change.outcome else "")
                )
            except (NothingPending, ApprovalNotApplied) as exc:
                notes.append(f"{c.fleet}: {exc}")
    for n in notes:
        logger.info("%s", n)
    return notes


def mark_run_ended(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (crashed, cancelled, failed): a run that ends while it waits for an answer
    says so on the pending changes (they stay pending until their expiry)."""
    from fleetcast.stages.orchestration import settings_for

    try:
        from types import SimpleNamespace

        # the run's storage parameters (db, aws_endpoint), as the flow read them
        settings = settings_for(SimpleNamespace(**(flow_run.parameters.get("params") or {})))
        run_stopped_waiting(settings, str(flow_run.id), f"the run ended {state.name}")
    except Exception:  # a hook never raises; the record still says who was waiting
        return
