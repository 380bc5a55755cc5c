"""``fleetcast accuracy``: realised accuracy of stored forecasts; flags series to retrain."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from models.names import check_name

HELP = "score stored forecasts against arrived actuals (MASE, sMAPE, coverage); flag retraining"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", default=None, help="only show this game type")
    parser.add_argument("--margin", type=float, default=0.25,
                        help="retrain when realised MASE > backtest x (1 + margin) "
                             "(default 0.25)")  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    import polars as pl

    from fleetcast.stages.accuracy import score_accuracy
    from models.accuracy import RetrainPolicy

    if args.game_type is not None:
        check_name("game type", args.game_type)
    scored = score_accuracy(settings, RetrainPolicy(margin=args.margin))
    if args.game_type:
        scored = scored.filter(pl.col("game_type") == args.game_type)
    if scored.height == 0:
        print("nothing to score yet: no stored forecast hour has an actual")
        return 0
    newest = (
        scored.sort("last_ts")
        .group_by("game_type", "region", "metric", "model")
        .agg(pl.all().last())
        .sort("game_type", "region", "metric", "model")
    )
    print(f"{'series':<45} {'model':<16} {'n':>4} {'mase':>6} {'backtest':>8} {'smape':>6} "
          f"{'cover':>5} {'q90':>5}  retrain")  # fmt: skip
    for r in newest.iter_rows(named=True):
        series = f"{r['game_type']}/{r['region']}/{r['metric']}"
        bt = f"{r['backtest_mase']:.3f}" if r["backtest_mase"] is not None else "-"
        mase = f"{r['mase']:.3f}" if r["mase"] is not None else "-"
        flag = f"YES ({r['reason']})" if r["retrain"] else "no"
        cov = f"{r['coverage']:5.2f} {r['coverage_q90']:5.2f}"
        print(f"{series:<45} {r['model']:<16} {r['n']:>4} {mase:>6} {bt:>8} "
              f"{r['smape']:6.2f} {cov}  {flag}")  # fmt: skip
    flagged = newest.filter(pl.col("retrain")).height
    print(f"{scored.height} forecast runs scored; {flagged} series flagged for retraining"
          + (" (run `fleetcast train --if-needed`)" if flagged else ""))  # fmt: skip
    return 0
