"""Reliability and security rules R1-R16 (../shared/reference/reliability.md), one named test (or
more) per rule, each against the real component: a DuckDB file, the local moto server over HTTP,
GX through the ingest, real model fits, real processes killed with SIGKILL.

Many rules have deeper tests elsewhere (test_policy, test_aws_capacity, test_allocate,
test_ingest, test_concurrency_lock, test_forecast_pipeline, test_flows_config); these are the
rule's essential assertion through the public API, so that breaking the rule fails a test named
after it.
"""

from __future__ import annotations

import ast
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers_aws import (
    CallLog,
    desired,
    group,
    inject_error,
    instance_ids,
    make_group,
    mark_busy,
)
from helpers_aws import set_desired as set_group_desired
from helpers_reliability import (
    INJECTION,
    NOW,
    ROOT,
    find_keys,
    query,
    seed,
    spec,
    table_counts,
    tracked_files,
    write_metrics_csv,
)

from fleetcast.config import Settings, capacity_backend
from fleetcast.interface.cli import main as cli
from fleetcast.resources import db
from fleetcast.resources.aws import AwsBackend, GroupNotAllowed, botocore_config
from fleetcast.resources.db import DatabaseBusy
from fleetcast.resources.landing import PathRefused
from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.resources.registry import (
    ModelIntegrityError,
    champion_sets,
    load_model,
    model_key,
)
from fleetcast.stages.allocate import allocate, apply_and_record, plan
from fleetcast.stages.ingest import ingest_paths
from fleetcast.stages.orchestration import is_transient_error
from fleetcast.stages.overrides import clear_overrides, list_overrides, set_override
from models.names import InvalidName, check_name

FLEETCAST = str(Path(sys.executable).parent / "fleetcast")


def _backend(settings: Settings) -> tuple[AwsBackend, CallLog]:
    backend = AwsBackend(settings)
    return backend, CallLog(backend.client)


def _ingest(settings: Settings, *names: str) -> list:
    return ingest_paths(settings, [Path(n) for n in names], data_docs=False)


# ---------------------------------------------------------------------------------------------
# R1-R6: the capacity policy applied to real groups


def test_r01_target_clamped_to_min_max_and_step_bounded(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2, max_size=30)
    make_group(url, "b-asg", desired=2, max_size=30)
    fleets = [spec("a", max_size=8), spec("b", max_step_up=3)]
    seed(aws_settings, fleets, players=100_000.0)  # 1000 instances' worth
    backend, log = _backend(aws_settings)
    allocate(aws_settings, now=NOW, backend=backend)
    # moto accepts any value: what was SENT must respect the fleet's max and the step bound
    sent = {p["AutoScalingGroupName"]: p["DesiredCapacity"] for o, p in log.mutating
            if o == "SetDesiredCapacity"}  # fmt: skip
    assert sent == {"a-asg": 8, "b-asg": 5}  # fleets are applied concurrently: order is free
    assert (desired(url, "a-asg"), desired(url, "b-asg")) == (8, 5)


def test_r01_scale_in_step_is_exactly_the_limit(aws_settings: Settings) -> None:
    """Demand falls from 20 instances' worth to 1: a step-down limit of 3 sends exactly 17, then
    14 (not 16 or 18: an off-by-one in the limit shows here)."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=20)
    fleet = spec("a", max_step_down=3, scale_in_stabilisation_minutes=0)
    backend, log = _backend(aws_settings)
    for i, want in enumerate((17, 14)):
        now = NOW + timedelta(minutes=10 * i)
        ago = now - timedelta(minutes=5)
        seed(aws_settings, [fleet], players=100.0, observed=100.0, run_id=f"r{i}",
             created=ago, observed_at=ago)  # fmt: skip
        [d] = allocate(aws_settings, now=now, backend=backend)
        assert d.target == want and "step down limited to -3" in d.reason, d.reason
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [17, 14]
    assert desired(url, "a-asg") == 14


def test_r01_value_sent_never_exceeds_the_groups_max_size(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2, max_size=4)  # the group's MaxSize is below the fleet's
    seed(aws_settings, [spec("a", max_size=30)], players=100_000.0)
    backend, log = _backend(aws_settings)
    allocate(aws_settings, now=NOW, backend=backend)
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [4]
    assert all(p.get("MaxSize", 0) <= 30 for _, p in log.mutating)


def test_r02_no_call_inside_the_tolerance_band(aws_settings: Settings) -> None:
    """Observed demand is low and no stabilisation window applies, so only the band can hold a
    fleet: a cut of 2 of 10 (at the 20 % band) is not sent, a cut of 3 is, and the band never
    blocks a scale-up."""
    url = aws_settings.aws_endpoint_url or ""
    for name in ("a", "b", "c"):
        make_group(url, f"{name}-asg", desired=10)
    kw = dict(tolerance=0.2, scale_in_stabilisation_minutes=0)
    for name, region, players in (("a", "eu", 800.0), ("b", "us", 700.0), ("c", "ap", 1100.0)):
        seed(aws_settings, [spec(name, region=region, **kw)], players=players, observed=300.0)
    backend, log = _backend(aws_settings)
    a, b, c = sorted(allocate(aws_settings, now=NOW, backend=backend), key=lambda d: d.fleet)
    assert a.target == 10 and "tolerance band" in a.reason, a.reason  # needs 8: inside
    assert (b.target, c.target) == (7, 11), (b.reason, c.reason)
    sent = {p["AutoScalingGroupName"]: p["DesiredCapacity"] for o, p in log.mutating
            if o == "SetDesiredCapacity"}  # fmt: skip
    assert sent == {"b-asg": 7, "c-asg": 11}  # no mutating call for a
    assert [desired(url, f"{n}-asg") for n in "abc"] == [10, 7, 11]


def test_r02_oscillating_forecast_scale_in_waits_out_the_window(aws_settings: Settings) -> None:
    """Every 20 min a decision; the forecast is high once an hour (every third decision) and
    low otherwise, so the latest recommendation is often low while the window (60 min) still
    holds a high one: the highest wins and the fleet never scales in. Once the forecast stays
    low for a whole window, it does."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=10)
    fleet = spec("a", scale_in_stabilisation_minutes=60)
    backend, log = _backend(aws_settings)
    path = []
    for i in range(13):  # high at 0, 60, 120 min; low from then on
        now = NOW + timedelta(minutes=20 * i)
        high = i % 3 == 0 and i <= 6
        seed(aws_settings, [fleet], players=1000.0 if high else 300.0, observed=300.0,
             created=now - timedelta(minutes=5), observed_at=now - timedelta(minutes=5),
             run_id=f"r{i}")  # fmt: skip
        allocate(aws_settings, now=now, backend=backend)
        path.append(desired(url, "a-asg"))
    # 120 min was the last high one: 180 min still sees it (the window's edge), 200 min not
    assert path == [10] * 10 + [3] * 3, path
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [3]


