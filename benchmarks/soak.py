"""Fault soak: forecast-and-scale cycles for many fleets against a local moto server, with faults
injected at random (fixed seed), checking the safety rules after every cycle.

    .venv/bin/python benchmarks/soak.py [--cycles 200] [--fleets 20] [--seed 14]

Each cycle (10 simulated minutes): the observed demand of every fleet lands as a CSV and is
ingested (one row in five cycles is planted bad, so the quarantine is exercised); the forecaster
writes a forecast run (the true daily pattern, upper quantiles above it); then plan, apply and
record, as ``fleetcast scale`` does, against real moto groups. At most one fault per cycle:

- ``throttling``: two Throttling answers to DescribeAutoScalingGroups and SetDesiredCapacity
  (botocore's standard retries absorb them);
- ``scaling_in_progress``: ScalingActivityInProgress (HTTP 400) to the first SetDesiredCapacity;
- ``timeout``: two read timeouts (botocore ReadTimeoutError) before the requests leave;
- ``killed_apply``: the cycle runs in a subprocess that SIGKILLs itself after its first
  SetDesiredCapacity (state ``Crashed``: nothing recorded, the next cycle reads the groups);
- ``held_lock``: another process holds the DuckDB file for 2 s (the cycle waits, bounded);
- ``stale_forecast``: one fleet's forecasts stopped 90 min ago (freshness limit 1 h);
- ``nan_forecast``: one fleet's newest forecast is NaN;
- ``tampered_model``: one fleet's stored model fails its sha256 check, so the forecaster falls
  back to an unstored last resort and says so (as ``forecast_all`` does);
- ``busy_between``: instances of a fleet being scaled in become busy between plan and apply;
- ``bad_telemetry``: the exporter of every fleet switches units: its resource metrics
  (``cpu_cores``, ``memory_gb``) land divided (or multiplied) by 1000 for the next
  ``BAD_TELEMETRY_CYCLES`` cycles, longer than the 2-hour window processes per instance are
  learned from, so the learned value would follow them all the way (docs/operations.md
  "Processes per instance": the bounds must hold the last accepted value instead).

Every fleet reports its telemetry each cycle (sessions, players, CPU and memory per session
exactly what 4 processes of 25 players fit on one instance with 20% headroom: 100 players per
instance, the fleets' configured capacity), so processes per instance are learned live.

Checked after each cycle, per fleet, from the groups as moto has them: a *wrongful scale-in*
is a drop of the desired capacity below what the observed demand needs (no margin), below the
busy instances, or at all while the fleet's forecast was faulted (fail-static must hold); a busy
instance terminated counts too. *Rows lost*: rows written to the landing folder that are neither
in ``metrics`` nor in ``quarantine`` for their batch. Every cycle is bounded (``--cycle-timeout``)
and ends in a named state. Prints the table; exits 1 when a target (0 wrongful, 0 lost, no
unnamed state) is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

KINDS = (
    "throttling",
    "scaling_in_progress",
    "timeout",
    "killed_apply",
    "held_lock",
    "stale_forecast",
    "nan_forecast",
    "tampered_model",
    "busy_between",
    "bad_telemetry",
)
BAD_TELEMETRY_CYCLES = 15  # 2.5 h of wrong units: more than the 2 h learning window
CPU_PER_SESSION, MEM_PER_SESSION, PLAYERS_PER_SESSION = 3.2, 0.8, 25.0  # 4 per 16-core instance
FORECAST_FAULTS = {"stale_forecast", "nan_forecast", "tampered_model"}
T0 = datetime(2024, 5, 1, 0, 0)
STEP = timedelta(minutes=10)
CAPACITY = 100.0
BUSY_TAG = "fleetcast:busy"

KILLED_APPLY = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from pathlib import Path
    from fleetcast.config import Settings
    from fleetcast.resources.aws import AwsBackend
    from fleetcast.stages.allocate import allocate

    db, landing, url, now = sys.argv[1:5]
    settings = Settings(db_path=Path(db), landing_dir=Path(landing), aws_endpoint_url=url,
                        freshness_hours=1)
    backend = AwsBackend(settings)
    def die(**_):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-apply: after the first change went out
    backend.client.meta.events.register("after-call.autoscaling.SetDesiredCapacity", die)
    allocate(settings, now=datetime.fromisoformat(now), backend=backend)
    print("completed", flush=True)
    """
)

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


class CycleTimeout(Exception):
    pass


