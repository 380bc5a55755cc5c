"""``fleetcast scale``: plan every fleet's capacity and apply it (or only record it)."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from models.names import check_name

HELP = "plan each fleet's capacity ahead of demand and apply it to its Auto Scaling group"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forecast-only",
        action="store_true",
        help="shadow mode for every fleet: decide and record, change nothing",
    )
    parser.add_argument("--game-type", help="only this game type's fleets")
    parser.add_argument("--run-id", help="run id to record (default: generated)")
    parser.add_argument(
        "--budget-instances",
        type=int,
        help="instances shared by the fleets planned (priority first; default: "
        "$FLEETCAST_BUDGET_INSTANCES)",
    )
    parser.add_argument(
        "--budget-cost",
        type=float,
        help="cost per hour shared by the fleets planned (priority first; default: "
        "$FLEETCAST_BUDGET_COST_PER_HOUR)",
    )
    parser.add_argument(
        "--budget-hard",
        action="store_const",
        const=True,
        default=None,
        help="the per-run budget cuts a person's capacity override too (default: "
        "$FLEETCAST_BUDGET_HARD, else the override holds)",
    )
    parser.add_argument(
        "--aws-concurrency",
        type=int,
        help="fleets applied at once (default: $FLEETCAST_AWS_CONCURRENCY or 8)",
    )
    parser.add_argument(
        "--observed-max-age-minutes",
        type=int,
        help="observed demand older than this is not a floor (default: "
        "$FLEETCAST_OBSERVED_MAX_AGE_MINUTES or 120)",
    )
    parser.add_argument(
        "--backend",
        choices=["aws", "recorded"],
        default="aws",
        help="aws (boto3; a moto server with --aws-endpoint) or recorded (no AWS: groups start "
        "where the last recorded decisions left them)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.config import capacity_backend
    from fleetcast.stages.allocate import allocate, decisions_table

    if args.game_type:
        check_name("game type", args.game_type)
    decisions = allocate(
        settings,
        forecast_only=args.forecast_only,
        game_type=args.game_type,
        run_id=args.run_id,
        backend=capacity_backend(settings, args.backend),
    )
    if not decisions:
        print("no fleets configured: see `fleetcast fleets import FILE`")
        return 0
    print(decisions_table(decisions))
    failed = [d for d in decisions if d.outcome.startswith(("refused", "error", "not applied"))]
    if failed:
        print(f"{len(failed)} fleet(s) not applied: " + ", ".join(d.fleet for d in failed))
        return 2
    return 0
