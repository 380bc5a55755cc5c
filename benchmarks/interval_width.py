"""How the served intervals would cover if widened: the coverage of q90 and of the 80% interval
on validation windows, for each widening factor of the upper and the lower side.

    .venv/bin/python benchmarks/interval_width.py [--m4 DATA_DIR WORKDIR] [--steam DATA_DIR WORKDIR]
        [--factors none]

Each WORKDIR is one run of ``m4_product.py --validation`` or ``steam_heldout.py --validation``
(its ``f.csv`` and database are read; nothing is run again). A served bound ``b`` around the
point forecast ``yhat`` becomes ``yhat + c * (b - yhat)`` (lower bounds clipped at 0), so one
run prices every factor. Beside the coverages, the 80% interval's interval score (per series
divided by its mean actual, the median over the series) compares calibrations of the same
forecasts: width and misses both cost, so an interval that covers by being wide scores worse
than a sharp calibrated one. The product does not widen: a chosen factor would scale the
conformal quantiles where they are applied (``models.selection.apply_conformal``,
``models.global_gbm.predict``). Factors are chosen here, on validation windows only
(docs/forecasting.md "Validation protocol"); the test parts are scored afterwards with the
chosen factors frozen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4_hourly import load_m4, validation_split  # noqa: E402
from benchmarks.m4_product import read_forecasts  # noqa: E402
from benchmarks.steam_heldout import FILE, HORIZON, split  # noqa: E402

FACTORS = tuple(round(1.0 + 0.05 * i, 2) for i in range(11))  # 1.00 .. 1.50


def m4_joined(data_dir: Path, work: Path) -> pl.DataFrame:
    """The M4 validation run's forecasts joined to its held-out actuals."""
    history, _ = load_m4(data_dir)
    _, actuals = validation_split(history)
    fc = read_forecasts(work / "f.csv", work / "m4.duckdb", pl.col("game_type").str.to_uppercase())
    return actuals.join(fc, on=["unique_id", "ds"], how="inner")


def steam_joined(data_dir: Path, work: Path) -> pl.DataFrame:
    """The steam-dev validation run's forecasts joined to its held-out actuals."""
    raw = pl.read_csv(data_dir / FILE, try_parse_dates=True).with_columns(
        pl.col("ts").cast(pl.Datetime("us"))
    )
    _, actuals = split(raw, skip=HORIZON)
    fc = read_forecasts(work / "f.csv", work / "steam.duckdb", pl.col("game_type"))
    return actuals.join(fc, on=["unique_id", "ds"], how="inner")


def widened(joined: pl.DataFrame, up: float, low: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): the served 80% bounds widened by ``low`` and ``up`` (lower clipped at 0)."""
    f = joined["yhat"].to_numpy()
    upper = f + up * (joined["q90"].to_numpy() - f)
    lower = np.maximum(f - low * (f - joined["yhat_lower"].to_numpy()), 0.0)
    return lower, upper


def coverage(joined: pl.DataFrame, up: float, low: float) -> tuple[float, float]:
    """(q90 coverage, 80% interval coverage) with the bounds widened by ``up`` and ``low``."""
    y = joined["y"].to_numpy()
    lower, upper = widened(joined, up, low)
    return float(np.mean(y <= upper)), float(np.mean((y >= lower) & (y <= upper)))


def interval_score(joined: pl.DataFrame, up: float, low: float) -> float:
    """The 80% interval's interval score (width plus 10 x each miss; proper: lower is better,
    only a calibrated and sharp interval scores well) with the bounds widened by ``up`` and
    ``low``, divided per series by its mean held-out actual, as a percentage, the median over the
    series (a series near zero would decide a mean): a scale-free way to compare calibrations
    of the same forecasts."""
    lower, upper = widened(joined, up, low)
    y = joined["y"].to_numpy()
    score = (upper - lower) + 10 * np.maximum(lower - y, 0) + 10 * np.maximum(y - upper, 0)
    per = (
        pl.DataFrame({"uid": joined["unique_id"], "s": score, "y": y})
        .group_by("uid")
        .agg(pl.col("s").mean() / pl.col("y").abs().mean())
    )
    return float(100 * per["s"].filter(per["s"].is_finite()).median())  # type: ignore[arg-type]


def table(name: str, joined: pl.DataFrame) -> pl.DataFrame:
    rows = []
    kinds = ["all", *sorted(joined["model"].unique().to_list())]
    for kind in kinds:
        part = joined if kind == "all" else joined.filter(pl.col("model") == kind)
        for c in FACTORS:
            q90, upper_only = coverage(part, c, 1.0)
            _, both = coverage(part, c, c)
            rows.append(
                {"set": name, "served": kind, "points": part.height, "factor": c,
                 "q90_covers": round(100 * q90, 1), "80_covers_upper_widened": round(
                 100 * upper_only, 1), "80_covers_both_widened": round(100 * both, 1),
                 "interval_score_pct": round(interval_score(part, c, c), 2)}
            )  # fmt: skip
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m4", nargs=2, type=Path, metavar=("DATA_DIR", "WORKDIR"))
    ap.add_argument("--steam", nargs=2, type=Path, metavar=("DATA_DIR", "WORKDIR"))
    ap.add_argument(
        "--factors", choices=("all", "none"), default="all", help="none: unwidened (1.0) only"
    )
    args = ap.parse_args(argv)
    frames = []
    if args.m4:
        frames.append(table("m4", m4_joined(*args.m4)))
    if args.steam:
        frames.append(table("steam", steam_joined(*args.steam)))
    if not frames:
        ap.error("give --m4 and/or --steam")
    out = pl.concat(frames)
    if args.factors == "none":
        out = out.filter(pl.col("factor") == 1.0)
    with pl.Config(tbl_rows=400, tbl_hide_dataframe_shape=True):
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
