"""What the hourly cycle's forecasting costs: every series every hour (before) against only the
series due (``FLEETCAST_FORECAST_REFRESH_HOURS``, models/refresh.py), over a run of hours.

    make demo   # or any folder with a trained fleetcast.duckdb and its .fleetcast/model.key
    nice -n 10 .venv/bin/python benchmarks/hourly_forecast.py FOLDER --hours 6

The database is copied (the folder is not changed). Each simulated hour runs
``forecast_all(horizon)`` as the hourly flow does; "every series" forecasts all of them each
hour, "due only" passes the refresh period and the simulated hour, and the forecasts a run makes
are stamped with the simulated hour, so that the next run sees them an hour old. Columns: series
forecast, wall seconds, CPU seconds of this process and its pool workers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, table  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _run(settings, hours: int, horizon: int, refresh: int | None) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    from fleetcast.resources import db
    from fleetcast.stages.pages import series_count
    from fleetcast.stages.serving import forecast_all
    from models.clock import utcnow

    start = utcnow()
    rows: list[tuple[object, ...]] = []
    for h in range(hours):
        now = start + timedelta(hours=h)
        t0, c0 = time.perf_counter(), _cpu()
        made = forecast_all(settings, horizon, refresh=refresh, now=now)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        if made.height:  # stamp the run with the simulated hour
            with db.session(settings.db_path) as con:
                con.execute(
                    "update forecasts set created_at = ? where run_id = ?",
                    [now, made["run_id"][0]],
                ).fetchall()
        mode = "every series" if refresh is None else f"due only (refresh {refresh} h)"
        rows.append((mode, h, series_count(made), round(wall, 1), round(cpu, 1)))
        print(*rows[-1], sep="\t", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder", type=Path, help="a folder holding fleetcast.duckdb and .fleetcast/")
    p.add_argument("--hours", type=int, default=6)
    p.add_argument("--horizon", type=int, default=48)
    p.add_argument("--refresh", type=int, default=3)
    args = p.parse_args(argv)

    from fleetcast.config import Settings
    from fleetcast.resources.logs import quiet_libraries

    quiet_libraries()
    print(machine())
    out = []
    for refresh in (None, args.refresh):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / ".fleetcast"
            work.mkdir()
            shutil.copy(args.folder / ".fleetcast" / "model.key", work / "model.key")
            shutil.copy(args.folder / "fleetcast.duckdb", Path(tmp) / "fleetcast.duckdb")
            settings = replace(
                Settings.from_env(), db_path=Path(tmp) / "fleetcast.duckdb", work_dir=work
            )
            out += _run(settings, args.hours, args.horizon, refresh)
    print(table(("mode", "hour", "series forecast", "wall s", "CPU s"), out))
    for mode in dict.fromkeys(r[0] for r in out):
        mine = [r for r in out if r[0] == mode]
        cpu = sum(float(r[4]) for r in mine)  # type: ignore[arg-type]
        print(f"{mode}: {cpu:.1f} CPU s over {len(mine)} hours ({cpu / len(mine):.1f} per hour)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