def test_r03_forecast_drop_never_goes_below_observed_demand(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=10)
    seed(aws_settings, [spec("a", scale_in_stabilisation_minutes=0)], players=100.0,
         observed=900.0)  # fmt: skip
    backend, _ = _backend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert d.target >= 9 and desired(url, "a-asg") >= 9  # 900 players / 100 per instance


def test_r03_shadow_mode_changes_nothing(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    seed(aws_settings, [spec("a")], players=2000.0)
    backend, log = _backend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend, forecast_only=True)
    assert d.target == 20 and not d.applied
    assert log.mutating == [] and desired(url, "a-asg") == 2
    assert query(aws_settings.db_path, "select applied, mode from allocations") == [
        (False, "forecast_only")
    ]


@pytest.mark.parametrize("fault", ["none", "stale", "nan", "negative", "missing", "empty_window"])
def test_r04_fail_static_never_shrinks(aws_settings: Settings, fault: str) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=12)
    fleet = spec("a", scale_in_stabilisation_minutes=0)
    low = 100.0  # observed demand: 1 instance; only fail-static keeps 12
    if fault == "stale":  # made 10 h ago (freshness: 6 h), and it says 1 instance
        seed(aws_settings, [fleet], players=100.0, created=NOW - timedelta(hours=10),
             hours=range(0, 30), observed=low)  # fmt: skip
    elif fault == "nan":
        seed(aws_settings, [fleet], players=math.nan, observed=low)
    elif fault == "negative":
        seed(aws_settings, [fleet], players=-500.0, observed=low)
    elif fault == "none":  # the control: the same fleet does shrink on a sound forecast
        seed(aws_settings, [fleet], players=100.0, observed=low)
    elif fault == "missing":  # a forecast for another game type only
        seed(aws_settings, [fleet], players=100.0, observed=low)
        with db.session(aws_settings.db_path) as con:
            con.execute("update forecasts set game_type = 'other'").fetchall()
    else:  # no forecast and no data at all
        with db.session(aws_settings.db_path) as con:
            from fleetcast.stages.fleets import upsert_fleets

            upsert_fleets(con, [fleet])
    backend, log = _backend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    if fault == "none":
        assert d.status == "ok" and desired(url, "a-asg") == 1, d.reason
        return
    assert d.status == "fail_static", (d.status, d.reason)
    assert "fail-static" in d.reason and d.target >= 12
    assert desired(url, "a-asg") == 12
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == []
    [(status, reason)] = query(aws_settings.db_path, "select status, reason from allocations")
    assert status == "fail_static" and reason  # the run says why it could not scale


def test_r04_failed_validation_is_fail_static(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=12)
    seed(aws_settings, [spec("a", scale_in_stabilisation_minutes=0)], players=100.0,
         observed=100.0)  # fmt: skip
    backend, _ = _backend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend,
                   forecast_errors={"battle_royale": "validation failed: 3 rows"})  # fmt: skip
    assert d.status == "fail_static" and "validation failed" in d.reason
    assert desired(url, "a-asg") == 12


def test_r05_busy_instances_survive_scale_in(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=6)
    ids = [i["InstanceId"] for i in group(url, "a-asg")["Instances"]]
    busy = ids[:4]
    mark_busy(url, busy)
    seed(aws_settings, [spec("a", scale_in_stabilisation_minutes=0)], players=100.0,
         observed=100.0)  # fmt: skip
    backend, log = _backend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert d.target >= 4, d  # never below the busy count
    ops = [op for op, _ in log.mutating]
    assert ops.index("SetInstanceProtection") < ops.index("SetDesiredCapacity")
    left = {i["InstanceId"] for i in group(url, "a-asg")["Instances"]}
    assert set(busy) <= left and len(left) == d.target


