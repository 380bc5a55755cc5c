"""How the served intervals would cover if widened: the coverage of q90 and of the 80% interval
on validation windows, for each widening factor of the upper and the lower side.

    .venv/bin/python benchmarks/interval_width.py [--m4 DATA_DIR WORKDIR] [--steam DATA_DIR WORKDIR]

Each WORKDIR is one run of ``m4_product.py --validation`` or ``steam_heldout.py --validation``
(its ``f.csv`` and database are read; nothing is run again). A served bound ``b`` around the
point forecast ``yhat`` becomes ``yhat + c * (b - yhat)`` (lower bounds clipped at 0), so one
run prices every factor. The product does not widen yet: a chosen factor would scale the
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


def coverage(joined: pl.DataFrame, up: float, low: float) -> tuple[float, float]:
    """(q90 coverage, 80% interval coverage) with the bounds widened by ``up`` and ``low``."""
    y = joined["y"].to_numpy()
    f = joined["yhat"].to_numpy()
    upper = f + up * (joined["q90"].to_numpy() - f)
    lower = np.maximum(f - low * (f - joined["yhat_lower"].to_numpy()), 0.0)
    return float(np.mean(y <= upper)), float(np.mean((y >= lower) & (y <= upper)))


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
                 100 * upper_only, 1), "80_covers_both_widened": round(100 * both, 1)}
            )  # fmt: skip
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m4", nargs=2, type=Path, metavar=("DATA_DIR", "WORKDIR"))
    ap.add_argument("--steam", nargs=2, type=Path, metavar=("DATA_DIR", "WORKDIR"))
    args = ap.parse_args(argv)
    frames = []
    if args.m4:
        frames.append(table("m4", m4_joined(*args.m4)))
    if args.steam:
        frames.append(table("steam", steam_joined(*args.steam)))
    if not frames:
        ap.error("give --m4 and/or --steam")
    with pl.Config(tbl_rows=400, tbl_hide_dataframe_shape=True):
        print(pl.concat(frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
