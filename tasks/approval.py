"""A human in the loop: large capacity changes wait for approval in the Prefect UI.

The flow run pauses and asks for a :class:`ScaleApproval` form; without an answer before the
timeout (or with ``approve`` unticked) the large changes are recorded but not applied.
Called from a flow (pausing is a flow-run action), not a task.
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from fleetcast.stages.allocate import Plan, hold
from models.policy import needs_approval


class ScaleApproval(RunInput):
    approve: bool = Field(default=False, description="Apply the large capacity changes listed")
    note: str = Field(default="", description="Why (kept with the decisions)")


def _describe(plan: Plan, fleets: list[str], pct: float) -> str:
    lines = [
        f"**Capacity changes above {pct:g}% wait for approval.**",
        "",
        "| fleet | current | target | reason |",
        "|---|---|---|---|",
    ]
    for d in plan.decisions:
        if d.fleet in fleets:
            lines.append(f"| {d.fleet} | {d.current} | {d.target} | {d.reason} |")
    return "\n".join(lines)


def _take_back_the_run() -> None:
    """Nobody answered: move the paused run back to Running so it can finish its work (record
    the held decisions) instead of failing as "paused and never resumed"."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(ctx.flow_run.id, Running(), force=True)


def approve_large_changes(
    plan: Plan, max_change_pct: float, timeout_minutes: float, poll_seconds: int = 10
) -> Plan:
    """Pause for approval when a scale-mode decision changes a fleet by more than
    ``max_change_pct``; return the plan with unapproved large changes held."""
    logger = get_run_logger()
    large = [d.fleet for d in plan.decisions if needs_approval(d, max_pct=max_change_pct)]
    if not large:
        return plan
    logger.info("waiting up to %.0f min for approval of %s", timeout_minutes, ", ".join(large))
    try:
        answer = pause_flow_run(
            wait_for_input=ScaleApproval.with_initial_data(
                description=_describe(plan, large, max_change_pct)
            ),
            timeout=max(1, round(timeout_minutes * 60)),
            poll_interval=max(1, min(poll_seconds, round(timeout_minutes * 60))),
        )
    except FlowPauseTimeout:
        _take_back_the_run()
        why = f"change above {max_change_pct:g}% not approved within {timeout_minutes:g} min"
        logger.warning("%s: %s", why, ", ".join(large))
        return hold(plan, large, why)
    if answer is None or not answer.approve:
        note = f" ({answer.note})" if answer is not None and answer.note else ""
        return hold(plan, large, f"change above {max_change_pct:g}% rejected{note}")
    logger.info("approved%s", f": {answer.note}" if answer.note else "")
    return plan
