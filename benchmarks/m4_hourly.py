"""M4 Hourly benchmark: forecast the 414 hourly series 48 hours ahead and score them M4 style.

    .venv/bin/python benchmarks/m4_hourly.py /work/shared/data/m4-hourly [--limit N] [--jobs N]
        [--out results.csv] [--forecasts f.csv] [--models global_gbm,seasonal_naive]

The data folder holds the competition files (see its README.md); nothing is copied into the repo.
The series are turned into the long format the product ingests (`unique_id, ds, y`, hourly from
1970-01-01 00:00), forecast through `models.global_gbm.forecast_panel` (the function the product's
forecast step calls), and scored with `models.m4_scoring.score_frame`. To score forecasts made by
another route (e.g. `fleetcast forecast --horizon 48 --out f.csv`), pass them with
`--score-only f.csv` (columns `unique_id, ds, yhat`, optional `yhat_lower, yhat_upper, q90`).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import global_gbm  # noqa: E402
from models.m4_scoring import score_frame  # noqa: E402

HORIZON = 48
START = datetime(1970, 1, 1)


def read_wide(path: Path) -> dict[str, np.ndarray]:
    """One row per series: id, then values (empty cells at the end are padding)."""
    out: dict[str, np.ndarray] = {}
    with path.open(newline="") as fh:
        rows = csv.reader(fh)
        next(rows)
        for row in rows:
            out[row[0]] = np.array([float(v) for v in row[1:] if v != ""])
    return out


def to_long(series: dict[str, np.ndarray], offsets: dict[str, int] | None = None) -> pl.DataFrame:
    """Long frame `unique_id, ds, y`; ds hourly from 1970-01-01 (+ offset hours per series)."""
    frames = []
    for uid, y in series.items():
        start = START + timedelta(hours=(offsets or {}).get(uid, 0))
        frames.append(
            pl.DataFrame(
                {
                    "unique_id": uid,
                    "ds": pl.datetime_range(
                        start, start + timedelta(hours=len(y) - 1), "1h", eager=True
                    ),
                    "y": y,
                }
            )
        )
    return pl.concat(frames)


def load_m4(
    data_dir: Path, limit: int | None = None, every: int = 1, *, validation: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(history, actuals) in long format; actuals continue each series' hourly timestamps.
    `every`: every k-th series of the file (a subsample spread over it), then the first `limit`.
    `validation`: the protocol's validation windows (``validation_split``) instead, the test
    file not even read."""
    train = read_wide(data_dir / "m4_hourly_train.csv")
    ids = list(train)[::every][: limit or None]
    train = {k: train[k] for k in ids}
    if validation:
        return validation_split(to_long(train))
    test = read_wide(data_dir / "m4_hourly_test.csv")
    test = {k: test[k] for k in ids}
    return to_long(train), to_long(test, {k: len(v) for k, v in train.items()})


