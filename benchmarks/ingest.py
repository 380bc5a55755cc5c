"""Ingest throughput: rows/s into DuckDB through fleetcast's ingest (read the file, parse, GX
validation, quarantine bookkeeping, one transaction) beside DuckDB's own Arrow insert of the same
frame into the same table; the ratio is the figure (target >= 0.5).

    .venv/bin/python benchmarks/ingest.py [--rows 5000000]

Each path runs in its own fresh process (own peak RSS) on a fresh, migrated DuckDB file:

- duckdb_arrow: insert of the already-typed Arrow frame, in memory (the reference);
- duckdb_csv: DuckDB's own read_csv + insert of the same CSV file (no validation);
- fleetcast_warm: `ingest_paths` on the CSV file in a process that has ingested one small file
  before (Great Expectations imported, as in a backfill of many files or any run after its
  first file): the per-row rate;
- fleetcast_cold: the same call as the first thing the process does: adds the one-off import of
  Great Expectations (about 2 s here), paid once per run whatever its size;
- fleetcast_parquet_warm: as fleetcast_warm, the same rows landed as a Parquet file;
- fleetcast_stages: where the warm time goes, one function at a time (no DuckDB write).

The data: long metrics rows, hourly, series of at most 5,000 hours (so that no timestamp is in
the future), 40 game types x regions; a clean file, so every row is stored.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import in_child, machine, peak_rss_mb, table  # noqa: E402

START = datetime(2026, 1, 1)
HOURS_PER_SERIES = 5000


def make_frame(rows: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import polars as pl

    series = max(1, -(-rows // HOURS_PER_SERIES))
    per = -(-rows // series)
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(series), per)[:rows]
    h = np.tile(np.arange(per), series)[:rows]
    return pl.DataFrame(
        {
            "ts": pl.Series(np.datetime64(START, "us") + h.astype("timedelta64[h]")),
            "game_type": pl.Series([f"game_{i % 40}" for i in range(series)])[g],
            "region": pl.Series([f"r{i // 40}" for i in range(series)])[g],
            "metric": "players",
            "value": rng.gamma(4.0, 250.0, rows).round(1),
        }
    )


def _settings(folder: Path, kind: str):  # type: ignore[no-untyped-def]
    from fleetcast.config import Settings
    from fleetcast.resources import db

    settings = Settings(db_path=folder / f"{kind}.duckdb", landing_dir=folder / "landing",
                        work_dir=folder / "work")  # fmt: skip
    with db.session(settings.db_path):
        pass  # create and migrate the file outside the timing
    return settings


def _stages(folder: Path) -> dict:
    import datetime as dt

    from fleetcast.resources.landing import read_raw
    from fleetcast.stages.ingest import plan_batch
    from models.validation import FrameValidator, Limits

    FrameValidator(None)  # import GX outside the timing, as in the warm path
    parts = {}
    t0 = time.perf_counter()
    validator = FrameValidator(None)
    parts["gx_context"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = read_raw(folder / "landing" / "metrics.csv")
    parts["read_as_text"] = time.perf_counter() - t0
    limits = Limits(now=dt.datetime(2027, 1, 1), future_skew=dt.timedelta(minutes=15),
                    freshness=dt.timedelta(days=3650))  # fmt: skip
    t0 = time.perf_counter()
    plan = plan_batch(raw, validator, limits)
    parts["parse_and_validate"] = time.perf_counter() - t0
    assert plan.quarantined.height == 0, plan.message
    return {"kind": "fleetcast_stages", "rows": raw.height, "seconds": sum(parts.values()),
            "parts": parts, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def stage(kind: str, folder: Path) -> dict:
    import duckdb
    import polars as pl

    from fleetcast.stages.ingest import ingest_paths

    if kind == "fleetcast_stages":
        return _stages(folder)
    settings = _settings(folder, kind)
    if kind.startswith("fleetcast"):
        if kind != "fleetcast_cold":  # one small file first: GX imported, as after any file
            [w] = ingest_paths(settings, [Path("warmup.csv")], data_docs=False)
            assert w.status == "loaded", w
        name = "metrics.parquet" if kind == "fleetcast_parquet_warm" else "metrics.csv"
        t0 = time.perf_counter()
        [r] = ingest_paths(settings, [Path(name)], data_docs=False)
        took = time.perf_counter() - t0
        assert r.status == "loaded" and r.rows_quarantined == 0, r
        rows = r.rows_stored
    else:
        frame = pl.read_parquet(folder / "metrics.parquet")  # the typed frame, in memory
        arrow = frame.with_columns(batch_id=pl.lit("b")).to_arrow()
        con = duckdb.connect(str(settings.db_path))
        t0 = time.perf_counter()
        if kind == "duckdb_arrow":
            con.register("stage", arrow)
            con.execute("begin transaction")
            con.execute(
                "insert into metrics (ts, game_type, region, metric, value, batch_id) "
                "select ts, game_type, region, metric, value, batch_id from stage"
            ).fetchall()
            con.execute("commit")
        else:  # duckdb_csv: DuckDB reads the same CSV itself
            con.execute(
                "insert into metrics select ts, game_type, region, metric, value, 'b' "
                "from read_csv(?)",
                [str(settings.landing_dir / "metrics.csv")],
            ).fetchall()
        took = time.perf_counter() - t0
        rows = con.sql("select count(*) from metrics where batch_id = 'b'").fetchall()[0][0]
        con.close()
    return {"kind": kind, "rows": rows, "seconds": took, "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--stage", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        print(json.dumps(stage(args.stage[0], Path(args.stage[1]))))
        return 0
    import polars as pl

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        (folder / "landing").mkdir()
        frame = make_frame(args.rows)
        frame.write_csv(folder / "landing" / "metrics.csv", datetime_format="%Y-%m-%dT%H:%M:%S")
        frame.write_parquet(folder / "metrics.parquet")
        frame.write_parquet(folder / "landing" / "metrics.parquet")
        warm = make_frame(1000).with_columns(game_type=pl.lit("warmup"))
        warm.write_csv(folder / "landing" / "warmup.csv", datetime_format="%Y-%m-%dT%H:%M:%S")
        kinds = ("duckdb_arrow", "duckdb_csv", "fleetcast_warm", "fleetcast_cold",
                 "fleetcast_parquet_warm", "fleetcast_stages")  # fmt: skip
        results = [in_child(__file__, k, tmp) for k in kinds]
    base = results[0]["rows"] / results[0]["seconds"]
    rows = [
        (r["kind"], f"{r['rows']:,}", f"{r['seconds']:.2f}", f"{r['rows'] / r['seconds']:,.0f}",
         f"{r['rows'] / r['seconds'] / base:.2f}", f"{r['peak_rss_mb']:.0f}")
        for r in results
    ]  # fmt: skip
    print(machine())
    print()
    print(table(("path", "rows", "seconds", "rows/s", "vs arrow insert", "peak RSS MB"), rows))
    print("\nduckdb_arrow = insert of the already-typed Arrow frame (the reference; target ratio")
    print("  >= 0.5 for fleetcast_warm); duckdb_csv = DuckDB's CSV reader + insert, no checks;")
    print("fleetcast = read CSV as text + parse + GX validation + quarantine + one transaction;")
    print("  _cold adds the one-off import of Great Expectations to the same call.")
    print("fleetcast_stages (no DuckDB write): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in results[-1]["parts"].items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
