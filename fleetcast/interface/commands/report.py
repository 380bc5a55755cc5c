"""``fleetcast report``: plots of forecast vs actual and capacity vs demand per fleet."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings

HELP = (
    "Write an HTML report with, per fleet, the forecast against actuals and a replay of "
    "capacity against demand over the last days."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=7, help="days replayed (default 7)")
    parser.add_argument(
        "--game-type", default=None, help="only this game type's fleets (default all)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import polars as pl

    from fleetcast.interface.demo import fleet_summary, write_fleet_report
    from models.names import check_name

    fleets = fleet_summary(settings)
    if args.game_type:
        fleets = fleets.filter(pl.col("game_type") == check_name("game type", args.game_type))
    if fleets.height == 0:
        print("no fleets: run `fleetcast fleets import FILE` first")
        return 1
    path = write_fleet_report(settings, fleets, args.days)
    print(f"report for {fleets.height} fleet(s): {path}")
    return 0
