"""steam-dev, h = 48, the last 48 hours of each of its 42 series held out, through the product.

    .venv/bin/python benchmarks/steam_heldout.py /work/shared/data/steam-dev [--workdir DIR]
        [--train-args "..."] [--limit N]

The validation protocol of docs/forecasting.md: every series is put on its hourly grid
(``models.hourly.to_hourly``), its last 48 hours are the test part and are never shown to the
product; everything before is the training part. The script writes the training part's raw rows
(the collector's timestamps, not on the hour) as one long CSV in a landing folder and runs, each
as its own process:

    fleetcast --db DIR/steam.duckdb ingest --landing DIR/landing --no-docs
    fleetcast --db DIR/steam.duckdb train
    fleetcast --db DIR/steam.duckdb forecast --horizon 48 --out DIR/f.csv

Every choice ``train`` makes (champion, variant, interval calibration) is made on rolling CV
windows inside the training part. The test part is then scored once: mean MASE (m = 24, the
in-sample seasonal-naive-24 scale of the training part), sMAPE, and the coverage of the 80%
interval and of q90 on the held-out hours that have a value, beside seasonal naive 24, seasonal
naive 168 and MSTL(24, 168) fitted on the same training part (``models.baselines``).
Target (issue 13): the product's mean MASE <= 0.8x the best of the three.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4_product import coverage_by_kind, read_forecasts, run_step  # noqa: E402
from models.baselines import MSTLForecaster, SeasonalNaive, regularize  # noqa: E402
from models.hourly import to_hourly  # noqa: E402
from models.m4_scoring import score_frame  # noqa: E402

HORIZON = 48
FILE = "steam_players_hourly.csv"


# its held-out jump (about 300 to 47,000 players) is not forecastable: left out of the subsets
UNFORECASTABLE = "steam_286690"


def subset(raw: pl.DataFrame, seed: int, size: int = 9) -> list[str]:
    """``size`` game types drawn with ``seed`` from steam-dev's, ``UNFORECASTABLE`` left out."""
    names = sorted(set(raw["game_type"].to_list()) - {UNFORECASTABLE})
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(names, size=size, replace=False).tolist())