def test_r05_busy_floor_holds_under_an_override_and_a_max(aws_settings: Settings) -> None:
    """The last rule of the policy: a capacity override of 1, or a max override of 2, still
    keeps the 4 busy instances (the earlier rules alone would send 1 or 2)."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=6)
    busy = instance_ids(url, "a-asg")[:4]
    mark_busy(url, busy)
    seed(aws_settings, [spec("a", scale_in_stabilisation_minutes=0)], players=100.0,
         observed=100.0)  # fmt: skip
    backend, log = _backend(aws_settings)
    for i, (kind, value) in enumerate((("capacity", 1), ("max", 2))):
        now = NOW + timedelta(minutes=i)
        with db.session(aws_settings.db_path) as con:
            clear_overrides(con, "a", now=now - timedelta(seconds=1))
            set_override(con, fleet="a", kind=kind, value=value, reason="test",
                         expires_at=now + timedelta(hours=1), now=now)  # fmt: skip
        [d] = allocate(aws_settings, now=now, backend=backend)
        assert d.target == 4 and "4 busy" in d.reason, (kind, d.reason)
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [4]
    assert set(busy) <= set(instance_ids(url, "a-asg")) and desired(url, "a-asg") == 4


def test_r06_second_run_makes_no_mutating_call(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    seed(aws_settings, [spec("a")], players=700.0)
    backend, log = _backend(aws_settings)
    allocate(aws_settings, now=NOW, backend=backend)
    first = list(log.mutating)
    assert ("SetDesiredCapacity", {"AutoScalingGroupName": "a-asg", "DesiredCapacity": 7,
            "HonorCooldown": False}) in first  # fmt: skip
    allocate(aws_settings, now=NOW + timedelta(minutes=1), backend=backend)
    assert log.mutating == first  # read first, nothing sent the second time
    assert [op for op, _ in log.calls[len(first) :]].count("DescribeAutoScalingGroups") >= 1


def test_r06_apply_reads_the_group_again_after_planning(aws_settings: Settings) -> None:
    """The group changes between plan and apply: apply acts on what it reads then, not on the
    plan's snapshot. Someone already set a's target (nothing to send); instances of b became
    busy (protected before the scale-in, and they survive it)."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    make_group(url, "b-asg", desired=6)
    seed(aws_settings, [spec("a")], players=700.0)
    seed(aws_settings, [spec("b", region="us", scale_in_stabilisation_minutes=0)],
         players=100.0, observed=100.0)  # fmt: skip
    backend, log = _backend(aws_settings)
    p = plan(aws_settings, now=NOW, backend=backend)
    assert {d.fleet: (d.current, d.target) for d in p.decisions} == {"a": (2, 7), "b": (6, 1)}
    set_group_desired(url, "a-asg", 7)  # between plan and apply
    busy = instance_ids(url, "b-asg")[:3]  # moto scales in from the front: these would go
    mark_busy(url, busy)
    log.calls.clear()
    a, b = apply_and_record(aws_settings, p, backend=backend)
    assert not a.applied and "nothing sent" in a.outcome, a.outcome
    assert [g for op, g in ((o, q.get("AutoScalingGroupName")) for o, q in log.mutating)
            if op == "SetDesiredCapacity"] == ["b-asg"]  # fmt: skip
    assert log.sent("SetInstanceProtection", "InstanceIds") == [sorted(busy)]
    assert set(busy) <= set(instance_ids(url, "b-asg"))
    assert desired(url, "b-asg") >= 3 and b.applied_desired == desired(url, "b-asg")


# ---------------------------------------------------------------------------------------------
# R7: AWS faults injected into botocore against the moto server


