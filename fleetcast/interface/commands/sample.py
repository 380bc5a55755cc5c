"""``fleetcast sample``: write seeded sample telemetry files into a landing folder."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from fleetcast.config import Settings

HELP = "write seeded sample game telemetry (metrics, sessions, events, fleets) as files"


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {value!r} (e.g. 2026-11-27T12:00:00Z)"
        ) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write into (default: the landing folder)")  # fmt: skip
    parser.add_argument("--days", type=int, default=30, help="days of hourly data (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--end", type=_iso, default=None,
                        help="last hour of data, ISO 8601 (default: current UTC hour)")  # fmt: skip
    parser.add_argument("--manifest", type=Path, default=None,
                        help="also write the manifest as JSON to this file")  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.interface.sample import generate

    out = args.out if args.out is not None else settings.landing_dir
    m = generate(out, days=args.days, seed=args.seed, end=args.end)
    print(f"sample data {m.start:%Y-%m-%d %H:%M} .. {m.end:%Y-%m-%d %H:%M} UTC "
          f"({m.days} days, seed {m.seed}, {len(m.fleets)} fleets) in {m.out_dir}")  # fmt: skip
    for f in m.files:
        bad = ", ".join(f"{k}={v}" for k, v in f.bad_rows.items()) or "none"
        print(f"  {f.path.name:<42} {f.kind:<13} {f.rows:>7} rows  planted bad: {bad}")
    nxt = m.future_tournament
    print(f"next tournament: {nxt.name} ({nxt.region}) {nxt.start:%Y-%m-%d %H:%M} .. "
          f"{nxt.end:%H:%M} UTC")  # fmt: skip
    if args.manifest is not None:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(m.to_json(), encoding="utf-8")
    return 0
