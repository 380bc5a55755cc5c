"""``fleetcast demo``: the main job end to end on embedded defaults."""

from __future__ import annotations

import argparse

import polars as pl

from fleetcast.config import Settings

HELP = (
    "Run the whole job on generated sample data against a local moto server: ingest, validate, "
    "train, forecast, plan and apply; print a summary and write an HTML report."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=30, help="days of sample history (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="sample generator seed (default 7)")
    parser.add_argument("--landing", default=None, help="landing folder (default landing/)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.interface.demo import FLEET_FIGURES, run_demo

    result = run_demo(settings, days=args.days, seed=args.seed)
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(
            "\nper fleet (capacity in instances; decided_by = the forecaster that sized capacity; "
            "published_by = the stored champion that serves the published forecast; "
            "champion_cv_mase = the CV score that chose it, rolling 24 h windows: not a "
            "held-out score; realised_mase = scored on "
            "actuals that arrived after a stored forecast, where any did)"
        )
        print(result.fleets.select("fleet", *FLEET_FIGURES))
        print("\nper game type")
        print(result.summary)
    print("\nwhy (newest decision per fleet):")
    for row in result.fleets.iter_rows(named=True):
        print(f"  {row['fleet']}: {row['reason']}")
    print(f"\nreport: {result.report}")
    print(f"database: {settings.db_path}   (try: fleetcast status, fleetcast models)")
    print(f"done in {result.seconds:.0f} s")
    return 0
