"""Replay benchmark: the policy vs reactive and seasonal references, on the sample data and on
real hourly series (M4), through the same code path as ``fleetcast backtest``.

    .venv/bin/python benchmarks/replay.py [--m4 /work/shared/data/m4-hourly] [--series H1,H2]
        [--holdout H170,H200,H250,H300,H350]
        [--lead 1] [--weeks 4] [--fleets battle_royale/na-east,...] [--sample-days 35]

Sample: ``fleetcast.interface.sample.generate`` (seed 7, fixed end) into a temporary folder,
the players metric, events and fleets loaded into a temporary DuckDB with plain inserts; the
last ``weeks`` weeks of each fleet are replayed with its fleets row (unit capacity, margin,
tolerance).
M4: each series (train + the 48 test values, hourly from 1970-01-01) is loaded into the same
temporary DuckDB as game type ``m4``, region = the series id; the last ``weeks`` weeks are
replayed with a unit capacity of max / 50 (about 50 instances at the peak), min 0, margin 0.1.
The data stays outside the repository: the M4 folder is an argument.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from fleetcast import db  # noqa: E402
from fleetcast.stages.backtest import BacktestRequest, format_table, run_backtest  # noqa: E402
from fleetcast.stages.fleets import read_fleet_file, upsert_fleets  # noqa: E402
from models.names import is_valid_name  # noqa: E402
from models.nowcast import DEFAULT_QUANTILE  # noqa: E402
from models.replay import ReplayResult  # noqa: E402

SAMPLE_END = datetime(2026, 11, 27, 23)
DEFAULT_FLEETS = (
    "battle_royale/na-east",
    "battle_royale/eu-west",
    "ranked_arena/eu-west",
    "casual_puzzle/na-east",
    "tournament_series/na-east",
)
DEFAULT_M4 = "H1,H2,H3,H5,H7,H10,H13,H17,H20,H170,H200,H250,H300,H350"
# M4 series never used to choose defaults (policy, nowcast): reported as their own group.
HOLDOUT_M4 = "H170,H200,H250,H300,H350"


def _insert_metrics(con, frame: pl.DataFrame) -> None:
    """frame: ts, game_type, region, metric, value (clean)."""
    frame = frame.with_columns(pl.lit("bench").alias("batch_id"))  # noqa: F841
    con.execute(
        "insert into metrics (ts, game_type, region, metric, value, batch_id) "
        "select ts, game_type, region, metric, value, batch_id "
        "from frame"
    ).fetchall()


def load_sample(con, folder: Path) -> None:
    """Players from the wide files, events and fleets, bad rows dropped (plain inserts)."""
    frames = []
    for path in sorted(folder.glob("metrics_wide_*.csv")):
        f = pl.read_csv(path, infer_schema_length=0)
        frames.append(f.select("ts", "game_type", "region", "players"))
    for path in sorted(folder.glob("metrics_wide_*.jsonl")):
        f = pl.read_ndjson(path, infer_schema_length=None)
        frames.append(f.select(pl.col("ts", "game_type", "region", "players").cast(pl.String)))
    wide = pl.concat(frames)
    clean = (
        wide.with_columns(
            pl.col("ts").str.to_datetime(time_zone="UTC", strict=False).dt.replace_time_zone(None),
            pl.col("players").cast(pl.Float64, strict=False).alias("value"),
            pl.lit("players").alias("metric"),
        )
        .filter(
            pl.col("ts").is_not_null()
            & (pl.col("ts") <= SAMPLE_END + timedelta(hours=1))
            & pl.col("value").is_not_null()
            & (pl.col("value") >= 0)
            & pl.col("game_type").map_elements(is_valid_name, return_dtype=pl.Boolean)
        )
        .unique(["ts", "game_type", "region", "metric"])
        .select("ts", "game_type", "region", "metric", "value")
    )
    _insert_metrics(con, clean)
    with (folder / "events.csv").open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            s = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
            e = datetime.fromisoformat(row["end"].replace("Z", "+00:00"))
            s_utc = (s - s.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
            e_utc = (e - e.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
            con.execute(
                "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at,"
                " batch_id) values (?, ?, ?, ?, ?, ?, ?, 'bench')",
                [f"ev{i}", row["name"], row["kind"], row["game_type"] or None,
                 row["region"] or None, s_utc, e_utc],
            ).fetchall()  # fmt: skip
    upsert_fleets(con, read_fleet_file(folder / "fleets.csv"))


def load_m4(con, folder: Path, names: list[str]) -> dict[str, int]:
    """Train + test values of each named series as game type ``m4``, region = lower-case id."""
    values: dict[str, list[float]] = {n: [] for n in names}
    for file in ("m4_hourly_train.csv", "m4_hourly_test.csv"):
        path = folder / file
        if not path.exists():
            continue
        with path.open(newline="") as fh:
            for row in csv.reader(fh):
                if row and row[0] in values:
                    values[row[0]].extend(float(x) for x in row[1:] if x != "")
    rows = []
    t0 = datetime(1970, 1, 1)
    for name, ys in values.items():
        if not ys:
            raise SystemExit(f"series {name} not found in {folder}")
        for i, v in enumerate(ys):
            rows.append((t0 + timedelta(hours=i), "m4", name.lower(), "players", v))
    frame = pl.DataFrame(
        rows, schema=["ts", "game_type", "region", "metric", "value"], orient="row"
    )
    _insert_metrics(con, frame)
    return {n: len(v) for n, v in values.items()}


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else ("0/0" if a == 0 else "inf")


def summary_line(name: str, r: ReplayResult, took: float) -> str:
    p, ra, sa = r.policy, r.reactive_at_idle, r.seasonal_at_idle
    return (
        f"{name:<28} short pol/react@idle/seas@idle {p.hours_short:>4}/{ra.hours_short:>4}/"
        f"{sa.hours_short:>4}  (x{_ratio(p.hours_short, ra.hours_short)} react, "
        f"x{_ratio(p.hours_short, sa.hours_short)} seas)  changes pol/react/seas "
        f"{p.changes}/{r.reactive.changes}/{r.seasonal.changes}  {took:.1f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m4", type=Path, default=None, help="folder with m4_hourly_train.csv")
    ap.add_argument("--series", default=DEFAULT_M4, help="M4 series ids, comma-separated")
    ap.add_argument("--fleets", default=",".join(DEFAULT_FLEETS), help="game/region pairs")
    ap.add_argument("--lead", type=int, default=1)
    ap.add_argument("--weeks", type=int, default=4, help="weeks replayed (the last ones)")
    ap.add_argument("--sample-days", type=int, default=35)
    ap.add_argument("--quiet", action="store_true", help="summary lines only")
    ap.add_argument("--policy-margin", type=float, default=None, help="what-if (all series)")
    ap.add_argument("--tolerance", type=float, default=None, help="what-if (all series)")
    ap.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE)
    ap.add_argument("--events", action="store_true", help="use the events table")
    ap.add_argument("--holdout", default=HOLDOUT_M4, help="M4 ids reported as the hold-out")
    args = ap.parse_args(argv)

    holdout = {s.strip().lower() for s in args.holdout.split(",") if s.strip()}
    groups: dict[str, list[int]] = {}  # group -> short pol/react@idle/seas@idle, changes pol/react
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        from fleetcast.interface.sample import generate

        generate(Path(tmp) / "sample", days=args.sample_days, seed=7, end=SAMPLE_END)
        con = db.connect(Path(tmp) / "bench.duckdb")
        load_sample(con, Path(tmp) / "sample")
        start = SAMPLE_END - timedelta(hours=args.weeks * 168 - 1)
        jobs: list[tuple[str, BacktestRequest]] = []
        for pair in args.fleets.split(","):
            game, region = pair.split("/")
            jobs.append(
                (
                    f"sample {game}/{region}",
                    BacktestRequest(
                        game,
                        "players",
                        start,
                        args.lead,
                        region,
                        SAMPLE_END,
                        policy_margin=args.policy_margin,
                        tolerance=args.tolerance,
                        quantile=args.quantile,
                        use_events=args.events,
                    ),  # fmt: skip
                )
            )
        if args.m4 is not None:
            names = [s.strip() for s in args.series.split(",") if s.strip()]
            lengths = load_m4(con, args.m4, names)
            for name in names:
                n = lengths[name]
                peak = con.sql(
                    "select max(value) from metrics where game_type = 'm4' and region = ?",
                    params=[name.lower()],
                ).fetchall()[0][0]
                end = datetime(1970, 1, 1) + timedelta(hours=n - 1)
                start_m4 = end - timedelta(hours=args.weeks * 168 - 1)
                req = BacktestRequest(
                    "m4", "players", start_m4, args.lead, name.lower(), end,
                    unit_capacity=float(peak) / 50, margin=0.1,
                    policy_margin=args.policy_margin, tolerance=args.tolerance,
                    quantile=args.quantile,
                )  # fmt: skip
                jobs.append((f"m4 {name} (n={n})", req))
        for name, req in jobs:
            t0 = time.perf_counter()
            result, spec = run_backtest(con, req)
            took = time.perf_counter() - t0
            if not args.quiet:
                print(
                    f"\n== {name}: {req.start:%Y-%m-%d %H:%M} .. {req.end:%Y-%m-%d %H:%M}, "
                    f"lead {req.lead} h, unit {spec.capacity_players:g}, policy margin "
                    f"{spec.safety_margin:g}, tolerance {spec.tolerance:g}, ref margin "
                    f"{req.margin:g}, {took:.1f} s"
                )
                print(format_table(result))
            lines.append(summary_line(name, result, took))
            if req.game_type != "m4":
                group = "sample"
            else:
                group = "m4 hold-out" if req.region in holdout else "m4 tuned"
            row = (
                result.policy.hours_short,
                result.reactive_at_idle.hours_short,
                result.seasonal_at_idle.hours_short,
                result.policy.changes,
                result.reactive.changes,
            )
            acc = groups.setdefault(group, [0] * len(row))
            groups[group] = [a + b for a, b in zip(acc, row, strict=True)]
        con.close()
    print("\n== summary (hours short at the policy's idle capacity)")
    print("\n".join(lines))
    print("\n== totals: hours short policy/reactive@idle/seasonal@idle; changes policy/reactive")
    for group, (p, r, s_, cp, cr) in groups.items():
        print(
            f"{group:<12} short {p}/{r}/{s_} (x{_ratio(p, r)} react, x{_ratio(p, s_)} seas)  "
            f"changes {cp}/{cr}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
