"""``fleetcast models``: the model registry (champions and challengers per series)."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from models.names import check_name

HELP = (
    "list the model registry: series, kind, version, champion, training window, CV MASE (the "
    "score that chose the champion), CV coverage of the 80% interval and of the 0.9 quantile, "
    "realised (held-out) MASE"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game-type", default=None, help="only this game type")
    parser.add_argument("--metric", default=None, help="only this metric")
    parser.add_argument("--all-versions", action="store_true", help="older versions too")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.resources.registry import list_models

    for kind, value in (("game type", args.game_type), ("metric", args.metric)):
        if value is not None:
            check_name(kind, value)
    with db.session(settings.db_path, read_only=True) as con:
        frame = list_models(con, args.game_type, args.metric, args.all_versions)
    if frame.height == 0:
        print("no models: run `fleetcast train`")
        return 0
    print(f"{'series':<45} {'kind':<10} {'ver':>3} {'champ':<5} {'window':<33} {'n':>5} "
          f"{'cv_mase':>7} {'cv_cov80':>8} {'cv_q90':>6} {'realised':>8}  note")  # fmt: skip
    for r in frame.iter_rows(named=True):
        series = f"{r['game_type']}/{r['region']}/{r['metric']}"
        window = f"{r['train_start']:%Y-%m-%d %H:%M} .. {r['train_end']:%Y-%m-%d %H:%M}"
        score = f"{r['score']:.3f}" if r["score"] is not None else "-"
        cov = f"{r['cv_coverage']:.2f}" if r["cv_coverage"] is not None else "-"
        q90 = f"{r['cv_coverage_q90']:.2f}" if r["cv_coverage_q90"] is not None else "-"
        real = f"{r['realised_mase']:.3f}" if r["realised_mase"] is not None else "-"
        champ = "*" if r["is_champion"] else ""
        print(f"{series:<45} {r['kind']:<10} {r['version'] or 1:>3} {champ:<5} {window:<33} "
              f"{r['n_obs']:>5} {score:>7} {cov:>8} {q90:>6} {real:>8}  "
              f"{r['note'] or ''}")  # fmt: skip
    return 0