def test_r07_throttling_twice_then_success_with_standard_retries(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    seed(aws_settings, [spec("a")], players=500.0)
    backend, _ = _backend(aws_settings)
    cfg = botocore_config(aws_settings)
    assert cfg.retries["mode"] == "standard" and cfg.connect_timeout and cfg.read_timeout
    assert backend.client.meta.config.read_timeout == cfg.read_timeout
    seen = inject_error(backend.client, "SetDesiredCapacity", "Throttling", times=2)
    meta: list[dict] = []
    backend.client.meta.events.register(
        "after-call.autoscaling.SetDesiredCapacity",
        lambda parsed, **_: meta.append(parsed["ResponseMetadata"]),
    )
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert seen[0] == 2 and meta[-1]["RetryAttempts"] == 2
    assert d.applied and desired(url, "a-asg") == 5


def test_r07_scaling_activity_in_progress_is_deferred(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    seed(aws_settings, [spec("a")], players=500.0)
    backend, log = _backend(aws_settings)
    inject_error(backend.client, "SetDesiredCapacity", "ScalingActivityInProgress", times=1)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert not d.applied and "deferred" in d.outcome and desired(url, "a-asg") == 2
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [5]  # one attempt, absolute
    [d] = allocate(aws_settings, now=NOW + timedelta(minutes=5), backend=backend)
    assert d.applied and desired(url, "a-asg") == 5  # the next cycle sends the same target
    assert log.sent("SetDesiredCapacity", "DesiredCapacity") == [5, 5]
    assert all("DesiredCapacity" in p or op != "SetDesiredCapacity" for op, p in log.mutating)


def test_r07_a_hard_aws_error_is_recorded_and_the_run_goes_on(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2)
    make_group(url, "b-asg", desired=2)
    seed(aws_settings, [spec("a"), spec("b")], players=500.0)
    backend, _ = _backend(aws_settings)
    # only a's request fails: fleets are applied concurrently, so "the next request" could be b's
    inject_error(backend.client, "SetDesiredCapacity", "ValidationError", times=1, only="a-asg")
    a, b = allocate(aws_settings, now=NOW, backend=backend)
    assert "error" in a.outcome and not a.applied and b.applied
    assert (desired(url, "a-asg"), desired(url, "b-asg")) == (2, 5)


# ---------------------------------------------------------------------------------------------
# R8-R10: DuckDB writers, crashes, and the ingest ledger

HOLD = textwrap.dedent(
    """
    import sys, time
    from fleetcast.resources import db
    con = db.connect(sys.argv[1])
    con.execute("create table if not exists t (x integer)").fetchall()
    con.execute("insert into t values (1)").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def test_r08_second_writer_gets_a_clear_error_and_nothing_is_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "f.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "4"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("holding")
        t0 = time.monotonic()
        with pytest.raises(DatabaseBusy, match="in use by another fleetcast run"):
            db.connect(path, wait_seconds=0.5)
        assert time.monotonic() - t0 < 3  # bounded: it never blocks forever
        with db.session(path, wait_seconds=20) as con:  # waits for the first, then works
            con.execute("insert into t values (2)").fetchall()
    finally:
        holder.wait(10)
    assert query(path, "select x from t order by x") == [(1,), (2,)]


def test_r08_overlapping_runs_one_waits_or_gives_up(settings: Settings) -> None:
    with run_lock(settings, wait_seconds=1, label="first"):
        code = textwrap.dedent(
            """
            import sys
            from pathlib import Path
            from fleetcast.config import Settings
            from fleetcast.resources.locking import RunLockTimeout, run_lock
            try:
                with run_lock(Settings(db_path=Path(sys.argv[1])), wait_seconds=0.5):
                    print("got it")
            except RunLockTimeout as exc:
                print("timeout", exc)
            """
        )
        out = subprocess.run([sys.executable, "-c", code, str(settings.db_path)],
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        assert out.startswith("timeout"), out
    with run_lock(settings, wait_seconds=1, label="after"):
        pass  # released: the next run gets it
    assert RunLockTimeout.__mro__[1] is TimeoutError


# Runs the real `fleetcast ingest` CLI, but stops inside the batch's transaction (after the
# metrics and quarantine rows were written, just before the ledger row) so the kill lands there.
KILLED_INGEST = textwrap.dedent(
    """
    import sys, time
    import fleetcast.stages.ingest as ingest
    from fleetcast.interface.cli import main

    def stall(*args, **kwargs):
        print("in-transaction", flush=True)
        time.sleep(600)

    ingest._ledger = stall
    sys.exit(main(sys.argv[1:]))
    """
)


def test_r09_kill_9_mid_ingest_leaves_all_or_nothing_and_rerun_is_idempotent(
    settings: Settings,
) -> None:
    rows = 20_000
    write_metrics_csv(settings.landing_dir / "big.csv", rows)
    (settings.landing_dir / "big.csv").open("a").write(
        "2024-05-01T00:00:00,game_0,global,players,-1\n"
    )
    args = ["--db", str(settings.db_path), "ingest", "--landing", str(settings.landing_dir),
            "--no-docs", str(settings.landing_dir / "big.csv")]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("in-transaction"), line + (proc.stderr.read() if proc.stderr else "")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    # reopen (runs recovery): nothing of the batch, not even its quarantine rows
    assert table_counts(settings.db_path) == {"metrics": 0, "quarantine": 0, "ingest_batches": 0}

    # a plain CLI run killed at an arbitrary moment once it has the file open: all or nothing
    proc = subprocess.Popen([FLEETCAST, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not settings.db_path.with_suffix(".duckdb.wal").exists() and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    counts = table_counts(settings.db_path)
    assert counts in (
        {"metrics": 0, "quarantine": 0, "ingest_batches": 0},
        {"metrics": rows, "quarantine": 1, "ingest_batches": 1},
    ), counts

    # rerun to completion (in this process), then again: the second run adds nothing
    assert cli(args) == 0 and cli(args) == 0
    assert table_counts(settings.db_path)["metrics"] == rows
    assert table_counts(settings.db_path)["quarantine"] == 1
    ledger = query(settings.db_path, "select status, rows_in, rows_stored, rows_quarantined "
                   "from ingest_batches order by started_at")  # fmt: skip
    # one loaded batch; every later run of the same bytes a duplicate that changed nothing
    assert ledger[0] == ("loaded", rows + 1, rows, 1)
    assert ledger[1:] in ([("duplicate", 0, 0, 0)], [("duplicate", 0, 0, 0)] * 2)


def test_r09_a_rerun_past_the_checksum_adds_nothing(settings: Settings) -> None:
    """The same rows in other bytes (CRLF line ends, reversed order) pass the checksum, so the
    upsert itself must keep the natural key unique; one corrected value replaces the old one."""
    rows = 500
    write_metrics_csv(settings.landing_dir / "a.csv", rows)
    [first] = _ingest(settings, "a.csv")
    before = query(settings.db_path, "select * from metrics order by all")
    assert first.status == "loaded" and len(before) == rows
    header, *lines = (settings.landing_dir / "a.csv").read_text().splitlines()
    (settings.landing_dir / "b.csv").write_bytes(
        "\r\n".join([header, *reversed(lines)]).encode() + b"\r\n"
    )
    ts, game, region, metric, _ = lines[0].split(",")
    lines[0] = ",".join([ts, game, region, metric, "9999"])
    (settings.landing_dir / "c.csv").write_text("\n".join([header, *lines]) + "\n")
    b, c = _ingest(settings, "b.csv", "c.csv")
    assert (b.status, b.rows_stored, c.status, c.rows_stored) == ("loaded", rows, "loaded", rows)
    with db.session(settings.db_path) as con:
        assert con.sql(db.sql("ingest_metrics_duplicate_keys")).fetchall() == []
    after = query(settings.db_path, "select * from metrics order by all")
    assert len(after) == rows
    changed = [row for row in after if row not in before]
    assert [(r[1], r[4], r[5]) for r in changed] == [(game, 9999.0, c.batch_id)]
    # every other value keeps the batch that first stored it
    assert {r[5] for r in after} == {first.batch_id, c.batch_id}


WIDE = (
    "ts,game_type,region,players,cpu_cores\n"
    "2024-03-01T00:00:00,br,eu,100,4\n"  # 1 good: two values
    "2024-03-01T01:00:00,br,eu,,\n"  # 2 every metric cell empty: nothing to store
    "2024-03-01T02:00:00,br,eu,abc,5\n"  # 3 one bad cell: quarantined, its good cell stored
    "2024-03-01T03:00:00,br,eu,120,\n"  # 4 one empty cell (not measured): stored
    "yesterday,br,eu,100,4\n"  # 5 bad ts
    "2024-03-01T05:00:00,br,eu,nan,inf\n"  # 6 every cell bad
    "2024-03-01T06:00:00,br,eu,130,6\n"  # 7 good
)


def test_r10_wide_file_every_row_stored_or_quarantined(settings: Settings) -> None:
    """A wide row becomes one value per metric cell, so a row can vanish while it is parsed
    (no cell left): each input row must show up in the metrics (by its timestamp) or in the
    quarantine, and the ledger must add up."""
    (settings.landing_dir / "wide.csv").write_text(WIDE)
    [r] = _ingest(settings, "wide.csv")
    assert (r.kind, r.status, r.rows_in) == ("metrics_wide", "loaded", 7)
    q = dict(query(settings.db_path, "select row_number, reason from quarantine "
                   "where batch_id = ?", [r.batch_id]))  # fmt: skip
    assert sorted(q) == [2, 3, 5, 6] and all(q.values()), q
    assert "no metric values" in q[2] and "players" in q[3] and "ts" in q[5]
    stored = query(settings.db_path, "select hour(ts), metric, value from metrics order by all")
    assert stored == [(0, "cpu_cores", 4.0), (0, "players", 100.0), (2, "cpu_cores", 5.0),
                      (3, "players", 120.0), (6, "cpu_cores", 6.0),
                      (6, "players", 130.0)]  # fmt: skip
    rows_with_values = {h + 1 for h, _, _ in stored}
    assert rows_with_values | set(q) == set(range(1, 8))  # no row lost
    assert r.rows_stored == len(rows_with_values - set(q)) == 3
    assert r.rows_in == r.rows_stored + r.rows_quarantined == 3 + len(q)


HOSTILE = (
    "ts,game_type,region,metric,value\n"
    "2024-03-01T00:00:00,br,eu,players,1200\n"  # 1 good
    "2024-03-01T01:00:00,br,eu,players,abc\n"  # 2 wrong type
    "2024-03-01T02:00:00,br,eu,players,nan\n"  # 3 NaN
    "2024-03-01T03:00:00,br,eu,players,-inf\n"  # 4 infinity
    "2024-03-01T04:00:00,br,eu,players,1e15\n"  # 5 absurd
    "2999-01-01T00:00:00,br,eu,players,5\n"  # 6 far future
    "2024-03-01T00:00:00,br,eu,players,1300\n"  # 7 duplicate key of row 1
    f'2024-03-01T05:00:00,"{INJECTION}",eu,players,5\n'  # 8 injection as game type
    "2024-03-01T06:00:00,../../etc,eu,players,5\n"  # 9 a path as game type
    "yesterday,br,eu,players,5\n"  # 10 wrong type
    "2024-03-01T07:00:00,br,eu,players,7\n"  # 11 good
)


def test_r10_every_hostile_row_is_stored_or_quarantined_with_reason_and_run_id(
    settings: Settings,
) -> None:
    (settings.landing_dir / "hostile.csv").write_text(HOSTILE)
    [r] = _ingest(settings, "hostile.csv")
    assert (r.status, r.rows_in, r.rows_stored, r.rows_quarantined) == ("loaded", 11, 2, 9)
    q = dict(query(settings.db_path, "select row_number, reason from quarantine "
                   "where batch_id = ?", [r.batch_id]))  # fmt: skip
    assert sorted(q) == [2, 3, 4, 5, 6, 7, 8, 9, 10] and all(q.values())
    assert "finite" in q[3] and "finite" in q[4] and "unique" in q[7]
    assert "outside" in q[5] and "between" in q[6] and "regex" in q[8] and "regex" in q[9]
    # input = stored + quarantined, in the tables as in the ledger
    [(rin, rs, rq)] = query(settings.db_path, "select rows_in, rows_stored, rows_quarantined "
                            "from ingest_batches")  # fmt: skip
    stored = query(settings.db_path, "select count(*) from metrics where batch_id = ?",
                   [r.batch_id])[0][0]  # fmt: skip
    assert rin == stored + len(q) == rs + rq
    before = table_counts(settings.db_path)
    [again] = _ingest(settings, "hostile.csv")
    assert again.status == "duplicate" and table_counts(settings.db_path) == {
        **before,
        "ingest_batches": before["ingest_batches"] + 1,
    }


def test_r10_broken_and_empty_files_lose_nothing(settings: Settings) -> None:
    (settings.landing_dir / "broken.csv").write_text('ts,game_type,metric,value\n"open,a\n1,2\n')
    (settings.landing_dir / "empty.csv").write_text("ts,game_type,metric,value\n")
    (settings.landing_dir / "schema.csv").write_text("when,what\n1,2\n3,4\n")
    broken, empty, schema = _ingest(settings, "broken.csv", "empty.csv", "schema.csv")
    assert broken.status == "failed" and not broken.ok and broken.message
    assert empty.status == "rejected" and "empty" in empty.message
    assert schema.status == "rejected" and schema.rows_quarantined == 2  # whole file kept
    assert table_counts(settings.db_path) == {"metrics": 0, "quarantine": 2, "ingest_batches": 2}
    assert cli(["--db", str(settings.db_path), "ingest", "--landing", str(settings.landing_dir),
                "--no-docs", str(settings.landing_dir / "broken.csv")]) == 1  # fmt: skip


# ---------------------------------------------------------------------------------------------
# R11: retries and timeouts of the Prefect deployments


def test_r11_retries_only_safe_steps_and_timeouts_shorter_than_schedules() -> None:
    from prefect.flows import Flow
    from prefect.tasks import Task

    assert is_transient_error(DatabaseBusy("busy")) and is_transient_error(TimeoutError())
    for exc in (InvalidName("x"), PermissionError("no"), ValueError("bad row")):
        assert not is_transient_error(exc)
    import tasks

    retried = []
    for mod in sorted((ROOT / "tasks").glob("*.py")):
        module = __import__(f"tasks.{mod.stem}", fromlist=["_"])
        for obj in vars(module).values():
            if isinstance(obj, Task) and obj.retries:
                retried.append(obj.name)
                assert obj.retry_condition_fn is not None, obj.name  # never blind retries
                assert not any(k in obj.name for k in ("apply", "scale")), obj.name
    assert retried and tasks
    from fleetcast.stages.deployments import expand, load_config
    from flows.params import SAMPLE_GAME_TYPES

    config = expand(load_config(ROOT / "prefect.yaml"), list(SAMPLE_GAME_TYPES))
    checked = 0
    for dep in config["deployments"]:
        path, name = dep["entrypoint"].split(":")
        flow = getattr(__import__(path.removesuffix(".py").replace("/", "."), fromlist=["_"]),
                       name)  # fmt: skip
        assert isinstance(flow, Flow)
        for sched in dep.get("schedules") or []:
            if "interval" in sched:
                every = int(sched["interval"])
            else:
                every = 3600 if sched["cron"].split()[1] == "*" else 86400
            assert flow.timeout_seconds and flow.timeout_seconds < every, dep["name"]
            checked += 1
    assert checked


def test_r11_flaky_step_retried_and_slow_flow_times_out(prefect_harness: None) -> None:
    from prefect import flow, task

    from fleetcast.stages.orchestration import is_transient

    attempts: list[int] = []

    @task(name="flaky-read", retries=3, retry_delay_seconds=0, retry_condition_fn=is_transient)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise DatabaseBusy("busy")
        return len(attempts)

    @task(name="bad-input", retries=3, retry_delay_seconds=0, retry_condition_fn=is_transient)
    def bad() -> None:
        attempts.append(1)
        raise ValueError("validation failed")

    @flow(name="r11-flaky")
    def run_flaky() -> int:
        return flaky()

    @flow(name="r11-bad")
    def run_bad() -> None:
        bad()

    @flow(name="r11-slow", timeout_seconds=1)
    def slow() -> None:
        time.sleep(5)

    assert run_flaky() == 3
    attempts.clear()
    with pytest.raises(ValueError):
        run_bad()
    assert len(attempts) == 1  # not retried
    state = slow(return_state=True)
    assert state.is_failed() and state.name == "TimedOut"


# ---------------------------------------------------------------------------------------------
# R12-R16: permissions, secrets, names, models, paths


def test_r12_shipped_iam_policy_is_least_privilege() -> None:
    doc = json.loads((ROOT / "iam" / "fleetcast-policy.json").read_text())
    writes: set[str] = set()
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for a in actions:
            service, op = a.split(":")
            if op.startswith("Describe"):
                assert service in ("autoscaling", "ec2")
                continue
            writes.add(a)
            assert st["Resource"] != "*" and "autoScalingGroup" in st["Resource"]
            assert st["Condition"]["StringEquals"]["aws:ResourceTag/fleetcast:managed"] == "true"
    assert writes <= {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SetInstanceProtection",
        "autoscaling:CreateOrUpdateTags",  # only the processes-per-instance tag key
    }
    assert not any(w in json.dumps(doc).lower() for w in ("terminate", "delete", "iam:"))
    actions = [a for st in doc["Statement"] for a in st["Action"]]
    assert not [a for a in actions if a == "*" or a.endswith(":*")]
    # tagging may write one tag key only: without this condition the role could retag a group
    # fleetcast:managed=true and so put any group on its own allow-list
    [tagging] = [st for st in doc["Statement"] if "autoscaling:CreateOrUpdateTags" in st["Action"]]
    assert tagging["Action"] == ["autoscaling:CreateOrUpdateTags"]
    keys = tagging["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
    assert keys == ["fleetcast:processes-per-instance"]


def test_r12_group_off_the_allow_list_is_refused(aws_settings: Settings) -> None:
    """An untagged group and one tagged fleetcast:managed=false (having the tag is not enough:
    its value must be true) are both refused, by apply and by the backend itself."""
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=2, managed=False)
    make_group(url, "b-asg", desired=2, managed=False, tags={"fleetcast:managed": "false"})
    make_group(url, "c-asg", desired=2)  # the control: tagged true
    seed(aws_settings, [spec("a"), spec("b"), spec("c")], players=900.0)
    assert group(url, "b-asg")["Tags"][0]["Value"] == "false"
    backend, log = _backend(aws_settings)
    a, b, c = allocate(aws_settings, now=NOW, backend=backend)
    for d in (a, b):
        assert "allow-list" in d.reason and d.outcome.startswith("refused"), d
        assert not d.applied
    assert c.applied and "allow-list" not in c.reason
    assert log.touched == {"c-asg"}
    for name in ("a-asg", "b-asg"):  # defence in depth: the backend refuses on its own
        with pytest.raises(GroupNotAllowed):
            backend.set_desired(name, 5)
    assert (desired(url, "a-asg"), desired(url, "b-asg"), desired(url, "c-asg")) == (2, 2, 9)
    allowed = replace(aws_settings, allowed_groups=("a-asg",))
    [d, _, _] = allocate(allowed, now=NOW + timedelta(minutes=1), backend=AwsBackend(allowed))
    assert d.applied and desired(url, "a-asg") == 9  # on the list: changed
    assert desired(url, "b-asg") == 2


def test_r13_no_static_keys_in_tracked_files(tmp_path: Path) -> None:
    fake = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key, split so it is not one
    example = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"  # pragma: allowlist secret
    planted = f'aws_secret_access_key = "{example}"\n'
    assert find_keys(fake) and find_keys(planted)  # the scanner can see a key
    hits = []
    for path in tracked_files():
        if path.is_file() and path.suffix not in (".duckdb", ".parquet", ".png", ".lock"):
            found = find_keys(path.read_text(errors="ignore"))
            hits += [f"{path.relative_to(ROOT)}: {h[:8]}..." for h in found]
    assert hits == []
    src = (ROOT / "fleetcast" / "resources" / "aws.py").read_text()
    assert "aws_access_key_id" not in src and "aws_secret_access_key" not in src


@pytest.mark.parametrize("bad", [INJECTION, "../x", "Br", "a b", "", "x" * 65, "br;--"])
def test_r14_bad_names_refused_before_sql_and_tables_intact(settings: Settings, bad: str) -> None:
    with pytest.raises(InvalidName):
        check_name("game type", bad)
    seed(settings, [spec("a")], players=100.0)
    with db.session(settings.db_path) as con:
        from fleetcast.stages.fleets import load_fleets

        with pytest.raises(InvalidName):
            load_fleets(con, bad)
    with pytest.raises(InvalidName):
        allocate(settings, game_type=bad, now=NOW, backend=None, forecast_only=True)
    tables = {t for (t,) in query(settings.db_path, "show tables")}
    assert {"metrics", "fleets", "forecasts", "allocations"} <= tables
    assert query(settings.db_path, "select count(*) from fleets") == [(1,)]


@pytest.mark.parametrize(
    "reason", ["O'Brien's launch'); drop table fleets; --", "a'||'b", "it''s; select 1"]
)
def test_r14_override_reason_with_a_quote_is_bound_as_a_value(
    settings: Settings, reason: str
) -> None:
    """An operator's free text reaches SQL only as a bound value: it is stored and read back
    exactly (a reason pasted into the SQL text would fail, or store something else)."""
    seed(settings, [spec("a")], players=100.0)
    with db.session(settings.db_path) as con:
        o = set_override(con, fleet="a", kind="capacity", value=3, reason=reason,
                         expires_at=NOW + timedelta(hours=1), now=NOW)  # fmt: skip
        assert [x.reason for x in list_overrides(con, NOW)] == [reason]
    assert query(settings.db_path, "select override_id, reason from overrides") == [
        (o.override_id, reason)
    ]
    backend = capacity_backend(settings, "recorded")
    [d] = allocate(settings, now=NOW + timedelta(minutes=1), backend=backend, forecast_only=True)
    assert d.target == 3 and reason in d.reason
    assert query(settings.db_path, "select count(*) from fleets") == [(1,)]
    assert query(settings.db_path, "select reason from allocations")[0][0] == d.reason


def test_r14_injection_in_a_landed_file_is_quarantined(settings: Settings) -> None:
    (settings.landing_dir / "inj.csv").write_text(
        f'ts,game_type,metric,value\n2024-01-01T00:00:00,ok,players,1\n'
        f'2024-01-01T00:00:00,"{INJECTION}",players,2\n'
        f'2024-01-01T00:00:00,ok,"{INJECTION}",3\n'
    )  # fmt: skip
    [r] = _ingest(settings, "inj.csv")
    assert (r.rows_stored, r.rows_quarantined) == (1, 2)
    assert query(settings.db_path, "select game_type, metric from metrics") == [("ok", "players")]


def _train_small(settings: Settings, end: datetime) -> None:
    import numpy as np
    import polars as pl

    from fleetcast.stages.training import train_all

    ts = [end - timedelta(hours=120 - h) for h in range(120)]
    y = 1500 + 500 * np.sin(np.arange(120) * 2 * np.pi / 24)
    frame = pl.DataFrame(  # noqa: F841 (read by name in the SQL below)
        {"ts": ts, "game_type": "battle_royale", "region": "eu", "metric": "players",
         "value": y, "batch_id": "t"}
    )  # fmt: skip
    with db.session(settings.db_path) as con:
        con.execute("insert into metrics select * from frame").fetchall()
    train_all(settings, candidates=("mstl", "snaive24"))


def _tamper_all(settings: Settings) -> tuple[dict[str, str], set[str]]:
    """Change every stored model's JSON after training; returns what the registry refuses and
    the kinds stored."""
    with db.session(settings.db_path) as con:
        kinds = {k for (k,) in con.sql("select distinct kind from models").fetchall()}
        [(mid, text, sha)] = con.sql(
            "select model_id, model_json, sha256 from models where is_champion"
        ).fetchall()
        load_model(text, sha, mid)  # untouched: loads
        # every model's JSON changed, still valid JSON (a digit may be absent from one, '{' never)
        con.execute("update models set model_json = replace(model_json, '{', '{ ')").fetchall()
        [(text2,)] = con.sql("select model_json from models where model_id = ?",
                             params=[mid]).fetchall()  # fmt: skip
        with pytest.raises(ModelIntegrityError, match="sha256"):
            load_model(text2, sha, mid)
        sets = champion_sets(con, mac_key=model_key(settings))
        return dict(next(iter(sets.values())).refused), kinds


def test_r15_tampered_model_refused_and_fleet_not_shrunk(aws_settings: Settings) -> None:
    from fleetcast.stages.serving import forecast_all
    from models.clock import utcnow

    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=25)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    _train_small(aws_settings, now)
    refused, kinds = _tamper_all(aws_settings)
    # every stored model was changed (the combination is stored when both scored close enough)
    assert (
        {"mstl", "snaive24", "ensemble"} <= kinds <= {"mstl", "snaive24", "ensemble", "combination"}
    )
    assert set(refused) == kinds
    assert all("sha256" in why for why in refused.values())
    frame = forecast_all(aws_settings, 12)  # no stored model is used; the note says why
    assert "refused" in frame["note"][0] and frame["model_id"].null_count() == frame.height
    with db.session(aws_settings.db_path) as con:
        from fleetcast.stages.fleets import upsert_fleets

        upsert_fleets(con, [spec("a", scale_in_stabilisation_minutes=0)])
    backend, _ = _backend(aws_settings)
    [d] = allocate(aws_settings, backend=backend, now=utcnow() + timedelta(minutes=1),
                   forecast_errors={"battle_royale": frame["note"][0]})  # fmt: skip
    assert d.status == "fail_static" and "refused" in d.reason
    assert desired(url, "a-asg") == 25


def test_r15_r04_refused_models_alone_keep_the_fleet_in_the_hourly_cycle(
    aws_settings: Settings,
) -> None:
    from fleetcast.stages.serving import forecast_all
    from models.clock import utcnow

    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "a-asg", desired=25)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    _train_small(aws_settings, now)
    _tamper_all(aws_settings)
    forecast_all(aws_settings, 12)
    with db.session(aws_settings.db_path) as con:
        from fleetcast.stages.fleets import upsert_fleets

        upsert_fleets(con, [spec("a", scale_in_stabilisation_minutes=0)])
        con.execute("insert into metrics values (?, 'battle_royale', 'eu', 'players', 100, 'o')",
                    [now]).fetchall()  # fmt: skip
    [d] = allocate(
        aws_settings, backend=AwsBackend(aws_settings), now=utcnow() + timedelta(minutes=1)
    )
    assert desired(url, "a-asg") == 25, d.reason


def test_r15_no_pickle_anywhere() -> None:
    for folder in ("fleetcast", "models", "tasks", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                    bad = {"pickle", "cloudpickle", "dill", "joblib", "shelve"}
                    assert not bad & {n.split(".")[0] for n in names}, path


def test_r16_escaping_paths_and_symlinks_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("ts,game_type,metric,value\n2024-01-01,a,players,1\n")
    land = settings.landing_dir
    (land / "link.csv").symlink_to(outside / "secret.csv")
    (land / "linkdir").symlink_to(outside, target_is_directory=True)
    (land / "sub").mkdir()
    for given in ["../outside/secret.csv", "sub/../../outside/secret.csv",
                  str(outside / "secret.csv"), "link.csv", "linkdir/secret.csv", "linkdir",
                  "/etc/passwd"]:  # fmt: skip
        with pytest.raises(PathRefused):
            _ingest(settings, given)
        assert cli(["--db", str(settings.db_path), "ingest", "--landing", str(land),
                    "--no-docs", given]) == 2  # fmt: skip
    # a folder run skips nothing silently and reads nothing through the links
    with pytest.raises(PathRefused):
        _ingest(settings, ".")
    assert not settings.db_path.exists() or table_counts(settings.db_path)["metrics"] == 0


def test_r16_links_that_stay_inside_the_landing_folder_are_refused_too(settings: Settings) -> None:
    """Links whose target is inside the landing folder pass the containment check, so only the
    symlink check refuses them: a directory link in the middle of the path (``alias/x.csv``,
    ``sub/inner/x.csv``) as well as a file link."""
    land = settings.landing_dir
    (land / "real").mkdir()
    (land / "real" / "x.csv").write_text("ts,game_type,metric,value\n2024-01-01,a,players,1\n")
    (land / "alias").symlink_to(land / "real", target_is_directory=True)
    (land / "sub").mkdir()
    (land / "sub" / "inner").symlink_to(land / "real", target_is_directory=True)
    (land / "y.csv").symlink_to(land / "real" / "x.csv")
    for given in ("alias/x.csv", "sub/inner/x.csv", "y.csv", "alias", str(land / "alias/x.csv")):
        with pytest.raises(PathRefused, match="symlink"):
            _ingest(settings, given)
    assert not settings.db_path.exists()  # refused before anything was opened
    [r] = _ingest(settings, "real/x.csv")  # the control: the real file loads
    assert r.status == "loaded" and r.rows_stored == 1
