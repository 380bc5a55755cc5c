"""``fleetcast approve --fleet F [--note ...]``: apply the change waiting for approval."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings

HELP = "approve the capacity change waiting for a fleet: apply it, re-checked against the group now"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--note", default="", help="why (stored with the decision)")
    parser.add_argument("--id", dest="change_id", help="the change id (default: the newest)")
    parser.add_argument("--by", dest="decided_by", help="who decides (default: cli:$USER)")


def decide(args: argparse.Namespace, settings: Settings, *, approve: bool) -> int:
    from fleetcast.config import capacity_backend
    from fleetcast.stages.approval import (
        ApprovalNotApplied,
        NothingPending,
        decide_change,
        describe_change,
    )
    from models.clock import utcnow

    try:
        done = decide_change(
            settings,
            fleet=args.fleet,
            approve=approve,
            note=args.note,
            decided_by=args.decided_by,
            change_id=args.change_id,
            backend=capacity_backend(settings),
        )
    except NothingPending as exc:
        print(f"nothing to {'approve' if approve else 'reject'}: {exc}")
        return 2
    except ApprovalNotApplied as exc:
        print(str(exc))
        return 2
    print(describe_change(done.change, utcnow()))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return decide(args, settings, approve=True)
