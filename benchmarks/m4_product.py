"""M4 Hourly through the product's documented commands, scored independently.

    .venv/bin/python benchmarks/m4_product.py /work/shared/data/m4-hourly [--workdir DIR]
        [--limit N] [--keep] [--train-args "..."] [--steps ingest,train,forecast]

Without the forecast step (e.g. `--steps ingest,train`, to time training) nothing is scored.

In a temporary folder (or ``--workdir``), the script writes the M4 hourly training series as one
long-format CSV in a landing folder (``ts`` hourly from 1970-01-01 00:00, ``game_type`` = the
lowercased M4 id such as ``h1``, ``metric`` = ``players``, ``region`` = ``global``, ``value``),
then runs, each as its own process:

    fleetcast --db DIR/m4.duckdb ingest --landing DIR/landing --no-docs
    fleetcast --db DIR/m4.duckdb train
    fleetcast --db DIR/m4.duckdb forecast --horizon 48 --out DIR/f.csv

and scores ``f.csv`` against the test values with ``models.m4_scoring.score_frame`` (the same
scoring as ``benchmarks/m4_hourly.py``). It prints the table with wall and CPU time (user + system
of the child process) per step.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4_hourly import HORIZON, load_m4, published_rows  # noqa: E402
from models.m4_scoring import score_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
METRIC = "players"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_step(
    name: str, cmd: list[str], env: dict[str, str], log: Path | None = None
) -> dict[str, object]:
    """Run one step; its whole output goes to `log` when given."""
    print(f"$ {shlex.join(cmd)}" + (f"  (output: {log})" if log else ""), flush=True)
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    tail = (proc.stdout.strip().splitlines() or [""])[-3:]
    print("\n".join(f"    {line}" for line in tail), flush=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"step {name} failed with exit code {proc.returncode}")
    return {"step": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def read_forecasts(out: Path, db_path: Path, series_id: pl.Expr) -> pl.DataFrame:
    """The forecast CSV as ``unique_id`` (``series_id`` of ``game_type``), ``ds, yhat,
    yhat_lower, yhat_upper, model``, with ``q90`` read back from the ``forecasts`` table (the
    capacity bound lives there, not in the CSV contract)."""
    fc = pl.read_csv(out, try_parse_dates=True).select(
        series_id.alias("unique_id"),
        pl.col("ts").cast(pl.Datetime("us")).alias("ds"),
        "yhat",
        "yhat_lower",
        "yhat_upper",
        "model",
    )
    import duckdb  # noqa: PLC0415 - only needed here

    with duckdb.connect(str(db_path), read_only=True) as con:
        q90 = con.sql(
            "select game_type, cast(ts as timestamp) as ds, yhat_q90 as q90 "
            "from forecasts where run_id = (select run_id from forecasts "
            "order by created_at desc limit 1)"
        ).pl()
    q90 = q90.select(series_id.alias("unique_id"), pl.col("ds").cast(pl.Datetime("us")), "q90")
    return fc.join(q90, on=["unique_id", "ds"])


def coverage_by_kind(fc: pl.DataFrame, actuals: pl.DataFrame, db_path: Path) -> pl.DataFrame:
    """Per served model kind: held-out hours and series, the held-out coverage of q90 and of the
    80% interval, and the mean CV coverage of both stored with the champions of that kind (each
    CV origin calibrated on the other origins' errors, as ``fleetcast models`` lists them)."""
    from fleetcast.resources import db  # noqa: PLC0415 - only needed here
    from fleetcast.resources.registry import list_models  # noqa: PLC0415

    held = (
        actuals.select("unique_id", "ds", "y")
        .join(fc, on=["unique_id", "ds"], how="inner")
        .group_by(pl.col("model").alias("kind"))
        .agg(
            pl.col("unique_id").n_unique().alias("series"),
            pl.len().alias("hours"),
            (100 * (pl.col("y") <= pl.col("q90")).mean()).round(1).alias("held_out_q90"),
            (100 * pl.col("y").is_between(pl.col("yhat_lower"), pl.col("yhat_upper")).mean())
            .round(1)
            .alias("held_out_80"),
        )
    )
    with db.session(db_path, read_only=True) as con:
        champions = list_models(con).filter(pl.col("is_champion"))
    cv = champions.group_by("kind").agg(
        (100 * pl.col("cv_coverage_q90").mean()).round(1).alias("cv_q90"),
        (100 * pl.col("cv_coverage").mean()).round(1).alias("cv_80"),
    )
    return held.join(cv, on="kind", how="left").sort("hours", descending=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    ap.add_argument("--limit", type=int, default=None, help="first N series only")
    ap.add_argument("--train-args", default="", help="extra arguments for `fleetcast train`")
    ap.add_argument("--steps", default="ingest,train,forecast", help="steps to run")
    ap.add_argument(
        "--validation",
        action="store_true",
        help="the protocol's validation windows (docs/forecasting.md): the product sees each "
        "training series without its last 48 h and is scored on them; the test values are not used",
    )
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="m4-product-"))
    work.mkdir(parents=True, exist_ok=True)
    landing, db_path, out = work / "landing", work / "m4.duckdb", work / "f.csv"
    history, actuals = load_m4(args.data_dir, args.limit, validation=args.validation)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if "ingest" in steps:
        landing.mkdir(exist_ok=True)
        history.select(
            pl.col("ds").dt.strftime("%Y-%m-%dT%H:%M:%S").alias("ts"),
            pl.col("unique_id").str.to_lowercase().alias("game_type"),
            pl.lit("global").alias("region"),
            pl.lit(METRIC).alias("metric"),
            pl.col("y").alias("value"),
        ).write_csv(landing / "m4_hourly_long.csv")
    env = {**os.environ, "FLEETCAST_WORK_DIR": str(work / "work")}
    cli = [sys.executable, "-m", "fleetcast.interface.cli", "--db", str(db_path)]
    commands = {
        "ingest": [*cli, "ingest", "--landing", str(landing), "--no-docs"],
        "train": [*cli, "train", *shlex.split(args.train_args)],
        "forecast": [*cli, "forecast", "--horizon", str(HORIZON), "--out", str(out)],
    }
    timings = [run_step(s, commands[s], env, work / f"{s}.log") for s in steps]
    if "forecast" not in steps:  # nothing to score (e.g. `--steps ingest,train` to time training)
        with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(timings))
        return 0

    fc = read_forecasts(out, db_path, pl.col("game_type").str.to_uppercase())
    intervals = [("q90_upper", None, "q90"), ("80_two_sided", "yhat_lower", "yhat_upper")]
    _, summary = score_frame(fc, actuals, history, season=24, interval_columns=intervals)
    models = fc.group_by("unique_id").agg(pl.col("model").first())["model"].value_counts()
    print(
        f"\nM4 Hourly via the product (ingest -> train -> forecast --horizon {HORIZON}), "
        f"{int(summary['n_series'])} series, {os.cpu_count()} cores, work dir {work}"
    )
    print(
        f"sMAPE {summary['smape']:.3f}  MASE {summary['mase']:.3f}  "
        f"q90 covers {100 * summary['coverage_q90_upper']:.1f}%  "
        f"80% interval covers {100 * summary['coverage_80_two_sided']:.1f}%"
    )
    with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True):
        print(pl.DataFrame(timings))
        print(models.sort("count", descending=True))
        print("coverage per served kind, held-out hours and CV (%):")
        print(coverage_by_kind(fc, actuals, db_path))
    total_wall = sum(float(t["wall_s"]) for t in timings)  # type: ignore[arg-type]
    total_cpu = sum(float(t["cpu_s"]) for t in timings)  # type: ignore[arg-type]
    print(f"total: wall {total_wall:.1f} s, CPU {total_cpu:.1f} s")
    print("\nPublished (all 414 series):")
    for label, s, m in published_rows(args.data_dir):
        print(f"{label:60s} {s:>8s} {m:>8s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
