"""Where a series' training time goes: each candidate's ``fit`` / ``predict`` (and Prophet's
event-effect methods) timed inside ``models.selection.train_series``, in this process, on the
series of a fleetcast database (e.g. the one `make demo` leaves).

    .venv/bin/python benchmarks/train_profile.py fleetcast.duckdb [--series 6]

Prints each series (hours, champion, members, seconds), then the time per candidate method
with its number of calls and its share of the total. The database is opened read-only.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable (no effect on import)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from fleetcast.resources.logs import quiet_libraries  # noqa: E402
from fleetcast.stages.histories import events_for, load_events, load_histories  # noqa: E402
from models.selection import FORECASTERS, train_series  # noqa: E402

SECONDS: collections.defaultdict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()


class Timed:
    """A candidate whose every method call is timed into SECONDS / CALLS."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self.inner, attr)
        if not callable(method):
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                SECONDS[f"{self.name}.{attr}"] += time.perf_counter() - start
                CALLS[f"{self.name}.{attr}"] += 1

        return timed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--series", type=int, default=6, help="series spread over the database")
    args = ap.parse_args(argv)
    quiet_libraries()
    con = duckdb.connect(str(args.db), read_only=True)
    histories, events = load_histories(con, None, None), load_events(con)
    con.close()
    keys = list(histories)[:: max(1, len(histories) // args.series)][: args.series]
    start = time.perf_counter()
    for key in keys:
        t = time.perf_counter()
        fc = {n: Timed(FORECASTERS[n]()) for n in FORECASTERS}
        tr = train_series(histories[key], events_for(events, key), forecasters=fc, what="s")
        members = (tr.candidates[tr.champion].model or {}).get("members")
        print(f"{key.label()}: {len(histories[key])} h, {tr.champion} {members or ''}, "
              f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    total = time.perf_counter() - start
    print(f"total {total:.1f} s for {len(keys)} series")
    for name, sec in sorted(SECONDS.items(), key=lambda kv: -kv[1]):
        print(f"{name:<32} {sec:8.1f} s  {CALLS[name]:5d} calls  {100 * sec / total:4.0f}%")


if __name__ == "__main__":
    main()
