"""allocate() end to end: real DuckDB file, real moto server; the group equals the record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers_aws import CallLog, desired, inject_error, instance_ids, make_group, mark_busy

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.resources.aws import AwsBackend
from fleetcast.stages.allocate import allocate
from fleetcast.stages.fleets import FleetConfigError, read_fleet_file, upsert_fleets
from fleetcast.stages.overrides import clear_overrides, list_overrides, set_override
from models.policy import FleetSpec

NOW = datetime(2024, 5, 1, 10, 0)


def seed(
    settings: Settings,
    *,
    fleets: list[FleetSpec],
    players: float = 1000.0,
    created: datetime = NOW - timedelta(hours=1),
    observed: float | None = 800.0,
) -> None:
    with db.session(settings.db_path) as con:
        upsert_fleets(con, fleets)
        for f in {(f.game_type, f.region) for f in fleets}:
            for h in range(-1, 5):
                ts = NOW + timedelta(hours=h)
                con.execute(
                    "insert into forecasts (run_id, game_type, region, metric, ts, yhat, "
                    "yhat_lower, yhat_upper, model, created_at) "
                    "values (?, ?, ?, 'players', ?, ?, ?, ?, 'prophet', ?)",
                    ["run-1", f[0], f[1], ts, players, players * 0.8, players * 1.2, created],
                ).fetchall()
            if observed is not None:
                con.execute(
                    "insert into metrics values (?, ?, ?, 'players', ?, 'b1')",
                    [NOW - timedelta(minutes=30), f[0], f[1], observed],
                ).fetchall()


def spec(name: str = "br-eu", **kw: Any) -> FleetSpec:
    base: dict[str, Any] = dict(
        fleet=name,
        game_type="battle_royale",
        region="eu",
        asg_name=f"{name}-asg",
        capacity_players=100.0,
        min_size=1,
        max_size=30,
        mode="scale",
        tolerance=0.0,
        scale_in_stabilisation_minutes=30,  # the decisions below are 40 min apart
    )
    base.update(kw)
    return FleetSpec(**base)


def rows(settings: Settings) -> list[dict[str, Any]]:
    with db.session(settings.db_path) as con:
        return con.sql("select * from allocations order by decided_at, fleet").pl().to_dicts()


def test_allocate_applies_and_the_group_equals_the_record(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    seed(aws_settings, fleets=[spec()])
    backend = AwsBackend(aws_settings)
    count = CallLog(backend.client)
    [d] = allocate(aws_settings, now=NOW, backend=backend, run_id="r1")
    assert d.target == 14 and d.applied and d.applied_desired == 14  # 1200 x 1.1 / 100
    [row] = rows(aws_settings)
    assert desired(url, "br-eu-asg") == row["target_desired"] == row["applied_desired"] == 14
    assert row["run_id"] == "r1" and row["mode"] == "scale" and row["applied"]
    inputs = json.loads(row["inputs"])
    assert inputs["observed"] == {"players": 800.0} and inputs["calls"]
    assert "SetDesiredCapacity" in count.mutating_ops

    # the same run again: reads, but no mutating call, and a record that says so
    count.calls.clear()
    [d2] = allocate(aws_settings, now=NOW + timedelta(minutes=5), backend=backend)
    assert count.mutating_ops == [] and not d2.applied and d2.target == 14
    assert "nothing sent" in d2.outcome
    assert desired(url, "br-eu-asg") == 14


def test_forecast_only_records_without_a_mutating_call(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    make_group(url, "shadow-asg", desired=2)
    seed(
        aws_settings,
        fleets=[spec(), spec("shadow", game_type="battle_royale", mode="forecast_only")],
    )
    backend = AwsBackend(aws_settings)
    count = CallLog(backend.client)
    decisions = allocate(aws_settings, now=NOW, backend=backend, forecast_only=True)
    assert count.mutating_ops == [] and all(not d.applied for d in decisions)
    assert {r["mode"] for r in rows(aws_settings)} == {"forecast_only"}
    assert all(
        r["target_desired"] == 14 and r["applied_desired"] is None for r in rows(aws_settings)
    )
    assert desired(url, "br-eu-asg") == 2
    # per-fleet mode: only the scale fleet changes
    allocate(aws_settings, now=NOW, backend=backend)
    assert desired(url, "br-eu-asg") == 14 and desired(url, "shadow-asg") == 2


def test_group_off_the_allow_list_is_refused_and_recorded(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2, managed=False)
    seed(aws_settings, fleets=[spec()])
    backend = AwsBackend(aws_settings)
    count = CallLog(backend.client)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert d.outcome.startswith("refused") and not d.applied
    assert count.mutating_ops == [] and desired(url, "br-eu-asg") == 2
    [row] = rows(aws_settings)
    assert row["applied"] is False and row["outcome"].startswith("refused")


def test_stale_forecast_keeps_capacity(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=9)
    seed(
        aws_settings,
        fleets=[spec()],
        players=100.0,
        created=NOW - timedelta(hours=12),
        observed=100.0,
    )
    [d] = allocate(aws_settings, now=NOW, backend=AwsBackend(aws_settings))
    assert d.status == "fail_static" and d.target == 9 and "stale" in d.reason
    assert desired(url, "br-eu-asg") == 9


def test_override_wins_until_cleared_and_q90_is_used(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    seed(aws_settings, fleets=[spec()])
    with db.session(aws_settings.db_path) as con:
        o = set_override(
            con,
            fleet="br-eu",
            kind="capacity",
            value=20,
            reason="launch day",
            expires_at=NOW + timedelta(hours=2),
            now=NOW - timedelta(minutes=1),
        )
        assert [x.override_id for x in list_overrides(con, NOW)] == [o.override_id]
        with pytest.raises(ValueError, match="no fleet"):
            set_override(
                con,
                fleet="nope",
                kind="min",
                value=1,
                reason="x",
                expires_at=NOW + timedelta(hours=1),
                now=NOW,
            )
    backend = AwsBackend(aws_settings)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert d.target == 20 and d.status == "override" and "launch day" in d.reason
    assert desired(url, "br-eu-asg") == 20
    with db.session(aws_settings.db_path) as con:
        assert clear_overrides(con, "br-eu", now=NOW + timedelta(minutes=1)) == [o.override_id]
        # another helper's migration may add yhat_q90: the policy sizes from it when present
        con.execute("alter table forecasts add column if not exists yhat_q90 double").fetchall()
        con.execute("update forecasts set yhat_q90 = 1500").fetchall()
    [d] = allocate(aws_settings, now=NOW + timedelta(minutes=2), backend=backend)
    assert d.demand_forecast == pytest.approx(1650)  # q90 1500 x 1.1
    assert d.target == 20 and "history" in d.reason  # scale-in waits for the window
    [d] = allocate(aws_settings, now=NOW + timedelta(minutes=40), backend=backend)
    assert d.target == 17 and d.applied and desired(url, "br-eu-asg") == 17


def test_fleet_file_validation(tmp_path: Path) -> None:
    good = tmp_path / "fleets.csv"
    good.write_text(
        "fleet,game_type,region,asg_name,capacity_players,min_size,max_size,session_type\n"
        "tour-eu,tournament,eu,tour-eu-asg,50,2,40,tournament\n"
        "casual-eu,casual_puzzle,eu,casual-eu-asg,200,0,10,casual\n"
    )
    specs = read_fleet_file(good)
    assert [s.priority for s in specs] == [10, 30]  # tournament before casual by default
    bad = {
        "min 5 > max 2": '[{"fleet": "a", "game_type": "g", "asg_name": "x", '
        '"capacity_players": 10, "min_size": 5, "max_size": 2}]',
        "invalid fleet": '[{"fleet": "A B", "game_type": "g", "asg_name": "x", '
        '"capacity_players": 10, "min_size": 0, "max_size": 2}]',
        "missing": '[{"fleet": "a", "game_type": "g"}]',
        "unknown columns": '[{"fleet": "a", "game_type": "g", "asg_name": "x", "oops": 1, '
        '"capacity_players": 10, "min_size": 0, "max_size": 2}]',
    }
    for word, text in bad.items():
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(FleetConfigError, match=word.split()[0]):
            read_fleet_file(path)


def test_cli_fleets_override_and_scale(
    aws_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    path = tmp_path / "fleets.json"
    path.write_text(
        json.dumps(
            {
                "fleets": [
                    {
                        "fleet": "br-eu",
                        "game_type": "battle_royale",
                        "region": "eu",
                        "asg_name": "br-eu-asg",
                        "capacity_players": 100,
                        "min_size": 1,
                        "max_size": 30,
                        "mode": "scale",
                    }
                ]
            }
        )
    )
    base = ["--db", str(aws_settings.db_path), "--aws-endpoint", url]
    assert main(["fleets", "import", str(path), *base]) == 0
    assert main(["fleets", "list", *base]) == 0
    assert "br-eu-asg" in capsys.readouterr().out
    assert (
        main(
            [
                "override",
                "set",
                "--fleet",
                "br-eu",
                "--kind",
                "capacity",
                "--value",
                "6",
                "--reason",
                "maintenance",
                "--expires",
                "2h",
                *base,
            ]
        )
        == 0
    )
    assert main(["override", "list", *base]) == 0
    assert "maintenance" in capsys.readouterr().out
    assert main(["scale", "--forecast-only", *base]) == 0
    out = capsys.readouterr().out
    assert "br-eu" in out and "forecast_only" in out and "capacity override 6" in out
    assert desired(url, "br-eu-asg") == 2
    assert main(["scale", "--game-type", "battle_royale", *base]) == 0
    assert desired(url, "br-eu-asg") == 6
    assert main(["override", "clear", "--fleet", "br-eu", *base]) == 0
    assert "cleared 1" in capsys.readouterr().out
    assert main(["scale", "--game-type", "Bad Name", *base]) == 1


def test_busy_instances_survive_a_planned_scale_in(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=5)
    ids = instance_ids(url, "br-eu-asg")
    busy = ids[2:4]
    mark_busy(url, busy)
    seed(aws_settings, fleets=[spec(min_size=0)], players=10.0, observed=10.0)
    backend = AwsBackend(aws_settings)
    [d] = allocate(aws_settings, now=NOW - timedelta(minutes=40), backend=backend)
    assert d.target == 5  # no scale-in before the stabilisation window has history
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert d.target == 2 and d.busy == 2 and "busy" in d.reason
    assert instance_ids(url, "br-eu-asg") == busy
    assert desired(url, "br-eu-asg") == rows(aws_settings)[-1]["applied_desired"] == 2


def test_scaling_activity_in_progress_is_recorded_as_deferred(aws_settings: Settings) -> None:
    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    seed(aws_settings, fleets=[spec()])
    backend = AwsBackend(aws_settings)
    inject_error(backend.client, "SetDesiredCapacity", "ScalingActivityInProgress", times=99)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert not d.applied and "deferred" in d.outcome
    [row] = rows(aws_settings)
    # the record agrees with AWS: nothing applied, the group unchanged
    assert row["applied"] is False and row["applied_desired"] is None
    assert desired(url, "br-eu-asg") == 2


def test_recorded_backend_starts_from_the_last_record(settings: Settings) -> None:
    from fleetcast.config import capacity_backend

    seed(settings, fleets=[spec()])
    [d] = allocate(settings, now=NOW, backend=capacity_backend(settings, "recorded"))
    assert (d.current, d.target, d.applied_desired) == (1, 14, 14)  # never decided: min
    [d] = allocate(
        settings, now=NOW + timedelta(minutes=5), backend=capacity_backend(settings, "recorded")
    )
    assert (d.current, d.target, d.applied) == (14, 14, False)


def test_plan_and_apply_tasks_via_fn(aws_settings: Settings) -> None:
    from fleetcast.config import capacity_backend
    from tasks.apply import apply_capacity
    from tasks.plan import plan_capacity

    url = aws_settings.aws_endpoint_url or ""
    make_group(url, "br-eu-asg", desired=2)
    seed(aws_settings, fleets=[spec()])
    backend = capacity_backend(aws_settings)
    plan = plan_capacity.fn(aws_settings, now=NOW, run_id="task-run", backend=backend)
    assert [d.target for d in plan.decisions] == [14] and desired(url, "br-eu-asg") == 2
    [d] = apply_capacity.fn(aws_settings, plan, backend=backend)
    [row] = rows(aws_settings)
    assert d.applied and row["run_id"] == "task-run"
    assert desired(url, "br-eu-asg") == row["applied_desired"] == 14


def test_many_fleets_are_read_in_batches_and_applied_concurrently(aws_settings: Settings) -> None:
    """60 fleets: the groups are read with one batched describe per stage (not one per group),
    every group ends at its own decision, and each record matches its group."""
    from helpers_reliability import query, seed, spec

    url = aws_settings.aws_endpoint_url or ""
    fleets = [spec(f"f{i:02d}", region=f"r{i:02d}") for i in range(60)]
    for f in fleets:
        make_group(url, f.asg_name, desired=1)
    seed(aws_settings, fleets, players=300.0)  # 300 players / 100 per instance -> 3
    backend = AwsBackend(aws_settings)
    log = CallLog(backend.client)
    done = allocate(aws_settings, now=NOW, backend=backend)
    assert len(done) == 60 and all(d.applied and d.applied_desired == 3 for d in done)
    describes = [op for op, _ in log.calls].count("DescribeAutoScalingGroups")
    assert describes <= 4, describes  # plan + apply, 50 names per call: 2 + 2
    assert sorted(p["AutoScalingGroupName"] for o, p in log.mutating
                  if o == "SetDesiredCapacity") == sorted(f.asg_name for f in fleets)  # fmt: skip
    for f in fleets:
        assert desired(url, f.asg_name) == 3
    rows = dict(query(aws_settings.db_path, "select fleet, applied_desired from allocations"))
    assert rows == {f.fleet: 3 for f in fleets}
