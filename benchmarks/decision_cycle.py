"""The hourly decision cycle for 100 fleets once their models are trained: forecast (all series,
from the stored models), plan (read groups + decide), apply (AWS calls + record), each timed,
against a local moto server this script starts.

    .venv/bin/python benchmarks/decision_cycle.py [--fleets 100] [--horizon 24]

Setup (not timed): 100 fleets = 20 game types x 5 regions, 28 days of hourly players each,
trained as `fleetcast train` trains them by default (above 50 series: the global LightGBM panel
model plus the cheap local candidates, champion per series by rolling-origin CV; `--candidates`
to choose others); 100 managed Auto Scaling groups on moto. The AWS requests of each stage are
counted (botocore events), so a regression to per-group reads shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, peak_rss_mb, table  # noqa: E402


def setup(folder: Path, fleets: int, url: str, days: int, candidates: str | None):  # type: ignore[no-untyped-def]
    import numpy as np
    import polars as pl

    from fleetcast.config import Settings
    from fleetcast.resources import db
    from fleetcast.resources.local_aws import provision_groups
    from fleetcast.stages.fleets import upsert_fleets
    from fleetcast.stages.training import train_all
    from models.clock import utcnow
    from models.policy import FleetSpec

    settings = Settings(db_path=folder / "f.duckdb", work_dir=folder / "work",
                        aws_endpoint_url=url)  # fmt: skip
    end = utcnow().replace(minute=0, second=0, microsecond=0)
    hours = days * 24
    rng = np.random.default_rng(5)
    keys = [(f"game_{i // 5}", f"region-{i % 5}") for i in range(fleets)]
    t = np.arange(hours)
    ts = [end - timedelta(hours=hours - 1 - int(h)) for h in t]
    parts = []
    for n, (g, r) in enumerate(keys):
        y = (800 + 40 * n) * np.exp(0.5 * np.sin(2 * np.pi * (t % 24 - 14) / 24))
        parts.append(pl.DataFrame({"ts": ts, "game_type": g, "region": r, "metric": "players",
                                   "value": y * np.exp(rng.normal(0, 0.05, hours)),
                                   "batch_id": "bench"}))  # fmt: skip
    frame = pl.concat(parts)  # noqa: F841 (read by name in the SQL below)
    specs = [FleetSpec(fleet=f"{g}-{r}", game_type=g, region=r, asg_name=f"{g}-{r}-asg",
                       capacity_players=100.0, min_size=1, max_size=60, mode="scale")
             for g, r in keys]  # fmt: skip
    with db.session(settings.db_path) as con:
        con.execute("insert into metrics select * from frame").fetchall()
        upsert_fleets(con, specs)
    t0 = time.perf_counter()
    train_all(settings, candidates=tuple(candidates.split(",")) if candidates else None)
    trained = time.perf_counter() - t0
    provision_groups(url, settings.aws_region, [(s.asg_name, 1, 60, 5) for s in specs])
    return settings, trained


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fleets", type=int, default=100)
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--days", type=int, default=28, help="history per fleet")
    p.add_argument(
        "--candidates", default=None, help="training candidates (default: the product's)"
    )
    args = p.parse_args(argv)

    from fleetcast.resources.aws import AwsBackend
    from fleetcast.resources.local_aws import moto_server
    from fleetcast.stages.allocate import apply_and_record, plan
    from fleetcast.stages.serving import forecast_all
    from models.clock import utcnow

    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp, moto_server() as moto:
        settings, trained = setup(Path(tmp), args.fleets, moto.url, args.days, args.candidates)
        backend = AwsBackend(settings)
        requests: list[str] = []
        for client in (backend.client, backend.ec2):
            client.meta.events.register(
                "before-call", lambda model, **_: requests.append(model.name)
            )
        stages = []
        t0 = time.perf_counter()
        frame = forecast_all(settings, args.horizon)
        models = sorted(set(frame["model"].to_list()))
        stages.append(("forecast", time.perf_counter() - t0,
                       f"{frame.height} rows; models {','.join(models)}"))  # fmt: skip
        t0 = time.perf_counter()
        p_ = plan(settings, backend=backend, now=utcnow())
        stages.append(("plan", time.perf_counter() - t0,
                       f"{len(p_.decisions)} decisions; {len(requests)} AWS requests"))  # fmt: skip
        t0, before = time.perf_counter(), len(requests)
        done = apply_and_record(settings, p_, backend=backend)
        applied = sum(d.applied for d in done)
        stages.append(("apply + record", time.perf_counter() - t0,
                       f"{applied} changed; {len(requests) - before} AWS requests"))  # fmt: skip
        t0, before = time.perf_counter(), len(requests)  # again: groups right, nothing to send
        again = apply_and_record(settings, plan(settings, backend=backend, now=utcnow()),
                                 backend=backend)  # fmt: skip
        repeat = (time.perf_counter() - t0, sum(d.applied for d in again),
                  len(requests) - before)  # fmt: skip
    total = sum(s[1] for s in stages)
    rows = [(name, f"{sec:.2f}", f"{sec / args.fleets * 1000:.0f}", note)
            for name, sec, note in stages]  # fmt: skip
    per = f"{total / args.fleets * 1000:.0f}"
    rows.append(("cycle total", f"{total:.2f}", per, "target < 30 s"))
    again_ms = f"{repeat[0] / args.fleets * 1000:.0f}"
    rows.append(("(repeat plan+apply)", f"{repeat[0]:.2f}", again_ms,
                 f"{repeat[1]} changed; {repeat[2]} AWS requests"))  # fmt: skip
    print(machine())
    print(f"\n{args.fleets} fleets, horizon {args.horizon} h; setup (not in the cycle): "
          f"training {trained:.1f} s ({args.days} days each)\n")  # fmt: skip
    print(table(("stage", "seconds", "ms/fleet", "note"), rows))
    print(f"\npeak RSS of the process (setup included): {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