def validation_split(history: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(each training series without its last ``HORIZON`` hours, those hours): the validation
    windows of the protocol, cut from the training part only."""
    ranked = history.sort("unique_id", "ds").with_columns(
        pl.col("ds").rank("ordinal", descending=True).over("unique_id").alias("_back")
    )
    fit = ranked.filter(pl.col("_back") > HORIZON).drop("_back")
    held = ranked.filter(pl.col("_back") <= HORIZON).drop("_back")
    return fit, held


def published_rows(data_dir: Path) -> list[tuple[str, str, str]]:
    """(label, sMAPE, MASE) of the reference rows from the published-results files."""
    rows: list[tuple[str, str, str]] = []
    pub = pl.read_csv(data_dir / "m4_hourly_published_results.csv")
    best = pub.sort("hourly_rank_OWA").row(0, named=True)
    rows.append(
        (
            f"M4 best hourly: {best['label']}",
            f"{best['sMAPE_hourly']:.3f}",
            f"{best['MASE_hourly']:.3f}",
        )
    )
    for label in ("ES-RNN (Smyl)",):
        r = pub.filter(pl.col("label") == label)
        if r.height:
            rr = r.row(0, named=True)
            rows.append((f"M4 {label}", f"{rr['sMAPE_hourly']:.3f}", f"{rr['MASE_hourly']:.3f}"))
    for method in ("sNaive", "Naive2"):
        r = pub.filter(pl.col("method_id").cast(pl.String) == method)
        if r.height:
            rr = r.row(0, named=True)
            rows.append(
                (f"M4 {rr['label']}", f"{rr['sMAPE_hourly']:.3f}", f"{rr['MASE_hourly']:.3f}")
            )
    other = pl.read_csv(data_dir / "m4_hourly_other_published.csv")
    for model in ("auto_arima (statsforecast)", "Prophet"):
        r = other.filter(pl.col("model") == model)
        smape = r.filter(pl.col("metric") == "sMAPE")["value"]
        mase = r.filter(pl.col("metric") == "MASE")["value"]
        rows.append(
            (
                f"published: {model}",
                f"{smape[0]:.2f}" if len(smape) else "-",
                f"{mase[0]:.2f}" if len(mase) else "-",
            )
        )
    return rows


def seasonal_naive_panel(history: pl.DataFrame, horizon: int) -> pl.DataFrame:
    grid = global_gbm.regularize(history)
    fitted = global_gbm.FittedGBM(None, horizon, 24, {}, True)
    return global_gbm.predict(fitted, grid, horizon)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_model(
    name: str,
    history: pl.DataFrame,
    jobs: int | None,
    seed: int,
    config: global_gbm.GBMConfig | None = None,
) -> tuple[pl.DataFrame, float, float]:
    t0, c0 = time.perf_counter(), _cpu_seconds()
    if name == "global_gbm":
        fc = global_gbm.forecast_panel(history, HORIZON, n_jobs=jobs, seed=seed, config=config)
    elif name == "seasonal_naive":
        fc = seasonal_naive_panel(history, HORIZON)
    else:
        raise SystemExit(f"unknown model {name!r}; choose global_gbm or seasonal_naive")
    return fc, time.perf_counter() - t0, _cpu_seconds() - c0


INTERVALS = (("q90_upper", None, "q90"), ("80_two_sided", "yhat_lower", "yhat_upper"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="first N series only")
    ap.add_argument("--every", type=int, default=1, help="every k-th series only (a subsample)")
    ap.add_argument("--jobs", type=int, default=None, help="LightGBM threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-cutoffs", type=int, default=None, help="training cutoffs per series")
    ap.add_argument("--rounds", type=int, default=None, help="boosting rounds")
    ap.add_argument("--stride", type=int, default=None, help="hours between training cutoffs")
    ap.add_argument("--objective", default=None, help="LightGBM objective (default: l1)")
    ap.add_argument("--leaves", type=int, default=None, help="LightGBM num_leaves")
    ap.add_argument("--learning-rate", type=float, default=None, help="LightGBM learning rate")
    ap.add_argument("--calibration-origins", type=int, default=None, help="calibration origins")
    ap.add_argument("--bagging", type=float, default=None, help="LightGBM bagging_fraction")
    ap.add_argument(
        "--tail-share", type=float, default=None, help="interval tails read at this share"
    )
    ap.add_argument("--steps-every", type=int, default=None, help="every k-th step per cutoff")
    ap.add_argument(
        "--refit", action=argparse.BooleanOptionalAction, help="serve a refit on all hours"
    )
    ap.add_argument(
        "--validation",
        action="store_true",
        help="the validation protocol (docs/forecasting.md): hold out the last 48 h of each "
        "training series and score those; the test set is not read",
    )
    ap.add_argument("--models", default="global_gbm,seasonal_naive")
    ap.add_argument("--out", type=Path, default=None, help="summary table as CSV")
    ap.add_argument("--forecasts", type=Path, default=None, help="write global_gbm forecasts CSV")
    ap.add_argument("--score-only", type=Path, default=None, help="score a forecasts CSV instead")
    args = ap.parse_args(argv)

    history, actuals = load_m4(args.data_dir, args.limit, args.every, validation=args.validation)
    overrides = {
        "max_cutoffs": args.max_cutoffs,
        "num_rounds": args.rounds,
        "stride": args.stride,
        "objective": args.objective,
        "num_leaves": args.leaves,
        "learning_rate": args.learning_rate,
        "refit": args.refit,
        "calibration_origins": args.calibration_origins,
        "bagging_fraction": args.bagging,
        "steps_every": args.steps_every,
        "tail_share": args.tail_share,
    }
    config = global_gbm.GBMConfig(**{k: v for k, v in overrides.items() if v is not None})
    results = []
    runs: list[tuple[str, pl.DataFrame, float, float]] = []
    if args.score_only:
        runs.append(
            (args.score_only.name, pl.read_csv(args.score_only, try_parse_dates=True), 0.0, 0.0)
        )
    else:
        for name in args.models.split(","):
            fc, wall, cpu = run_model(name.strip(), history, args.jobs, args.seed, config)
            runs.append((name.strip(), fc, wall, cpu))
            if name.strip() == "global_gbm" and args.forecasts:
                fc.write_csv(args.forecasts)
    for name, fc, wall, cpu in runs:
        intervals = [iv for iv in INTERVALS if all(c is None or c in fc.columns for c in iv[1:])]
        _, summary = score_frame(fc, actuals, history, season=24, interval_columns=intervals)
        fallback = (
            fc.filter(pl.col("model") != name)["unique_id"].unique().to_list()
            if "model" in fc.columns and name == "global_gbm"
            else []
        )
        results.append(
            {
                "model": name,
                "series": int(summary["n_series"]),
                "smape": round(summary["smape"], 3),
                "mase": round(summary["mase"], 3),
                "cov_q90": round(100 * summary.get("coverage_q90_upper", float("nan")), 1),
                "cov_80": round(100 * summary.get("coverage_80_two_sided", float("nan")), 1),
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "cores": args.jobs or os.cpu_count(),
                "fallback_series": len(fallback),
            }
        )
    table = pl.DataFrame(results)
    part = "validation: last 48 h of each training series" if args.validation else "test set"
    print(f"M4 Hourly, horizon {HORIZON}, {table['series'][0]} series, {part} (measured here)")
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(table)
    print("\nPublished (all 414 series):")
    print(f"{'method':60s} {'sMAPE':>8s} {'MASE':>8s}")
    for label, s, m in published_rows(args.data_dir):
        print(f"{label:60s} {s:>8s} {m:>8s}")
    if args.out:
        table.write_csv(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
