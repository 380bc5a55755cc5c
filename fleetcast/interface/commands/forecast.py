"""``fleetcast forecast``: each series' champion forecasts the next hours from its last point."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from fleetcast.config import Settings
from models.names import check_name

HELP = "forecast each series HOURS ahead of its last observation (into `forecasts`, and a CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--horizon", type=int, required=True, metavar="HOURS",
                        help="hours to forecast after each series' last observation")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.csv",
                        help="also write the CSV: game_type, region, metric, ts, yhat, "
                             "yhat_lower, yhat_upper, model")  # fmt: skip
    parser.add_argument("--game-type", default=None, help="only this game type")
    parser.add_argument("--metric", default=None, help="only this metric")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.stages.serving import forecast_all

    for kind, value in (("game type", args.game_type), ("metric", args.metric)):
        if value is not None:
            check_name(kind, value)
    frame = forecast_all(settings, args.horizon, args.game_type, args.out, metric=args.metric)
    summary = (
        frame.group_by("game_type", "region", "metric", maintain_order=True)
        .agg(
            pl.col("model").first(),
            pl.col("ts").min().alias("from"),
            pl.col("ts").max().alias("to"),
            pl.col("yhat").max().alias("peak"),
            pl.col("note").first(),
        )
        .sort("game_type", "region", "metric")
    )
    for row in summary.iter_rows(named=True):
        line = (f"{row['game_type']}/{row['region']}/{row['metric']:<22} {row['model']:<16} "
                f"{row['from']:%Y-%m-%d %H:%M} .. {row['to']:%Y-%m-%d %H:%M} "
                f"peak {row['peak']:.1f}")  # fmt: skip
        print(line + (f"  ({row['note']})" if row["note"] else ""))
    print(f"forecast run {frame['run_id'][0]}: {summary.height} series x {args.horizon} h"
          + (f", CSV {args.out}" if args.out else ""))  # fmt: skip
    if "failed_series" in frame.columns:
        print(f"warning: {frame['failed_series'][0]} series could not be forecast")
    return 0