def split(raw: pl.DataFrame, skip: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training rows as ingested: raw timestamps before each series' held-out hours, held-out
    actuals ``unique_id, ds, y`` on the hourly grid: the last 48 grid hours with a value).
    ``skip``: hours dropped from each series' end first (48 = the protocol's validation window:
    the last 48 h of the training part held out, the test part not read)."""
    train_parts, test_parts = [], []
    for (gt,), part in raw.sort("ts").group_by("game_type", maintain_order=True):
        start, y = to_hourly(part["ts"].to_numpy(), part["value"].to_numpy())
        assert start is not None
        y = y[: len(y) - skip]
        cut = start + np.timedelta64(len(y) - HORIZON, "h")  # first held-out hour
        ds = (start + np.arange(len(y)).astype("timedelta64[h]")).astype("datetime64[us]")
        test = pl.DataFrame({"unique_id": str(gt), "ds": ds[-HORIZON:], "y": y[-HORIZON:]})
        test_parts.append(test.filter(pl.col("y").is_not_nan()))
        cut_us = pl.lit(cut.astype("datetime64[us]").item())
        train_parts.append(part.filter(pl.col("ts") < cut_us))
    return pl.concat(train_parts), pl.concat(test_parts).with_columns(
        pl.col("ds").cast(pl.Datetime("us"))
    )


def baselines(train: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """(in-sample hourly history per series, forecasts of each baseline fitted on it)."""
    hist_parts, out = [], {"snaive24": [], "snaive168": [], "mstl": []}
    models = {
        "snaive24": SeasonalNaive(24),
        "snaive168": SeasonalNaive(168),
        # the reference as it was first measured: the loess at every hour (the product's MSTL
        # uses R's loess steps since 2026-12-07; benchmarks/README.md "A demo that answers fast")
        "mstl": MSTLForecaster(jumps=False),
    }
    for (gt,), part in train.group_by("game_type", maintain_order=True):
        hist = regularize(
            pd.DataFrame({"ds": part["ts"].to_numpy(), "y": part["value"].to_numpy()})
        )
        hist_parts.append(pl.DataFrame({"unique_id": str(gt), "ds": hist["ds"], "y": hist["y"]}))
        for name, model in models.items():
            frame = model.predict(model.fit(hist), hist, HORIZON)
            out[name].append(pl.from_pandas(frame).with_columns(pl.lit(str(gt)).alias("unique_id")))
    fc = {
        name: pl.concat(parts).with_columns(
            pl.col("ds").cast(pl.Datetime("us")), pl.col("yhat_q90").alias("q90")
        )
        for name, parts in out.items()
    }
    history = pl.concat(hist_parts).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    return history, fc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    ap.add_argument("--limit", type=int, default=None, help="first N series only")
    ap.add_argument(
        "--subset",
        type=int,
        default=None,
        metavar="SEED",
        help=f"a seeded draw of --subset-size series without {UNFORECASTABLE} (issue 28: a small "
        "studio's panel)",
    )
    ap.add_argument("--subset-size", type=int, default=9)
    ap.add_argument("--train-args", default="", help="extra arguments for `fleetcast train`")
    ap.add_argument(
        "--validation",
        action="store_true",
        help="the protocol's validation window (docs/forecasting.md): each series' last 48 h "
        "(the test part) are dropped, and the 48 h before them are held out and scored",
    )
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="steam-heldout-"))
    work.mkdir(parents=True, exist_ok=True)
    landing, db_path, out = work / "landing", work / "steam.duckdb", work / "f.csv"
    raw = pl.read_csv(args.data_dir / FILE, try_parse_dates=True).with_columns(
        pl.col("ts").cast(pl.Datetime("us"))
    )
    if args.limit:
        keep = raw["game_type"].unique(maintain_order=True)[: args.limit]
        raw = raw.filter(pl.col("game_type").is_in(keep.to_list()))
    if args.subset is not None:
        raw = raw.filter(pl.col("game_type").is_in(subset(raw, args.subset, args.subset_size)))
    train, actuals = split(raw, skip=HORIZON if args.validation else 0)
    landing.mkdir(exist_ok=True)
    train.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(
        landing / "steam_train.csv"
    )
    env = {**os.environ, "FLEETCAST_WORK_DIR": str(work / "work")}
    cli = [sys.executable, "-m", "fleetcast.interface.cli", "--db", str(db_path)]
    steps = {
        "ingest": [*cli, "ingest", "--landing", str(landing), "--no-docs"],
        "train": [*cli, "train", *shlex.split(args.train_args)],
        "forecast": [*cli, "forecast", "--horizon", str(HORIZON), "--out", str(out)],
    }
    timings = [run_step(name, cmd, env, work / f"{name}.log") for name, cmd in steps.items()]

    product = read_forecasts(out, db_path, pl.col("game_type"))
    history, fc = baselines(train)
    intervals = [("q90_upper", None, "q90"), ("80_two_sided", "yhat_lower", "yhat_upper")]
    rows = []
    for name, frame in {"fleetcast (product)": product, **fc}.items():
        per, s = score_frame(frame, actuals, history, season=24, interval_columns=intervals)
        rows.append(
            {
                "model": name,
                "mase": round(s["mase"], 3),
                "median_mase": round(float(per["mase"].median()), 3),
                "smape": round(s["smape"], 3),
                "cover_80": round(s["coverage_80_two_sided"], 3),
                "cover_q90": round(s["coverage_q90_upper"], 3),
                "series": int(s["n_series"]),
            }
        )
    table = pl.DataFrame(rows)
    best = min(r["mase"] for r in rows[1:])
    print(
        f"\nsteam-dev, last {HORIZON} h of each series held out, {actuals.height} held-out "
        f"hours with a value, {os.cpu_count()} cores, work dir {work}"
    )
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
        print(table)
        print(pl.DataFrame(timings))
        champions = product.group_by("unique_id").agg(pl.col("model").first())["model"]
        print(champions.value_counts().sort("count", descending=True))
        print("coverage per served kind, held-out hours and CV (%):")
        print(coverage_by_kind(product, actuals, db_path))
    ratio = rows[0]["mase"] / best
    print(f"product MASE / best baseline MASE = {ratio:.3f} (target <= 0.8)")
    summary = {"rows": rows, "timings": timings, "ratio": ratio, "series": sorted(
        actuals["unique_id"].unique().to_list())}  # fmt: skip
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
