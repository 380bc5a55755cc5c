"""``fleetcast budget set|list|clear``: budgets shared by fleets, kept in the database."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings

HELP = "set, list or clear a budget shared by fleets (all, a region or some game types)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common  # --db after the action too

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    s = sub.add_parser("set", parents=common, help="add or replace a budget")
    s.add_argument("--name", required=True, help="the budget's name (lowercase, digits, _ -)")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--all", action="store_true", help="every fleet in scale mode")
    where.add_argument("--region", help="the fleets of this region")
    where.add_argument("--game-types", help="the fleets of these game types (comma-separated)")
    s.add_argument("--instances", type=int, help="at most this many instances in the scope")
    s.add_argument(
        "--cost", type=float, help="at most this cost per hour (each fleet's cost_per_hour)"
    )
    s.add_argument(
        "--hard",
        action="store_true",
        help="cut a person's capacity override too (default: an override holds, the breach is "
        "reported)",
    )
    s.add_argument("--reason", required=True)
    sub.add_parser("list", parents=common, help="budgets, their scope and last totals")
    c = sub.add_parser("clear", parents=common, help="remove a budget")
    c.add_argument("--name", required=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.stages.budgets import clear_budget, list_budgets, scope_rows, set_budget
    from models.clock import utcnow

    with db.session(settings.db_path) as con:
        if args.action == "set":
            scope = "all" if args.all else ("region" if args.region else "game_types")
            rule = set_budget(
                con,
                name=args.name,
                scope=scope,
                region=args.region,
                game_types=args.game_types or (),
                max_instances=args.instances,
                max_cost_per_hour=args.cost,
                reason=args.reason,
                now=utcnow(),
                hard=args.hard,
            )
            print(f"budget {rule.name}: {rule.describe()} ({rule.reason})")
            return 0
        if args.action == "list":
            rules = list_budgets(con)
            if not rules:
                print("no budgets")
                return 0
            for r in scope_rows(con, rules):
                print(
                    f"{r['name']}  {r['scope']}  fleets={r['fleets']}  "
                    f"last targets={r['last_targets']}  cost/h={r['last_cost_per_hour']}  "
                    f"unserved={r['unserved']}  ({r['reason']})"
                )
            return 0
        if clear_budget(con, args.name):
            print(f"budget {args.name} cleared")
            return 0
        print(f"no budget named {args.name!r}")
        return 1
