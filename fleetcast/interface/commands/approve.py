"""``fleetcast approve``: answer a run paused for approval of large capacity changes (the same
form as the Resume button of the Prefect UI), on the server of ``$PREFECT_API_URL``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from fleetcast.config import Settings

HELP = (
    "approve (or with --reject, refuse) the large capacity changes of the newest flow run "
    "paused for approval on $PREFECT_API_URL (or --flow-run ID); --wait SECONDS waits for a run "
    "to ask; then waits for the run to finish and prints its state (exit 0 when Completed)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flow-run", default=None, help="the paused run's id (default: newest)")
    parser.add_argument("--note", default="", help="why (kept with the decisions)")
    parser.add_argument("--reject", action="store_true", help="refuse the changes instead")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait for a run to pause for approval (default 0)")  # fmt: skip
    parser.add_argument("--finish-timeout", type=float, default=600, metavar="SECONDS",
                        help="how long to wait for the run to finish (default 600)")  # fmt: skip


def _paused(client: Any, flow_run: str | None) -> Any:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    if flow_run:
        run = client.read_flow_run(flow_run)
        return run if run.state and run.state.is_paused() else None
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from tasks.approval import ScaleApproval

    deadline = time.monotonic() + args.wait
    with get_client(sync_client=True) as client:
        run = _paused(client, args.flow_run)
        while run is None and time.monotonic() < deadline:
            time.sleep(2)
            run = _paused(client, args.flow_run)
        if run is None:
            print("no flow run is paused for approval")
            return 1
        answer = ScaleApproval(approve=not args.reject, note=args.note)
        resume_flow_run(run.id, run_input=answer.model_dump())
        print(f"{'rejected' if args.reject else 'approved'}: {run.name} ({run.id})")
        finish = time.monotonic() + args.finish_timeout
        state = client.read_flow_run(run.id).state
        while state is not None and not state.is_final() and time.monotonic() < finish:
            time.sleep(2)
            state = client.read_flow_run(run.id).state
    name = state.name if state is not None else "unknown"
    print(f"{run.name}: {name}")
    return 0 if state is not None and state.is_completed() else 1
