"""``fleetcast approve --fleet F | --game-type G [--note ...]``: apply the changes waiting for
approval, each re-checked against its group now (``fleetcast reject`` records a refusal), and
answer the learned settings waiting for a person (processes per instance beyond their band:
approved, the learned value is the fleet's band centre from the next cycle on).

A flow run paused for these changes (the approval form in the Prefect UI) is resumed with the
same answer once nothing it waits for is pending any more, so it finishes now instead of
waiting out its timeout. ``--wait SECONDS`` first waits for a change (and a run) to ask.
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from typing import Any

from fleetcast.config import Settings

HELP = "approve the capacity changes waiting for a fleet (or a game type): apply them, re-checked"
RUN_ID = re.compile(r"\[([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fleet")
    where.add_argument("--game-type", help="every fleet of this game type with a change waiting")
    parser.add_argument("--note", default="", help="why (stored with the decision)")
    parser.add_argument("--id", dest="change_id", help="the change id (default: the newest)")
    parser.add_argument("--by", dest="decided_by", help="who decides (default: cli:$USER)")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait up to this long for a change to ask (default 0)")  # fmt: skip
    parser.add_argument("--finish-timeout", type=float, default=600, metavar="SECONDS",
                        help="how long a resumed run may take to finish (default 600)")  # fmt: skip


def _waiting(settings: Settings, args: argparse.Namespace) -> list[Any]:
    """The pending changes in scope; with --wait, once every one names the run waiting on it
    (or the wait is over)."""
    from fleetcast.resources import db
    from fleetcast.stages.approval import list_changes
    from models.names import check_name

    if args.game_type:
        check_name("game type", args.game_type)
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        changes: list[Any] = []
        try:
            if settings.db_path.exists():
                with db.session(settings.db_path, read_only=True, wait_seconds=5) as con:
                    changes = [
                        c
                        for c in list_changes(con, fleet=args.fleet)
                        if (args.game_type is None or c.game_type == args.game_type)
                        and (args.change_id is None or c.change_id == args.change_id)
                    ]
        except db.DatabaseBusy:  # a run is writing; while waiting, look again
            if time.monotonic() >= deadline:
                raise
        if args.fleet:
            changes = changes[:1]  # the newest, as decide_change takes it
        if (changes and all(c.waiting for c in changes)) or time.monotonic() >= deadline:
            return changes
        time.sleep(2)


def _resume(settings: Settings, decided: list[Any], approve: bool, note: str, wait: float) -> None:
    """Resume each paused run whose changes are all decided now, and wait for it to finish."""
    from prefect.settings import PREFECT_API_URL

    from fleetcast.resources import db
    from fleetcast.stages.approval import list_changes

    runs = {m.group(1) for c in decided if c.waiting for m in [RUN_ID.search(c.waiting)] if m}
    if not runs:
        return
    if not PREFECT_API_URL.value():
        print("a flow run waits for these changes; set PREFECT_API_URL to resume it from here")
        return
    with db.session(settings.db_path, read_only=True) as con:
        still = " ".join(c.waiting or "" for c in list_changes(con))
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    with get_client(sync_client=True) as client:
        for run_id in sorted(uuid.UUID(r) for r in runs if r not in still):
            try:
                run = client.read_flow_run(run_id)
                if not (run.state and run.state.is_paused()):
                    continue
                answer = {"decision": "approve" if approve else "reject", "note": note}
                resume_flow_run(run_id, run_input=answer)
            except Exception as exc:  # the decision stands; the run stops waiting on its own
                print(f"flow run {run_id} not resumed: {exc}")
                continue
            print(f"{'approved' if approve else 'rejected'}: {run.name} ({run_id})")
            finish = time.monotonic() + wait
            state = client.read_flow_run(run_id).state
            while state is not None and not state.is_final() and time.monotonic() < finish:
                time.sleep(2)
                state = client.read_flow_run(run_id).state
            print(f"{run.name}: {state.name if state is not None else 'unknown'}")


def _decide_settings(settings: Settings, args: argparse.Namespace, approve: bool) -> int:
    """Answer the learned settings waiting for the fleet (or game type); how many."""
    from fleetcast.resources import db
    from fleetcast.stages.approval import default_decider
    from fleetcast.stages.processes import decide_setting, list_setting_changes
    from models.clock import utcnow

    if not settings.db_path.exists() or args.change_id is not None:
        return 0
    now, by = utcnow(), args.decided_by or default_decider()
    with db.session(settings.db_path) as con:
        waiting = [
            c
            for c in list_setting_changes(con, fleet=args.fleet)
            if args.game_type is None or c["game_type"] == args.game_type
        ]
        for c in waiting:
            decide_setting(
                con, c["change_id"], approve=approve, decided_by=by, note=args.note, now=now
            )
            print(
                f"{c['fleet']}: learned {c['learned']:g} processes per instance "
                f"{'approved' if approve else 'rejected'} by {by} (band centre was "
                f"{c['reference']:g}; sized on {c['used']:g} meanwhile)"
                + ("; used from the next cycle" if approve else "")
            )
    return len(waiting)


def decide(args: argparse.Namespace, settings: Settings, *, approve: bool) -> int:
    from fleetcast.config import capacity_backend
    from fleetcast.stages.approval import (
        ApprovalNotApplied,
        NothingPending,
        decide_change,
        describe_change,
    )
    from models.clock import utcnow

    answered = _decide_settings(settings, args, approve)
    changes = _waiting(settings, args)
    verb = "approve" if approve else "reject"
    if not changes and answered:
        return 0
    if not changes:
        scope = f"fleet {args.fleet}" if args.fleet else f"game type {args.game_type}"
        print(f"nothing to {verb}: no change waits for {scope}")
        return 2
    backend = capacity_backend(settings)
    decided, failed = [], 0
    for c in changes:
        try:
            done = decide_change(
                settings,
                fleet=c.fleet,
                approve=approve,
                note=args.note,
                decided_by=args.decided_by,
                change_id=c.change_id,
                backend=backend,
            )
        except NothingPending as exc:
            print(f"nothing to {verb}: {exc}")
            failed += 1
            continue
        except ApprovalNotApplied as exc:
            print(str(exc))
            failed += 1
            continue
        print(describe_change(done.change, utcnow()))
        decided.append(c)
    _resume(settings, decided, approve, args.note, args.finish_timeout)
    return 2 if failed else 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return decide(args, settings, approve=True)
