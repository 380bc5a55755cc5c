"""Replay benchmark: the policy's cost / shortage curve against its own forecaster used as
capacity x (1 + m), reactive and the seasonal rule, at equal over-provisioning, through the same
code path as ``fleetcast backtest --sweep``, on real Steam demand, M4 and the sample.

    .venv/bin/python benchmarks/replay.py [--steam /work/shared/data/steam-dev]
        [--m4 /work/shared/data/m4-hourly] [--series H1,H2] [--no-sample] [--lead 1]
        [--weeks 4] [--fleets battle_royale/na-east,...] [--sample-days 35] [--limit N]

Steam: each game (``steam_<AppID>``, region ``global``) as stored (timestamps keep the
collector's seconds; the hourly loader averages within an hour; zero glitches left in), unit
capacity = the series mean / 1000, min 0, scored from 14 days after its first hour to its last.
Per data set and level the table averages each plan's share of hours short and unserved share
of demand over the series (a level the policy cannot reach on a series counts at reactive's
shortage there) and prints the policy / seasonal rule ratio of those averages.

Sample: ``fleetcast.interface.sample.generate`` (seed 7, fixed end) into a temporary folder,
the players metric, events and fleets loaded into a temporary DuckDB with plain inserts; the
last ``weeks`` weeks of each fleet are replayed with its fleets row (unit capacity, margin,
tolerance).
M4: each series (train + the 48 test values, hourly from 1970-01-01) is loaded into the same
temporary DuckDB as game type ``m4``, region = the series id; the last ``weeks`` weeks (from 14
days after the first hour at the earliest) are replayed with a unit capacity of mean / 1000,
min 0, margin 0.1.
The data stays outside the repository: the M4 folder is an argument.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from fleetcast.resources import db  # noqa: E402
from fleetcast.stages.backtest import BacktestRequest, SweepResult, run_sweep  # noqa: E402
from fleetcast.stages.fleets import read_fleet_file, upsert_fleets  # noqa: E402
from models.curve import LEVELS, format_rows  # noqa: E402
from models.names import is_valid_name  # noqa: E402

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


def load_steam(con, folder: Path) -> list[str]:
    """The long Steam file as stored (region ``global``); the game types, sorted."""
    frame = pl.read_csv(folder / "steam_players_hourly.csv", try_parse_dates=True)
    frame = frame.with_columns(pl.lit("global").alias("region")).select(
        "ts", "game_type", "region", "metric", "value"
    )
    _insert_metrics(con, frame)
    return sorted(frame["game_type"].unique().to_list())


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def steam_request(con, game: str, lead: int) -> BacktestRequest:
    first, last, mean = con.sql(
        "select min(ts), max(ts), avg(value) from metrics where game_type = ?", params=[game]
    ).fetchall()[0]
    start = _hour(first) + timedelta(days=14)
    return BacktestRequest(
        game, "players", start, lead, "global", _hour(last), unit_capacity=float(mean) / 1000
    )


@dataclass
class Group:
    """Per-series curve rows of one data set."""

    name: str
    rows: list[tuple[str, SweepResult]] = field(default_factory=list)

    def mean(self, plan: str, level: float, attr: str) -> float:
        vals = []
        for _, r in self.rows:
            by = {row.plan: row for row in r.rows}
            p = by[plan].at.get(level)
            if p is None and plan == "policy":
                p = by["reactive"].at.get(level)
            vals.append(float("nan") if p is None else getattr(p, attr))
        return float(np.nanmean(vals)) if vals else float("nan")

    def reached(self, level: float) -> int:
        return sum(1 for _, r in self.rows if {x.plan: x for x in r.rows}["policy"].at.get(level))

    def summary(self) -> str:
        plans = [row.plan for row in self.rows[0][1].rows]
        lines = [f"== {self.name}: {len(self.rows)} series, averages over the series"]
        head = f"{'plan':<22}"
        for lv in LEVELS:
            head += f" {'short@' + format(lv, '+.0%'):>11} {'unserv@' + format(lv, '+.0%'):>12}"
        head += f" {'changes@+10%':>13}"
        lines.append(head)
        for plan in plans:
            line = f"{plan:<22}"
            for lv in LEVELS:
                line += f" {self.mean(plan, lv, 'share_short'):>11.2%}"
                line += f" {self.mean(plan, lv, 'unserved'):>12.3%}"
            line += f" {self.mean(plan, 0.10, 'changes'):>13.1f}"
            lines.append(line)
        for ref in ("seasonal rule", "forecast x (1+m)"):
            line = f"{'policy / ' + ref:<22}"
            for lv in LEVELS:
                for attr, w in (("share_short", 11), ("unserved", 12)):
                    a, b = self.mean("policy", lv, attr), self.mean(ref, lv, attr)
                    ratio = a / b if b else float("inf")
                    line += f" {ratio:>{w - 1}.2f}x"
            lines.append(line)
        lowest = [{x.plan: x for x in r.rows}["policy"].lowest for _, r in self.rows]
        reach = ", ".join(f"{lv:+.0%} on {self.reached(lv)}" for lv in LEVELS)
        secs = max(r.seconds_per_setting for _, r in self.rows)
        lines.append(
            f"policy reaches {reach} of {len(self.rows)} series; lowest over-provisioning "
            f"median {float(np.median(lowest)):+.1%}, worst {max(lowest):+.1%}; "
            f"slowest replay {secs:.2f} s per knob setting"
        )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steam", type=Path, default=None, help="folder with steam_players_hourly.csv")
    ap.add_argument("--m4", type=Path, default=None, help="folder with m4_hourly_train.csv")
    ap.add_argument("--series", default=DEFAULT_M4, help="M4 series ids, comma-separated")
    ap.add_argument("--fleets", default=",".join(DEFAULT_FLEETS), help="game/region pairs")
    ap.add_argument("--no-sample", action="store_true", help="leave the sample out")
    ap.add_argument("--lead", type=int, default=1)
    ap.add_argument("--weeks", type=int, default=4, help="weeks scored (sample, M4: the last)")
    ap.add_argument("--sample-days", type=int, default=35)
    ap.add_argument("--limit", type=int, default=None, help="first N Steam games only")
    ap.add_argument("--games", default=None, help="Steam game types, comma-separated")
    ap.add_argument("--quiet", action="store_true", help="data set summaries only")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        con = db.connect(Path(tmp) / "bench.duckdb")
        jobs: list[tuple[str, str, BacktestRequest]] = []
        if args.steam is not None:
            games = load_steam(con, args.steam)
            if args.games:
                games = [g for g in games if g in set(args.games.split(","))]
            for game in games[: args.limit]:
                jobs.append(("steam-dev", game, steam_request(con, game, args.lead)))
        if args.m4 is not None:
            names = [s.strip() for s in args.series.split(",") if s.strip()]
            lengths = load_m4(con, args.m4, names)
            for name in names:
                mean = con.sql(
                    "select avg(value) from metrics where game_type = 'm4' and region = ?",
                    params=[name.lower()],
                ).fetchall()[0][0]
                end = datetime(1970, 1, 1) + timedelta(hours=lengths[name] - 1)
                # the last ``weeks`` weeks, at most: scored from 14 days after the first hour
                start_m4 = max(end - timedelta(hours=args.weeks * 168 - 1), datetime(1970, 1, 15))
                req = BacktestRequest(
                    "m4", "players", start_m4, args.lead, name.lower(), end,
                    unit_capacity=float(mean) / 1000, margin=0.1,
                )  # fmt: skip
                jobs.append(("m4", name, req))
        if not args.no_sample:
            from fleetcast.interface.sample import generate

            generate(Path(tmp) / "sample", days=args.sample_days, seed=7, end=SAMPLE_END)
            load_sample(con, Path(tmp) / "sample")
            start = SAMPLE_END - timedelta(hours=args.weeks * 168 - 1)
            for pair in args.fleets.split(","):
                game, region = pair.split("/")
                req = BacktestRequest(game, "players", start, args.lead, region, SAMPLE_END)
                jobs.append(("sample", pair, req))
        by_name: dict[str, Group] = {}
        for group, name, req in jobs:
            t0 = time.perf_counter()
            sweep = run_sweep(con, req)
            took = time.perf_counter() - t0
            g = by_name.setdefault(group, Group(group))
            g.rows.append((name, sweep))
            if not args.quiet:
                print(f"\n-- {group} {name}: {req.start:%Y-%m-%d %H:%M} .. {req.end:%Y-%m-%d %H:%M}"
                      f", lead {req.lead} h, {took:.1f} s")  # fmt: skip
                print(format_rows(sweep.rows))
            sys.stdout.flush()
        con.close()
    for g in by_name.values():
        print()
        print(g.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
