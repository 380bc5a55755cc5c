"""One decision path: ``fleetcast scale`` driven hour by hour over a replayed clock against a
moto server sets exactly the capacity ``fleetcast backtest`` plans for the same hours (same
forecaster, policy, window alignment and fleet state: min/max, an override)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest
from helpers_aws import REGION, desired, group, make_group

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.aws import BUSY_TAG, AwsBackend
from fleetcast.stages.allocate import allocate
from fleetcast.stages.backtest import BacktestRequest, run_backtest
from fleetcast.stages.fleets import upsert_fleets
from fleetcast.stages.overrides import set_override
from models.decision import lead_offsets
from models.policy import Budget, FleetSpec

T0 = datetime(2026, 3, 2)  # a Monday
DAYS = 9
LIVE_HOURS = 30


def _demand(hours: int, seed: int = 5) -> np.ndarray:
    """Daily and weekly cycle with noise, one evening spike a day (demand-like)."""
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    daily = np.exp(0.9 * (np.cos(2 * np.pi * (h % 24 - 20) / 24) - 1))
    weekly = 1 + 0.25 * ((h // 24) % 7 >= 5)
    spike = 1 + 0.6 * (h % 24 == 21) * rng.uniform(0, 1, hours)
    return np.round(1500 * daily * weekly * spike * np.exp(rng.normal(0, 0.05, hours)))


def _fleet(lead_minutes: int) -> FleetSpec:
    return FleetSpec(
        fleet="arena-eu",
        game_type="arena",
        region="eu",
        asg_name="arena-eu-asg",
        capacity_players=100.0,
        min_size=2,
        max_size=22,  # below the evening peak: the max binds some hours
        mode="scale",
        lead_time_minutes=lead_minutes,
    )


@pytest.mark.parametrize(("lead_minutes", "minute"), [(45, 20), (60, 0)])
def test_scale_over_a_replayed_clock_sets_what_the_backtest_plans(
    aws_settings: Settings, lead_minutes: int, minute: int
) -> None:
    url = aws_settings.aws_endpoint_url or ""
    y = _demand(24 * DAYS)
    ts = [T0 + timedelta(hours=i) for i in range(y.size)]
    spec = _fleet(lead_minutes)
    first = y.size - LIVE_HOURS  # index of the first live decision's hour
    with db.session(aws_settings.db_path) as con:
        upsert_fleets(con, [spec])
        con.executemany(
            "insert into metrics (ts, game_type, region, metric, value, batch_id) "
            "values (?, 'arena', 'eu', 'players', ?, 'b1')",
            [(t, float(v)) for t, v in zip(ts, y, strict=True)],
        )
        # a human raises the min for four hours in the middle of the replayed day
        made = ts[first + 8] + timedelta(minutes=minute)
        set_override(
            con,
            fleet=spec.fleet,
            kind="min",
            value=20,
            reason="launch event",
            expires_at=made + timedelta(hours=4),
            now=made,
        )
    make_group(url, spec.asg_name, desired=3, max_size=40)
    backend = AwsBackend(aws_settings)

    live: list[tuple[datetime, int]] = []
    for d in range(first, y.size):
        now = ts[d] + timedelta(minutes=minute)
        if d == first + 3:  # the evening peak: sessions start on 8 servers and outlast the night
            ids = [i["InstanceId"] for i in group(url, spec.asg_name)["Instances"]][:8]
            assert len(ids) == 8
            boto3.client("ec2", region_name=REGION, endpoint_url=url).create_tags(
                Resources=ids, Tags=[{"Key": BUSY_TAG, "Value": "true"}]
            )
        [dec] = allocate(aws_settings, now=now, backend=backend, run_id=f"r{d}")
        assert "error" not in dec.outcome and "refused" not in dec.outcome, dec.outcome
        live.append((now, desired(url, spec.asg_name)))

    # the backtest of the same hours: no warm-up, starting from the group's capacity
    lo = min(0, (30 - lead_minutes - minute) // 60)
    req = BacktestRequest(
        "arena",
        "players",
        ts[first - lo],
        1,
        "eu",
        ts[-1],
        lead_minutes=lead_minutes,
        decision_minute=minute,
        warmup_hours=0,
        initial_capacity=3,
    )
    with db.session(aws_settings.db_path, read_only=True) as con:
        result, _ = run_backtest(con, req)
        recorded = con.sql(
            "select inputs from allocations order by decided_at", params=[]
        ).fetchall()
    planned = [(d.decided_at, d.target) for d in result.decisions]
    assert planned == live
    # the case is not trivial: capacity moves both ways, the max, the override and the busy
    # servers bind,
    # and the nowcast (not a stored forecast) decided, recorded on every row
    targets = [t for _, t in live]
    assert len(set(targets)) >= 5
    assert 22 in targets and 20 in targets
    reasons = [d.reason for d in result.decisions]
    assert any("8 busy instances kept" in r for r in reasons)
    late = [t for (at, t) in live if at > ts[first + 3] + timedelta(minutes=minute)]
    assert min(late) == 8 < min(targets[:3] + [99])  # the busy floor binds at night
    assert any(b < a for a, b in zip(targets, targets[1:], strict=False))
    chosen = {json.loads(r[0])["decision_forecaster"].split(" ")[0] for r in recorded}
    assert chosen == {"nowcast"}
    if lead_minutes == 45:
        assert lead_offsets(45, 60, 20) == (1, 2)  # 06:05-07:05 from 05:20: hours 06 and 07


def _fleet_at_ten(aws_settings: Settings) -> tuple[str, FleetSpec, Path, datetime]:
    """One fleet (battle_royale/eu) whose group runs 10 instances and whose stored forecast
    alone would shrink it to 2; returns the moto URL, the fleet, the landing folder and now."""
    from helpers_reliability import seed
    from helpers_reliability import spec as rel_spec

    from fleetcast.stages.allocate import utcnow

    url = aws_settings.aws_endpoint_url or ""
    landing = aws_settings.landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    fleet = rel_spec()
    now = utcnow()
    make_group(url, fleet.asg_name, desired=10)
    seed(aws_settings, [fleet], players=200.0, created=now - timedelta(minutes=30))
    return url, fleet, landing, now


def test_a_failed_ingest_validation_of_the_fleets_series_keeps_capacity_and_says_why(
    aws_settings: Settings,
) -> None:
    """R4 wired in: the newest rows of the fleet's demand series were quarantined by ingest
    validation (nothing of the series stored since): scale keeps the capacity and says why; once
    a clean batch lands, it decides again."""
    from fleetcast.stages.allocate import utcnow
    from fleetcast.stages.ingest import ingest_paths

    url, fleet, landing, now = _fleet_at_ten(aws_settings)

    def land(name: str, minutes_ago: int, value: float) -> None:
        ts = (utcnow() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S")
        path = landing / name
        path.write_text(
            f"ts,game_type,region,metric,value\n{ts},battle_royale,eu,players,{value}\n"
        )
        ingest_paths(aws_settings, [path], data_docs=False)

    land("good.csv", 90, 900.0)
    land("bad.csv", 20, -5.0)  # a negative player count: quarantined
    backend = AwsBackend(aws_settings)
    [d] = allocate(aws_settings, now=utcnow(), backend=backend, run_id="r1")
    assert d.status == "fail_static"
    assert "ingest validation failed for battle_royale/eu players" in d.reason
    assert "quarantined" in d.reason
    assert desired(url, fleet.asg_name) == 10
    with db.session(aws_settings.db_path, read_only=True) as con:
        [(status, reason)] = con.sql("select status, reason from allocations").fetchall()
    assert status == "fail_static" and "ingest validation failed" in reason

    land("good2.csv", 5, 300.0)  # a clean batch of the series: trusted again
    [d] = allocate(aws_settings, now=utcnow(), backend=backend, run_id="r2")
    assert "ingest validation" not in d.reason
    assert d.status != "fail_static"


def test_a_quarantined_session_row_does_not_hold_the_demand_series(
    aws_settings: Settings,
) -> None:
    """Only the demand series' own rows count for R4: a session row of the same game type and
    region quarantined (it starts in 2099) leaves the players series trusted, so the fleet is
    decided on its forecast; a bad players row of the same batch time would hold it."""
    from fleetcast.stages.allocate import utcnow
    from fleetcast.stages.ingest import ingest_paths

    url, fleet, landing, now = _fleet_at_ten(aws_settings)
    ts = (now - timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%S")
    (landing / "good.csv").write_text(
        f"ts,game_type,region,metric,value\n{ts},battle_royale,eu,players,900.0\n"
    )
    (landing / "sessions.csv").write_text(
        "session_id,game_type,region,server_config,start,stop,peak_players\n"
        f"s-1,battle_royale,eu,default,{ts},{ts},12\n"
        "s-2,battle_royale,eu,default,2099-01-01T00:00:00,2099-01-01T01:00:00,12\n"
    )
    batches = ingest_paths(aws_settings, [landing / "good.csv"], data_docs=False)
    batches += ingest_paths(aws_settings, [landing / "sessions.csv"], data_docs=False)
    assert [b.rows_quarantined for b in batches] == [0, 1], batches
    backend = AwsBackend(aws_settings)
    [d] = allocate(aws_settings, now=utcnow(), backend=backend, run_id="r1")
    assert "ingest validation" not in d.reason, d.reason
    assert d.status != "fail_static", d.reason


def test_with_a_tournament_in_the_window_scale_still_sets_what_the_backtest_plans(
    aws_settings: Settings,
) -> None:
    """Events on the one path: tournaments at irregular days and hours (three before the live
    hours, one inside them, x2.5 for 3 hours) in the events table; ``scale`` hour by hour
    against moto sets exactly the backtest's plan, and provisions the fourth before its first
    hour."""
    url = aws_settings.aws_endpoint_url or ""
    y = _demand(24 * DAYS)
    ts = [T0 + timedelta(hours=i) for i in range(y.size)]
    starts = [int(24 * d) for d in (1.6, 3.3, 5.8, 8.1)]  # 14:00, 07:00, 19:00, 02:00
    for s in starts:
        y[s : s + 3] *= 2.5
    live_hours = 14
    first = starts[-1] - 6
    spec = replace(_fleet(60), max_size=80)
    with db.session(aws_settings.db_path) as con:
        upsert_fleets(con, [spec])
        con.executemany(
            "insert into metrics (ts, game_type, region, metric, value, batch_id) "
            "values (?, 'arena', 'eu', 'players', ?, 'b1')",
            [(t, float(v)) for t, v in zip(ts, y, strict=True)],
        )
        con.executemany(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id, first_seen_at) values (?, ?, 'tournament', 'arena', null, ?, ?, 'e', ?)",
            [
                (f"e{k}", f"cup{k}", ts[s], ts[s + 3], T0 - timedelta(days=30))
                for k, s in enumerate(starts)
            ],
        )
    make_group(url, spec.asg_name, desired=3, max_size=80)
    backend = AwsBackend(aws_settings)
    live = []
    for d in range(first, first + live_hours):
        [dec] = allocate(aws_settings, now=ts[d], backend=backend, run_id=f"r{d}")
        live.append((ts[d], desired(url, spec.asg_name), dec.reason))
    req = BacktestRequest(
        "arena", "players", ts[first + 1], 1, "eu", ts[first + live_hours - 1],
        lead_minutes=60, warmup_hours=0, initial_capacity=3,
    )  # fmt: skip
    with db.session(aws_settings.db_path, read_only=True) as con:
        result, _ = run_backtest(con, req)
    planned = [(d.decided_at, d.target) for d in result.decisions]
    assert planned == [(t, c) for t, c, _ in live]
    assert [d.reason for d in result.decisions] == [r for _, _, r in live]
    # the decision one lead before the tournament names it and provisions its first hour
    at = {t: (c, r) for t, c, r in live}
    cap, why = at[ts[starts[-1] - 1]]
    assert "tournament cup3" in why and "learned from 3 earlier tournaments" in why
    assert cap * spec.capacity_players >= y[starts[-1]]


def test_priority_under_a_budget_holds_during_a_tournament(aws_settings: Settings) -> None:
    """Two fleets share a budget; a learned tournament raises both one lead before it: the
    higher-priority fleet (lower number) gets its event-raised need, the other is cut and says
    so, and the budget is never exceeded."""
    url = aws_settings.aws_endpoint_url or ""
    y = _demand(24 * DAYS)
    ts = [T0 + timedelta(hours=i) for i in range(y.size)]
    starts = [int(24 * d) for d in (1.6, 3.3, 5.8, 8.1)]
    for s in starts:
        y[s : s + 3] *= 2.5
    specs = [
        replace(_fleet(60), fleet=f"{g}-eu", game_type=g, asg_name=f"{g}-eu-asg", max_size=80,
                priority=p, session_type=t)
        for g, p, t in (("ranked", 10, "ranked"), ("casual", 50, "casual"))
    ]  # fmt: skip
    with db.session(aws_settings.db_path) as con:
        upsert_fleets(con, specs)
        for f in specs:
            con.executemany(
                "insert into metrics (ts, game_type, region, metric, value, batch_id) "
                "values (?, ?, 'eu', 'players', ?, 'b1')",
                [(t, f.game_type, float(v)) for t, v in zip(ts, y, strict=True)],
            )
        con.executemany(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id, first_seen_at) values (?, ?, 'tournament', null, 'eu', ?, ?, 'e', ?)",
            [
                (f"e{k}", f"cup{k}", ts[s], ts[s + 3], T0 - timedelta(days=30))
                for k, s in enumerate(starts)
            ],
        )
    for f in specs:
        make_group(url, f.asg_name, desired=20, max_size=80)
    backend = AwsBackend(aws_settings)
    free = allocate(aws_settings, now=ts[starts[-1] - 1], backend=backend, forecast_only=True)
    need = {d.fleet: d.target for d in free}
    assert all("tournament cup3" in d.reason for d in free)
    limit = need["ranked-eu"] + need["casual-eu"] // 2
    got = {
        d.fleet: d
        for d in allocate(
            aws_settings, now=ts[starts[-1] - 1] + timedelta(minutes=1), backend=backend,
            budget=Budget(max_instances=limit),
        )
    }  # fmt: skip
    assert got["ranked-eu"].target == need["ranked-eu"]
    assert got["casual-eu"].target < need["casual-eu"]
    assert "budget" in got["casual-eu"].reason and "tournament cup3" in got["casual-eu"].reason
    assert desired(url, "ranked-eu-asg") + desired(url, "casual-eu-asg") <= limit


def test_fleets_decided_in_batches_on_worker_processes_decide_as_in_one_batch_here(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the decisions are made does not change them: twelve fleets (their own demand,
    limits, an override, an event, one busy group, one series that fails ingest) planned in one
    batch in this process, then in batches of two on a local pool of two processes (a spawned
    worker beside this one), give equal decisions, reasons included."""
    from fleetcast.resources.aws import GroupState, InstanceState, RecordedBackend
    from fleetcast.resources.pool import training_pool
    from fleetcast.stages import allocate as alloc

    y = _demand(24 * DAYS)
    ts = [T0 + timedelta(hours=i) for i in range(y.size)]
    specs = [
        replace(_fleet(45 if i % 2 else 60), fleet=f"arena-r{i}", region=f"r{i}",
                asg_name=f"arena-r{i}-asg", max_size=10 + 3 * i)
        for i in range(12)
    ]  # fmt: skip
    with db.session(settings.db_path) as con:
        upsert_fleets(con, specs)
        for i, f in enumerate(specs):
            scale = 0.5 + 0.1 * i
            con.executemany(
                "insert into metrics (ts, game_type, region, metric, value, batch_id) "
                "values (?, 'arena', ?, 'players', ?, 'b1')",
                [
                    (t, f.region, float(v) * scale)
                    for t, v in zip(ts, _demand(y.size, i), strict=True)
                ],
            )
        con.execute(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id, first_seen_at) values ('e0', 'cup', 'tournament', 'arena', 'r3', ?, ?, "
            "'e', ?)",
            [ts[-1] + timedelta(hours=1), ts[-1] + timedelta(hours=4), T0],
        )
        set_override(con, fleet="arena-r5", kind="min", value=9, reason="launch",
                     expires_at=ts[-1] + timedelta(hours=6), now=ts[-1])  # fmt: skip
    now = ts[-1] + timedelta(minutes=20)
    busy = [InstanceState(f"i-{k}", "InService", False, True) for k in range(4)]

    def backend() -> RecordedBackend:
        return RecordedBackend(
            [GroupState(f.asg_name, 3, 1, f.max_size, {"fleetcast:managed": "true"},
                        tuple(busy) if f.fleet == "arena-r7" else ()) for f in specs]
        )  # fmt: skip

    errors = {"arena-r9": "forecast failed validation"}
    here = alloc.plan(settings, backend=backend(), now=now, forecast_errors=errors)
    monkeypatch.setattr(alloc, "DECIDE_BATCH", 2)
    monkeypatch.setattr(alloc, "DECIDE_WORKERS", 2)
    assert training_pool(6, 2) == ("process", 2)  # six batches: a spawned process takes some
    there = alloc.plan(settings, backend=backend(), now=now, forecast_errors=errors)
    assert there.decisions == here.decisions
    # the case is not trivial: the fleets differ, and the override, event, busy group and
    # forecast error each reach their fleet's decision
    assert len({d.target for d in here.decisions}) >= 4
    why = {d.fleet: d.reason for d in here.decisions}
    assert "cup" in why["arena-r3"] and "busy" in why["arena-r7"]
    assert "override" in why["arena-r5"] and "forecast failed validation" in why["arena-r9"]


def test_decisions_use_every_core_only_for_a_large_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of a few fleets decides in its own process (a spawned one costs seconds to
    start); from DECIDE_PARALLEL_FLEETS on, every core (None); a set DECIDE_WORKERS wins."""
    import fleetcast.stages.allocate as alloc

    assert alloc.decide_workers(alloc.DECIDE_PARALLEL_FLEETS - 1) == 1
    assert alloc.decide_workers(alloc.DECIDE_PARALLEL_FLEETS) is None
    monkeypatch.setattr(alloc, "DECIDE_WORKERS", 3)
    assert alloc.decide_workers(5) == 3
