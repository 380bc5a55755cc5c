"""``fleetcast train``: the panel stage (one global LightGBM per metric across its series), then
cross-validate every series' local candidates and record the champion per series."""

from __future__ import annotations

import argparse
import time

from fleetcast.config import Settings
from models.names import check_name

HELP = (
    "train the forecasting models (a global LightGBM per metric, Prophet + challengers; "
    "champion per series by rolling-origin CV)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", default=None, help="only this game type")
    parser.add_argument("--metric", default=None, help="only this metric (e.g. players)")
    parser.add_argument("--if-needed", action="store_true",
                        help="only series whose realised accuracy fell behind their backtest "
                             "(see `fleetcast accuracy`)")  # fmt: skip
    parser.add_argument("--candidates", default=None, metavar="A,B,...",
                        help="candidates to cross-validate, e.g. global_gbm,snaive24,mstl "
                             "(default: global_gbm plus all local ones; only snaive24,snaive168 "
                             "beside it for metrics with more than 50 series)")  # fmt: skip
    parser.add_argument("--no-panel", action="store_true",
                        help="skip the global LightGBM (panel) stage")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="series trained at once (default: the machine's cores; "
                             "1 = in-process, the least memory)")  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.stages.training import train_all, train_if_needed

    for kind, value in (("game type", args.game_type), ("metric", args.metric)):
        if value is not None:
            check_name(kind, value)
    start = time.perf_counter()
    candidates = None
    if args.candidates:
        candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if args.if_needed:
        results = train_if_needed(settings, workers=args.workers, candidates=candidates)
        if not results:
            print("no series needs retraining (run `fleetcast accuracy` to re-check)")
            return 0
    else:
        results = train_all(
            settings,
            args.game_type,
            args.metric,
            workers=args.workers,
            candidates=candidates,
            panel=not args.no_panel,
        )
    if not results:
        print("no metrics to train on" + (" for that filter" if args.game_type or args.metric
              else ": run `fleetcast ingest` first"))  # fmt: skip
        return 1
    verbose = len(results) <= 50
    for r in results if verbose else []:
        score = f"{r.score:.3f}" if r.score is not None else "-"
        line = f"{r.key.label():<45} {r.status:<8} {r.champion or '-':<10} cv_mase={score:<6} "
        line += f"n={r.n_obs:<5} {r.seconds:5.1f}s"
        print(line + (f"  {r.message}" if r.message else ""))
    if not verbose:
        champs: dict[str, int] = {}
        for r in results:
            champs[r.champion or r.status] = champs.get(r.champion or r.status, 0) + 1
        print("champions: " + ", ".join(f"{k} {v}" for k, v in sorted(champs.items())))
        if results[0].message:
            print(f"e.g. {results[0].key.label()}: {results[0].message}")
    trained = sum(r.status == "trained" for r in results)
    print(f"trained {trained} of {len(results)} series in {time.perf_counter() - start:.1f} s")
    return 0 if trained else 1
