"""``fleetcast approval set|clear|rules|list``: which fleets' changes wait for a person, and
the changes that wait (or waited)."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from models.approval import ApprovalRule

HELP = "set or clear a fleet's approval rule; list rules and changes waiting for approval"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common  # --db / --aws-endpoint after the action too

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    s = sub.add_parser("set", parents=common, help="a fleet's (or a game type's) approval rule")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--fleet")
    where.add_argument("--game-type", help="every fleet of this game type")
    s.add_argument("--max-change-pct", type=float, help="a change of more than this % asks")
    s.add_argument("--max-change-instances", type=int, help="a change of more than N asks")
    s.add_argument("--floor", type=int, help="a scale-in below this capacity asks")
    s.add_argument(
        "--expiry-minutes", type=int, default=60, help="a change unanswered this long expires"
    )
    c = sub.add_parser("clear", parents=common, help="a fleet's changes no longer ask")
    c.add_argument("--fleet", required=True)
    sub.add_parser("rules", parents=common, help="list the approval rules")
    ls = sub.add_parser("list", parents=common, help="changes waiting for approval (or --all)")
    ls.add_argument("--fleet")
    ls.add_argument("--all", action="store_true", help="include decided, expired, superseded")


def rule_line(rule: ApprovalRule) -> str:
    return f"{rule.fleet}: asks for {rule.describe()}; expires after {rule.expiry_minutes} min"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.stages.approval import describe_change, list_changes
    from fleetcast.stages.approval_rules import clear_rule, load_rules, set_rule
    from fleetcast.stages.fleets import load_fleets
    from models.clock import utcnow

    now = utcnow()
    if args.action in ("rules", "list"):
        with db.session(settings.db_path, read_only=True) as con:
            if args.action == "rules":
                rules = load_rules(con)
                if not rules:
                    print("no approval rules: every change is applied without asking")
                for r in rules.values():
                    print(rule_line(r))
                return 0
            changes = list_changes(con, fleet=args.fleet, include_decided=args.all)
        if not changes:
            print("no change waits for approval")
        for ch in changes:
            print(describe_change(ch, now))
        return 0
    with db.session(settings.db_path) as con:
        if args.action == "clear":
            done = clear_rule(con, args.fleet)
            print(f"{args.fleet}: approval rule cleared" if done else f"{args.fleet}: no rule")
            return 0
        fleets = [args.fleet] if args.fleet else [f.fleet for f in load_fleets(con, args.game_type)]
        if not fleets:
            print(f"no fleets of game type {args.game_type}")
            return 2
        with db.transaction(con):
            for fleet in fleets:
                rule = ApprovalRule(
                    fleet=fleet,
                    max_change_pct=args.max_change_pct,
                    max_change_instances=args.max_change_instances,
                    scale_in_floor=args.floor,
                    expiry_minutes=args.expiry_minutes,
                )
                set_rule(con, rule, now)
                print(rule_line(rule))
    return 0
