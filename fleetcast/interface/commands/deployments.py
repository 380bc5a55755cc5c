"""``fleetcast deployments sync|show``: Prefect deployments per game type, from the fleets table."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleetcast.config import Settings

HELP = (
    "sync: create or update the Prefect deployments on $PREFECT_API_URL (the shared ones in "
    "prefect.yaml plus one per stage template and game type in the fleets table), schedules "
    "paused unless --activate-schedules (a schedule already on stays on); pauses deployments "
    "whose game type is gone; show: print the deployments sync would make"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    for name, text in (
        ("sync", "create/update the deployments on the Prefect server"),
        ("show", "print the deployments sync would make (no server needed)"),
    ):
        p = sub.add_parser(name, parents=common, help=text)
        p.add_argument("--prefect-yaml", type=Path, default=Path("prefect.yaml"),
                       help="the shared definitions (default ./prefect.yaml)")  # fmt: skip
        p.add_argument("--game-type", action="append", dest="game_types", default=None,
                       help="this game type (repeatable; default: the fleets table)")  # fmt: skip
        p.add_argument("--activate-schedules", action="store_true",
                       help="switch the schedules on (the pipeline's stays off)")  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.stages.deployments import expand, game_types_in_fleets, load_config, sync
    from models.names import check_name

    game_types = args.game_types or game_types_in_fleets(settings.db_path)
    for g in game_types:
        check_name("game type", g)
    if not game_types:
        print(f"no fleets in {settings.db_path}: only the shared deployments (import fleets "
              "with `fleetcast fleets import FILE` and sync again)")  # fmt: skip
    if args.action == "show":
        full = expand(load_config(args.prefect_yaml), game_types,
                      activate=args.activate_schedules)  # fmt: skip
        for d in full["deployments"]:
            sched = ", ".join(
                f"{s.get('cron') or 'every ' + str(s.get('interval')) + ' s'}"
                f" ({'on' if s['active'] else 'paused'})"
                for s in d["schedules"]
            )
            print(f"{d['name']:<40} {' '.join(d['tags']):<58} {sched or 'ad hoc'}")
        return 0
    result = sync(args.prefect_yaml.absolute(), game_types, settings.work_dir,
                  activate=args.activate_schedules)  # fmt: skip
    print(f"{len(result.deployed)} deployment(s) for game types: {', '.join(game_types) or '-'}")
    print("schedules on: " + (", ".join(result.active) or "none (switch them on in the UI, or "
                              "sync --activate-schedules)"))  # fmt: skip
    if result.paused:
        print("paused (game type no longer in the fleets table): " + ", ".join(result.paused))
    if result.still_paused:
        print("paused on the server (kept; resume in the UI): " + ", ".join(result.still_paused))
    return 0