def demand(i: int, ts: datetime) -> float:
    """Fleet i's true players at ts: a daily pattern peaking at 20:00."""
    base = 300.0 + 100.0 * i
    hour = ts.hour + ts.minute / 60
    return base * (1.0 + 0.6 * math.sin(2 * math.pi * (hour - 14) / 24))


class Soak:
    def __init__(self, folder: Path, url: str, fleets: int, seed: int) -> None:
        import boto3

        from fleetcast.config import Settings
        from fleetcast.resources import db
        from fleetcast.resources.aws import AwsBackend
        from fleetcast.resources.local_aws import provision_groups
        from fleetcast.stages.fleets import upsert_fleets
        from models.policy import FleetSpec

        self.rng = random.Random(seed)
        self.url = url
        landing = folder / "landing"
        landing.mkdir()
        self.settings = Settings(
            db_path=folder / "soak.duckdb",
            landing_dir=landing,
            work_dir=folder / "work",
            aws_endpoint_url=url,
            freshness_hours=1,
            process_window_hours=2,
        )
        self.specs = [
            FleetSpec(
                fleet=f"f{i:02d}",
                game_type=f"game_{i:02d}",
                region="eu",
                asg_name=f"f{i:02d}-asg",
                capacity_players=CAPACITY,
                min_size=1,
                max_size=40,
                mode="scale",
                processes_per_instance=4,
                capacity_cpu=16.0,
                capacity_memory_gb=32.0,
            )
            for i in range(fleets)
        ]
        with db.session(self.settings.db_path) as con:
            upsert_fleets(con, self.specs)
        start = [math.ceil(demand(i, T0) * 1.1 / CAPACITY) for i in range(fleets)]
        provision_groups(
            url,
            self.settings.aws_region,
            [(s.asg_name, 1, 40, n) for s, n in zip(self.specs, start, strict=True)],
        )
        self.backend = AwsBackend(self.settings)
        self.asg = boto3.client("autoscaling", endpoint_url=url, region_name="us-east-1")
        self.ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
        self.busy: dict[str, dict[str, int]] = {s.asg_name: {} for s in self.specs}  # id -> until
        self.stopped: dict[str, datetime] = {}  # fleet -> forecasts stopped at
        self.written: dict[str, int] = {}  # batch file -> rows written
        self.faults: Counter[str] = Counter()
        self.bad_units: tuple[int, float] | None = None  # (until cycle, factor) of bad telemetry
        self.sources: Counter[str | None] = Counter()  # decisions by processes source
        self.states: Counter[str] = Counter()
        self.wrongful: list[str] = []
        self.busy_lost: list[str] = []
        self.lock_waits: list[float] = []
        self.deferred = 0
        self.errors = 0
        from models.validation import FrameValidator

        self.validator = FrameValidator(None)  # one GX context for the soak, built before cycle 0
        self.timing: Counter[str] = Counter()

    # -- the world ------------------------------------------------------------------------
    def groups(self) -> dict[str, dict[str, Any]]:
        names = [s.asg_name for s in self.specs]
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), 50):
            resp = self.asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=names[start : start + 50]
            )
            for g in resp["AutoScalingGroups"]:
                out[g["AutoScalingGroupName"]] = g
        return out

    def tag_busy(self, asg_name: str, ids: list[str], until: int) -> None:
        if ids:
            self.ec2.create_tags(Resources=ids, Tags=[{"Key": BUSY_TAG, "Value": "true"}])
            for i in ids:
                self.busy[asg_name][i] = until

    def release_busy(self, cycle: int) -> None:
        for ids in self.busy.values():
            done = [i for i, until in ids.items() if until <= cycle]
            if done:
                self.ec2.delete_tags(Resources=done, Tags=[{"Key": BUSY_TAG}])
                for i in done:
                    del ids[i]

    # -- one cycle's stages -----------------------------------------------------------------
    def land_and_ingest(self, cycle: int, now: datetime) -> dict[str, float]:
        from fleetcast.resources import db
        from fleetcast.resources.landing import resolve_inputs
        from fleetcast.stages.ingest import ingest_file

        observed = {
            s.fleet: round(demand(i, now - timedelta(minutes=5)) * self.rng.uniform(0.95, 1.05), 1)
            for i, s in enumerate(self.specs)
        }
        ts = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
        lines = ["ts,game_type,region,metric,value"]
        lines += [f"{ts},{s.game_type},{s.region},players,{observed[s.fleet]}" for s in self.specs]
        units = 1.0
        if self.bad_units is not None and cycle < self.bad_units[0]:
            units = self.bad_units[1]
        for s in self.specs:
            sessions = observed[s.fleet] / PLAYERS_PER_SESSION
            for metric, value in (
                ("sessions", sessions),
                ("cpu_cores", sessions * CPU_PER_SESSION * units),
                ("memory_gb", sessions * MEM_PER_SESSION * units),
            ):
                lines.append(f"{ts},{s.game_type},{s.region},{metric},{value:.6g}")
        if cycle % 5 == 0:  # a planted bad row: must be quarantined, not lost
            lines.append(
                f"{ts},{self.specs[0].game_type},eu,players,{self.rng.choice(['nan', '-3', 'x'])}"
            )
        name = f"obs-{cycle:04d}.csv"
        (self.settings.landing_dir / name).write_text("\n".join(lines) + "\n")
        self.written[name] = len(lines) - 1
        [path] = resolve_inputs(self.settings.landing_dir, [Path(name)])
        with db.session(self.settings.db_path) as con:
            ingest_file(con, self.settings, self.validator, path)
        return observed

    def forecast(self, now: datetime, fault: str | None, victim: int) -> None:
        import polars as pl

        from fleetcast.resources import db
        from fleetcast.resources.registry import ModelIntegrityError, load_model, model_hash

        run_id = f"soak-{now:%Y%m%dT%H%M}"
        hour = now.replace(minute=0)
        rows = []
        for i, s in enumerate(self.specs):
            if s.fleet in self.stopped:
                continue  # this fleet's forecasts stopped (stale)
            note, model_id = None, "m-" + s.fleet
            nan = fault == "nan_forecast" and i == victim
            if fault == "tampered_model" and i == victim:
                stored = json.dumps({"model": "snaive24", "fleet": s.fleet})
                try:
                    load_model(stored.replace("snaive", "snaivE"), model_hash(stored), model_id)
                except ModelIntegrityError as exc:  # what the registry does with a tampered row
                    note, model_id = f"all stored models refused: {exc}", None
            for h in range(-1, 8):
                ts = hour + timedelta(hours=h)
                y = math.nan if nan else demand(i, ts)
                rows.append(
                    {
                        "run_id": run_id,
                        "game_type": s.game_type,
                        "region": s.region,
                        "metric": "players",
                        "ts": ts,
                        "yhat": y,
                        "yhat_lower": y * 0.85,
                        "yhat_upper": y * 1.15,
                        "model": "snaive24" if model_id else "last_resort",
                        "model_id": model_id,
                        "created_at": now,
                        "yhat_q90": y * 1.1,
                        "note": note,
                    }
                )
        frame = pl.DataFrame(rows, schema_overrides={"model_id": pl.String, "note": pl.String})
        with db.session(self.settings.db_path) as con, db.transaction(con):
            con.register("new_forecasts", frame)
            try:
                con.execute(db.sql("forecast_insert")).fetchall()
            finally:
                con.unregister("new_forecasts")

    def inject(self, fault: str | None) -> list[tuple[str, str]]:
        """Register the botocore handlers of an AWS fault; returns them for removal."""
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ReadTimeoutError

        if fault not in ("throttling", "scaling_in_progress", "timeout"):
            return []
        plan = {
            "throttling": [("DescribeAutoScalingGroups", 2), ("SetDesiredCapacity", 2)],
            "scaling_in_progress": [("SetDesiredCapacity", 1)],
            "timeout": [("DescribeAutoScalingGroups", 2), ("SetDesiredCapacity", 2)],
        }[fault]
        code = "Throttling" if fault == "throttling" else "ScalingActivityInProgress"
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>soak"
            f"</Message></Error><RequestId>x</RequestId></ErrorResponse>"
        ).encode()

        class Raw:
            def stream(self, **_: Any) -> Any:
                yield body

        registered = []
        for op, times in plan:
            left = [times]

            def handler(request: Any, _left: list[int] = left, **_: Any) -> Any:
                if _left[0] <= 0:
                    return None
                _left[0] -= 1
                if fault == "timeout":
                    raise ReadTimeoutError(endpoint_url=request.url)
                return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, Raw())

            event = f"before-send.autoscaling.{op}"
            uid = f"soak-{op}-{time.monotonic_ns()}"
            self.backend.client.meta.events.register(event, handler, unique_id=uid)
            registered.append((event, uid))
        return registered

    def cycle(self, cycle: int, now: datetime, timeout: float) -> str:
        from fleetcast.stages.allocate import apply_and_record, plan

        fault = self.rng.choice(KINDS) if self.rng.random() < 0.6 else None
        victim = self.rng.randrange(len(self.specs))
        if fault:
            self.faults[fault] += 1
        self.release_busy(cycle)
        before = {n: int(g["DesiredCapacity"]) for n, g in self.groups().items()}
        # sessions start now and then on their own (busy before the plan)
        if self.rng.random() < 0.3:
            s = self.specs[self.rng.randrange(len(self.specs))]
            g = self.groups()[s.asg_name]
            ids = [i["InstanceId"] for i in g["Instances"]][:2]
            self.tag_busy(s.asg_name, ids, cycle + 3)
        held: set[str] = set()
        if fault == "bad_telemetry":
            self.bad_units = (cycle + BAD_TELEMETRY_CYCLES, self.rng.choice([1e-3, 1e3]))
        if fault == "stale_forecast":
            s = self.specs[victim]
            self.stopped[s.fleet] = now
            self._drop_recent_forecasts(s, now - timedelta(minutes=90))
        for fleet, since in list(self.stopped.items()):
            if now - since > timedelta(minutes=40):
                del self.stopped[fleet]  # the forecaster serves the fleet again
            else:
                held.add(fleet)
        if fault in ("nan_forecast", "tampered_model"):
            held.add(self.specs[victim].fleet)
        holder = None
        registered: list[tuple[str, str]] = []
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(CycleTimeout()))
        signal.setitimer(signal.ITIMER_REAL, timeout)
        t0 = time.monotonic()
        try:
            if fault == "held_lock":
                holder = subprocess.Popen(
                    [sys.executable, "-c", HOLD, str(self.settings.db_path), "2"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
            observed = self.land_and_ingest(cycle, now)
            if fault == "held_lock":
                self.lock_waits.append(time.monotonic() - t0)
            self.timing["ingest"] += time.monotonic() - t0
            t1 = time.monotonic()
            self.forecast(now, fault, victim)
            self.timing["forecast"] += time.monotonic() - t1
            t1 = time.monotonic()
            busy_now = {n: set(ids) for n, ids in self.busy.items()}
            if fault == "killed_apply":
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        KILLED_APPLY,
                        str(self.settings.db_path),
                        str(self.settings.landing_dir),
                        self.url,
                        now.isoformat(),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                state = (
                    "Crashed"
                    if out.returncode == -signal.SIGKILL
                    else ("Completed" if out.returncode == 0 else f"Failed(exit {out.returncode})")
                )
            else:
                registered = self.inject(fault)
                p = plan(self.settings, now=now, backend=self.backend)
                if fault == "busy_between":
                    shrinking = [
                        d for d in p.decisions if d.current is not None and d.target < d.current
                    ]
                    d = shrinking[0] if shrinking else p.decisions[victim]
                    g = self.groups()[d.asg_name]
                    ids = [i["InstanceId"] for i in g["Instances"]][:3]  # moto drops these first
                    self.tag_busy(d.asg_name, ids, cycle + 2)
                    busy_now[d.asg_name] = set(self.busy[d.asg_name])
                self.timing["plan"] += time.monotonic() - t1
                t1 = time.monotonic()
                done = apply_and_record(self.settings, p, backend=self.backend)
                self.timing["apply"] += time.monotonic() - t1
                self.deferred += sum("deferred" in d.outcome for d in done)
                self.errors += sum(d.outcome.startswith("error") for d in done)
                self.sources.update(d.inputs.get("processes", {}).get("source") for d in done)
                state = "Completed"
        except CycleTimeout:
            state = "TimedOut"
        except Exception as exc:  # a named failed state, never a crash of the soak
            state = f"Failed({type(exc).__name__})"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for event, uid in registered:
                self.backend.client.meta.events.unregister(event, unique_id=uid)
            if holder is not None:
                holder.wait(30)
        self.states[state] += 1
        if state.startswith(("Completed", "Crashed")):
            self.check(cycle, fault, before, observed, busy_now, held)
        return state

    def _drop_recent_forecasts(self, spec: Any, since: datetime) -> None:
        from fleetcast.resources import db

        with db.session(self.settings.db_path) as con:
            con.execute(
                "delete from forecasts where game_type = ? and region = ? and created_at > ?",
                [spec.game_type, spec.region, since],
            ).fetchall()

    def check(
        self,
        cycle: int,
        fault: str | None,
        before: dict[str, int],
        observed: dict[str, float],
        busy: dict[str, set[str]],
        held: set[str],
    ) -> None:
        after = self.groups()
        for s in self.specs:
            g = after[s.asg_name]
            new, old = int(g["DesiredCapacity"]), before[s.asg_name]
            live = {i["InstanceId"] for i in g["Instances"]}
            lost = busy[s.asg_name] - live
            if lost:
                self.busy_lost.append(f"cycle {cycle} {s.fleet}: busy {sorted(lost)} gone")
            if new >= old:
                continue
            need = math.ceil(observed[s.fleet] / CAPACITY - 1e-9)
            why = []
            if new < need:
                why.append(f"below observed need {need}")
            if new < len(busy[s.asg_name]):
                why.append(f"below {len(busy[s.asg_name])} busy")
            if s.fleet in held:
                why.append("during a fail-static hold")
            if why:
                self.wrongful.append(
                    f"cycle {cycle} ({fault}) {s.fleet}: {old} -> {new}, " + ", ".join(why)
                )

    def rows_lost(self) -> tuple[int, int, int, int]:
        from fleetcast.resources import db

        with db.session(self.settings.db_path, read_only=True) as con:
            ledger = dict(
                con.sql(
                    "select file, batch_id from ingest_batches where status = 'loaded'"
                ).fetchall()
            )
            stored = dict(con.sql("select batch_id, count(*) from metrics group by all").fetchall())
            quar = dict(
                con.sql("select batch_id, count(*) from quarantine group by all").fetchall()
            )
        written = sum(self.written.values())
        kept = sum(stored.get(ledger.get(f), 0) for f in self.written)
        quarantined = sum(quar.get(ledger.get(f), 0) for f in self.written)
        return written, kept, quarantined, written - kept - quarantined


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--fleets", type=int, default=20)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--cycle-timeout", type=float, default=90.0, help="seconds per cycle")
    args = p.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto's dummy values only
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")  # noqa: S105 - moto's dummy
    from fleetcast.resources.local_aws import moto_server

    print(machine())
    stop: list[int] = []
    # SIGTERM / Ctrl-C: finish the cycle in progress, then print the summary of those run
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, moto_server() as moto:
        soak = Soak(Path(tmp), moto.url, args.fleets, args.seed)
        slowest, ran = 0.0, 0
        try:
            for c in range(args.cycles):
                if stop:
                    break
                c0 = time.monotonic()
                state = soak.cycle(c, T0 + c * STEP, args.cycle_timeout)
                ran += 1
                slowest = max(slowest, time.monotonic() - c0)
                if c % 20 == 0 or not state.startswith(("Completed", "Crashed")):
                    print(f"cycle {c:3d}: {state} ({time.monotonic() - c0:.1f} s)", flush=True)
        except KeyboardInterrupt:
            pass
        written, kept, quarantined, lost = soak.rows_lost()
    named = sum(v for k, v in soak.states.items() if k.split("(")[0] in
                ("Completed", "Crashed", "TimedOut", "Failed"))  # fmt: skip
    print()
    took = time.monotonic() - t0
    print(f"cycles                     {ran} of {args.cycles} for {args.fleets} fleets, seed "
          f"{args.seed}, {took:.0f} s (slowest cycle {slowest:.1f} s)")  # fmt: skip
    print("faults by kind             " + ", ".join(f"{k} {soak.faults[k]}" for k in KINDS))
    print(f"cycles without a fault     {ran - sum(soak.faults.values())}")
    states = ", ".join(f"{k} {v}" for k, v in sorted(soak.states.items()))
    print(f"cycles by final state      {states}")
    print(f"cycles in a named state    {named} of {ran}")
    print(f"wrongful scale-ins         {len(soak.wrongful)}")
    print(f"busy instances terminated  {len(soak.busy_lost)}")
    print(f"rows lost                  {lost} (written {written}: stored {kept}, "
          f"quarantined {quarantined})")  # fmt: skip
    print(f"deferred / error outcomes  {soak.deferred} / {soak.errors}")
    sources = ", ".join(f"{k} {v}" for k, v in sorted(soak.sources.items(), key=str))
    print(f"processes per instance     {sources} (decisions by source)")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in soak.timing.items())
    print(f"time by stage              {timing}")
    if soak.lock_waits:
        print(f"waits for the held lock    max {max(soak.lock_waits):.1f} s")
    for line in soak.wrongful[:20] + soak.busy_lost[:20]:
        print("  " + line)
    ok = not soak.wrongful and not soak.busy_lost and lost == 0 and named == ran
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
