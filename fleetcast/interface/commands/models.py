"""``fleetcast models``: the model registry, one line per series (what it is served and how well);
every candidate with its note behind ``--verbose`` or ``fleetcast models SERIES``."""

from __future__ import annotations

import argparse
import textwrap

import polars as pl

from fleetcast.config import Settings
from models.names import check_name

HELP = (
    "list the model registry: one line per series (served kind, CV MASE that chose it, CV "
    "coverage of the 80-percent interval and of the 0.9 quantile, realised MASE); every candidate "
    "with its note with --verbose or for one SERIES"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("series", nargs="?", default=None,
                        help="one series (game_type/region/metric, or a game type): every "
                             "candidate and the training note")  # fmt: skip
    parser.add_argument("--game-type", default=None, help="only this game type")
    parser.add_argument("--metric", default=None, help="only this metric")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="every candidate of every series, with its note")  # fmt: skip
    parser.add_argument("--all-versions", action="store_true", help="older versions too")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _label(r: dict[str, object]) -> str:
    return f"{r['game_type']}/{r['region']}/{r['metric']}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.resources.registry import list_models

    for kind, value in (("game type", args.game_type), ("metric", args.metric)):
        if value is not None:
            check_name(kind, value)
    game_type = args.game_type
    if args.series is not None:
        game_type = args.series.split("/")[0]
        check_name("game type", game_type)
    with db.session(settings.db_path, read_only=True) as con:
        frame = list_models(con, game_type, args.metric, args.all_versions)
    if args.series is not None and "/" in args.series:
        frame = frame.filter(
            pl.concat_str("game_type", "region", "metric", separator="/") == args.series
        )
    if frame.height == 0:
        print(f"no models for {args.series}" if args.series else "no models: run `fleetcast train`")
        return 0 if args.series is None else 1
    if args.series is not None:
        _detail(frame)
    elif args.verbose:
        _table(frame)
    else:
        _summary(frame)
    return 0


def _summary(frame: pl.DataFrame) -> None:
    """One line per series: its champion (what is served)."""
    champions = frame.filter(pl.col("is_champion"))
    counts = frame.group_by("game_type", "region", "metric").len("candidates")
    champions = champions.join(counts, on=["game_type", "region", "metric"], how="left")
    width = max(28, *(len(_label(r)) for r in champions.iter_rows(named=True)))
    print(f"{'series':<{width}} {'served':<18} {'cv_mase':>7} {'cv_cov80':>8} {'cv_q90':>6} "
          f"{'realised':>8} {'candidates':>10}")  # fmt: skip
    for r in champions.iter_rows(named=True):
        print(f"{_label(r):<{width}} {r['kind']:<18} {_num(r['score'], '.3f'):>7} "
              f"{_num(r['cv_coverage'], '.2f'):>8} {_num(r['cv_coverage_q90'], '.2f'):>6} "
              f"{_num(r['realised_mase'], '.3f'):>8} {r['candidates']:>10}")  # fmt: skip
    without = counts.height - champions.height
    if without:
        print(f"{without} series without a champion: see `fleetcast models --verbose`")
    print(textwrap.fill(
        "cv_mase: the CV score that chose what is served (lower is better); cv_cov80 / cv_q90: "
        "CV coverage of the 80% interval (band 0.75-0.85) and of the 0.9 quantile (0.86-0.94), "
        "'-' where fewer than 2 CV origins could measure it (a short history); "
        "realised: MASE on actuals that arrived after a forecast. Every candidate and why: "
        "`fleetcast models SERIES` or `--verbose`.", 100))  # fmt: skip


def _table(frame: pl.DataFrame) -> None:
    """Every candidate of every series (the registry as stored), its note on the next line."""
    print(f"{'series':<40} {'kind':<18} {'ver':>3} {'champ':<5} {'window':<33} {'n':>5} "
          f"{'cv_mase':>7} {'cv_cov80':>8} {'cv_q90':>6} {'realised':>8}")  # fmt: skip
    for r in frame.iter_rows(named=True):
        window = f"{r['train_start']:%Y-%m-%d %H:%M} .. {r['train_end']:%Y-%m-%d %H:%M}"
        champ = "*" if r["is_champion"] else ""
        print(f"{_label(r):<40} {r['kind']:<18} {r['version'] or 1:>3} {champ:<5} {window:<33} "
              f"{r['n_obs']:>5} {_num(r['score'], '.3f'):>7} {_num(r['cv_coverage'], '.2f'):>8} "
              f"{_num(r['cv_coverage_q90'], '.2f'):>6} "
              f"{_num(r['realised_mase'], '.3f'):>8}")  # fmt: skip
        if r["note"]:
            print(textwrap.indent(textwrap.fill(r["note"], 96), "    "))


def _detail(frame: pl.DataFrame) -> None:
    """One series (or a game type's): its candidates best first, then the training note once."""
    for (label,), part in frame.with_columns(
        pl.concat_str("game_type", "region", "metric", separator="/").alias("label")
    ).group_by("label", maintain_order=True):
        first = part.row(0, named=True)
        print(f"{label}: trained {first['train_start']:%Y-%m-%d %H:%M} .. "
              f"{first['train_end']:%Y-%m-%d %H:%M} ({first['n_obs']} hours)")  # fmt: skip
        print(f"  {'kind':<18} {'ver':>3} {'cv_mase':>7} {'cv_smape':>8} {'cv_cov80':>8} "
              f"{'cv_q90':>6} {'realised':>8}")  # fmt: skip
        for r in part.iter_rows(named=True):
            mark = "* " if r["is_champion"] else "  "
            print(f"{mark}{r['kind']:<18} {r['version'] or 1:>3} {_num(r['score'], '.3f'):>7} "
                  f"{_num(r['cv_smape'], '.2f'):>8} {_num(r['cv_coverage'], '.2f'):>8} "
                  f"{_num(r['cv_coverage_q90'], '.2f'):>6} "
                  f"{_num(r['realised_mase'], '.3f'):>8}")  # fmt: skip
        notes = list(dict.fromkeys(n for n in part["note"].to_list() if n))
        for note in notes:
            print(textwrap.fill(note, 96, initial_indent="  - ", subsequent_indent="    "))
        print()
