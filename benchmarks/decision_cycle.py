"""The hourly decision cycle at studio scale: plan (read every fleet's inputs, decide), apply
(AWS calls against a local moto server this script starts) and record, each timed, with moto's
own CPU time shown apart; peak memory.

    nice -n 10 .venv/bin/python benchmarks/decision_cycle.py --fleets 1000
    nice -n 10 .venv/bin/python benchmarks/decision_cycle.py --fleets 10000 --plan-only

No training in the setup: a fleet with a week of data or more is decided by the nowcast
(models/decision.py), which needs no trained model. Setup (not timed): N fleets = N/5 game types
x 5 regions, ``--days`` of hourly players each (default: the nowcast's whole feed window), one
managed Auto Scaling group per fleet on moto, and one cycle an hour before the timed one (what
the previous hour's run left: groups at their level, the processes tag written, one earlier
decision per fleet). The timed cycle is the next hour's, as the hourly flow runs it.

Columns: wall seconds; this process's own CPU seconds (all threads, and the decision worker
process the plan spawns with ``--decide-workers 2``) and the moto server's, apart: on a loaded
machine the wall time waits on other processes, the CPU seconds do not.

``--plan-only``: the plan alone (reads + decisions), against groups held in memory
(``RecordedBackend``: no moto), for sizes where creating the groups on moto would dominate.
The AWS requests of each stage are counted (botocore events), so a regression to per-group
reads shows.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, peak_rss_mb, table  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """User + system CPU seconds of this process so far (all its threads) and of its children
    that have ended (the plan's decision worker processes, once their pool is shut; the moto
    server ends after the measurement, so its time is not in it)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def setup(folder: Path, fleets: int, days: int, end, capacity: float):  # type: ignore[no-untyped-def]
    """The database: fleets and their hourly players up to ``end`` (inclusive)."""
    import numpy as np
    import polars as pl

    from fleetcast.config import Settings
    from fleetcast.resources import db
    from fleetcast.stages.fleets import upsert_fleets
    from models.policy import FleetSpec

    settings = Settings(db_path=folder / "f.duckdb", work_dir=folder / "work")
    hours = days * 24
    rng = np.random.default_rng(5)
    keys = [(f"game_{i // 5}", f"region-{i % 5}") for i in range(fleets)]
    t = np.arange(hours)
    start = end - timedelta(hours=hours - 1)
    base = 600 + 80 * (np.arange(fleets) % 25)  # 600-2,520 players at the daily mean
    shape = np.exp(0.5 * np.sin(2 * np.pi * (t % 24 - 14) / 24))
    values = base[:, None] * shape[None, :] * np.exp(rng.normal(0, 0.05, (fleets, hours)))
    frame = pl.DataFrame(  # noqa: F841 (read by name in the SQL below)
        {
            "ts": pl.datetime_range(start, end, "1h", eager=True, time_unit="us").to_list()
            * fleets,
            "game_type": np.repeat([g for g, _ in keys], hours),
            "region": np.repeat([r for _, r in keys], hours),
            "metric": "players",
            "value": values.ravel(),
            "batch_id": "bench",
        }
    )
    specs = [
        FleetSpec(
            fleet=f"{g}-{r}",
            game_type=g,
            region=r,
            asg_name=f"{g}-{r}-asg",
            capacity_players=capacity,
            min_size=1,
            max_size=80,
            mode="scale",
        )
        for g, r in keys
    ]
    with db.session(settings.db_path) as con:
        con.execute("insert into metrics select * from frame").fetchall()
        upsert_fleets(con, specs)
    first = [max(1, math.ceil(v / capacity)) for v in values[:, -2]]
    return settings, specs, first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fleets", type=int, default=100)
    p.add_argument(
        "--days",
        type=int,
        default=None,
        help="history per fleet (default: the nowcast's feed window)",
    )
    p.add_argument(
        "--players-per-instance",
        type=float,
        default=400.0,
        help="each fleet's instance capacity (default 400: 2-10 instances per group, so that "
        "moto's simulated EC2 instances, 15,000 at 100, do not drown the cycle)",
    )
    p.add_argument(
        "--plan-only", action="store_true", help="plan only, groups in memory (no moto, no apply)"
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="fleets per decision job (default: the product's DECIDE_BATCH; a number above "
        "--fleets decides every fleet in this process, for comparison)",
    )
    p.add_argument(
        "--decide-workers",
        type=int,
        default=None,
        help="this machine's workers for the decisions (default: allocate.decide_workers)",
    )
    args = p.parse_args(argv)
    from fleetcast.stages import allocate

    if args.batch is not None:
        allocate.DECIDE_BATCH = args.batch
    if args.decide_workers is not None:
        allocate.DECIDE_WORKERS = args.decide_workers

    from fleetcast.resources.aws import AwsBackend, GroupState, RecordedBackend
    from fleetcast.resources.local_aws import moto_server, provision_groups
    from fleetcast.stages.allocate import apply_and_record, plan
    from models.clock import utcnow
    from models.decision import decision_config, feed_hours

    days = args.days or math.ceil(feed_hours(decision_config_default(decision_config), 1) / 24)
    end = utcnow().replace(minute=0, second=0, microsecond=0)
    now = end + timedelta(minutes=5)  # the timed cycle: five past the newest hour
    before = now - timedelta(hours=1)  # the previous hour's cycle (setup)
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        t0 = time.perf_counter()
        settings, specs, first = setup(Path(tmp), args.fleets, days, end, args.players_per_instance)
        data_s = time.perf_counter() - t0
        if args.plan_only:
            backend = RecordedBackend(
                [
                    GroupState(s.asg_name, n, 1, 80, {"fleetcast:managed": "true"})
                    for s, n in zip(specs, first, strict=True)
                ]
            )
            plan(settings, backend=backend, now=before, game_type="game_0")  # warm imports
            own0, t0 = _own_cpu(), time.perf_counter()
            p_ = plan(settings, backend=backend, now=now)
            sec, own = time.perf_counter() - t0, _own_cpu() - own0
            rows = [
                (
                    "plan",
                    f"{sec:.2f}",
                    f"{sec / args.fleets * 1000:.1f}",
                    f"{own:.2f}",
                    f"{len(p_.decisions)} decisions; groups in memory",
                )
            ]
            from fleetcast.resources import db
            from fleetcast.stages.fleets import load_fleets
            from fleetcast.stages.plan_inputs import read_plan_inputs

            own0, t0 = _own_cpu(), time.perf_counter()  # the bulk reads alone (no decision)
            with db.session(settings.db_path, read_only=True) as con:
                inputs = read_plan_inputs(
                    con,
                    load_fleets(con),
                    now,
                    observed_max_age=timedelta(minutes=settings.observed_max_age_minutes),
                    ingest_window=timedelta(hours=settings.freshness_hours),
                )
            sec, own = time.perf_counter() - t0, _own_cpu() - own0
            rows.append(
                (
                    "(reads alone)",
                    f"{sec:.2f}",
                    f"{sec / args.fleets * 1000:.1f}",
                    f"{own:.2f}",
                    f"{len(inputs)} fleets' inputs in 6 queries",
                )
            )
            _report(args, days, data_s, None, rows)
            return 0
        with moto_server() as moto:
            settings = replace(settings, aws_endpoint_url=moto.url)
            t0 = time.perf_counter()
            provision_groups(
                moto.url,
                settings.aws_region,
                [(s.asg_name, 1, 80, n) for s, n in zip(specs, first, strict=True)],
            )
            backend = AwsBackend(settings)
            apply_and_record(settings, plan(settings, backend=backend, now=before), backend=backend)
            setup_s = time.perf_counter() - t0
            requests: list[str] = []
            for client in (backend.client, backend.ec2):
                client.meta.events.register(
                    "before-call", lambda model, **_: requests.append(model.name)
                )
            pid = moto.process.pid
            rows = []
            cpu0, own0, t0 = _cpu_seconds(pid), _own_cpu(), time.perf_counter()
            p_ = plan(settings, backend=backend, now=now)
            plan_s, plan_moto = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
            plan_own = _own_cpu() - own0
            rows.append(
                (
                    "plan",
                    f"{plan_s:.2f}",
                    f"{plan_s / args.fleets * 1000:.1f}",
                    f"{plan_own:.2f}",
                    f"{plan_moto:.2f}",
                    f"{len(p_.decisions)} decisions; {len(requests)} AWS requests",
                )
            )
            before_n = len(requests)
            cpu0, own0, t0 = _cpu_seconds(pid), _own_cpu(), time.perf_counter()
            done = apply_and_record(settings, p_, backend=backend)
            apply_s, apply_moto = time.perf_counter() - t0, _cpu_seconds(pid) - cpu0
            apply_own = _own_cpu() - own0
            changed = sum(d.applied for d in done)
            rows.append(
                (
                    "apply + record",
                    f"{apply_s:.2f}",
                    f"{apply_s / args.fleets * 1000:.1f}",
                    f"{apply_own:.2f}",
                    f"{apply_moto:.2f}",
                    f"{changed} changed; {len(requests) - before_n} AWS requests",
                )
            )
            total, moto_total = plan_s + apply_s, plan_moto + apply_moto
            rows.append(
                (
                    "cycle total",
                    f"{total:.2f}",
                    f"{total / args.fleets * 1000:.1f}",
                    f"{plan_own + apply_own:.2f}",
                    f"{moto_total:.2f}",
                    "target < 60 s for 1,000 fleets",
                )
            )
            _report(args, days, data_s, setup_s, rows)
    return 0


def decision_config_default(decision_config):  # type: ignore[no-untyped-def]
    from models.policy import FleetSpec

    return decision_config(FleetSpec("f", "g", "r", "a", 1.0, 1, 2))


def _report(args, days, data_s, setup_s, rows) -> None:  # type: ignore[no-untyped-def]
    from fleetcast.resources.pool import training_pool
    from fleetcast.stages import allocate

    print(machine())
    extra = "" if setup_s is None else f"; groups + the previous hour's cycle {setup_s:.1f} s"
    jobs = math.ceil(args.fleets / allocate.DECIDE_BATCH)
    kind, workers = training_pool(jobs, allocate.decide_workers(args.fleets))
    print(
        f"\n{args.fleets} fleets, {days} days of hourly players each; setup (not timed): "
        f"data {data_s:.1f} s{extra}; decided in {jobs} batches of up to "
        f"{allocate.DECIDE_BATCH} ({kind}, {workers} workers)\n"
    )
    header = ("stage", "seconds", "ms/fleet", "own CPU s", "note")
    if setup_s is not None:
        header = ("stage", "seconds", "ms/fleet", "own CPU s", "moto CPU s", "note")
    print(table(header, rows))
    print(f"\npeak RSS of the process (setup included): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
