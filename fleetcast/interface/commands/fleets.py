"""``fleetcast fleets import FILE|list``: fleet configuration (game type/region -> group)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleetcast.config import Settings

HELP = "import fleets from a CSV/JSON file (upsert, validated) or list them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common  # --db / --aws-endpoint after the action too

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", parents=common, help="upsert fleets from FILE.csv or FILE.json")
    imp.add_argument("file", type=Path)
    ls = sub.add_parser("list", parents=common, help="list fleets")
    ls.add_argument("--game-type")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.stages.fleets import import_fleets, load_fleets

    if args.action == "import":
        specs = import_fleets(args.file, settings.db_path)
        print(f"imported {len(specs)} fleet(s): " + ", ".join(s.fleet for s in specs))
        return 0
    with db.session(settings.db_path) as con:
        specs = load_fleets(con, args.game_type)
    if not specs:
        print("no fleets: see `fleetcast fleets import FILE`")
    header = f"{'fleet':<20} {'game_type':<16} {'region':<12} {'asg_name':<24} min  max  prio  mode"
    print(header)
    for s in specs:
        print(
            f"{s.fleet:<20} {s.game_type:<16} {s.region:<12} {s.asg_name:<24} "
            f"{s.min_size:<4} {s.max_size:<4} {s.priority:<5} {s.mode}"
        )
    return 0
