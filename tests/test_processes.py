"""Processes per instance from telemetry: the pure rule on literal frames, a planted 30% rise in
CPU per session, and the count reaching the group tag and the instance count on moto."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import boto3
import polars as pl
import pytest
from helpers_aws import desired
from helpers_reliability import NOW, seed, spec

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.aws import PPI_TAG, AwsBackend
from fleetcast.resources.local_aws import provision_groups
from fleetcast.stages.allocate import allocate
from fleetcast.stages.overrides import set_override
from models.processes import concurrent_sessions, fit_processes, process_needs

CAPS = {"cpu": 16.0, "memory": 32.0, "net": 1000.0}  # one instance
CPU, MEM, NET, PLAYERS = 3.2, 0.8, 5.0, 80.0  # per session before the rise
SESSIONS = 100.0


def frame(hours: int, end: datetime, cpu_per_session: list[float] | None = None) -> pl.DataFrame:
    """``hours`` hourly rows ending at ``end`` (long format); ``cpu_per_session`` overrides the
    CPU per session of the last hours."""
    cpu = [CPU] * hours
    if cpu_per_session:
        cpu[-len(cpu_per_session) :] = cpu_per_session
    rows = []
    for i in range(hours):
        ts = end - timedelta(hours=hours - 1 - i)
        values = {
            "sessions": SESSIONS,
            "players": SESSIONS * PLAYERS,
            "cpu_cores": SESSIONS * cpu[i],
            "memory_gb": SESSIONS * MEM,
            "net_in_mbps": SESSIONS * NET * 0.5,
            "net_out_mbps": SESSIONS * NET,
        }
        rows += [{"ts": ts, "region": "eu", "metric": m, "value": v} for m, v in values.items()]
    return pl.DataFrame(rows)


def test_needs_and_fit_on_a_literal_frame() -> None:
    needs = process_needs(frame(24, NOW))
    assert needs is not None and needs.samples == 24
    assert needs.needs == pytest.approx({"cpu": CPU, "memory": MEM, "net": NET})
    assert needs.players_per_process == pytest.approx(PLAYERS)
    fit = fit_processes(CAPS, needs, headroom=0.2)
    assert fit is not None
    # cpu 16 x 0.8 / 3.2 = 4; memory 32 x 0.8 / 0.8 = 32; net 800 / 5 = 160
    assert fit.limits == {"cpu": 4, "memory": 32, "net": 160}
    assert fit.processes_per_instance == 4 and fit.binding == "cpu"
    assert fit.players_per_instance == pytest.approx(4 * PLAYERS)
    # a fixed server load spread over few night sessions is not a per-process need: only the
    # busier half of the hours counts (night: 10 sessions, 2 cores of fixed load on top)
    night = frame(24, NOW).with_columns(
        pl.when(pl.col("ts").dt.hour() < 12)
        .then(
            pl.when(pl.col("metric") == "cpu_cores")
            .then(10 * CPU + 2.0)
            .otherwise(pl.col("value") / 10)
        )
        .otherwise(pl.col("value"))
        .alias("value")
    )
    busy = process_needs(night)
    assert busy is not None and busy.samples == 12 and busy.needs["cpu"] == pytest.approx(CPU)
    # too few hours: no telemetry answer (the fleet's own settings are used)
    assert process_needs(frame(5, NOW)) is None
    # no resource measured (players and sessions only): no telemetry answer
    only_players = frame(24, NOW).filter(pl.col("metric").is_in(["players", "sessions"]))
    assert process_needs(only_players) is None
    # no capacity for any measured resource: no fit
    assert fit_processes({"cpu": None}, needs) is None


def test_a_30_percent_rise_in_cpu_per_session_lowers_processes_before_exhaustion() -> None:
    """A game update makes matches heavier: CPU per session ramps up by 5% an hour to +30%.
    Replayed hour by hour (a 24-hour window each cycle), processes per instance drop and the
    instance count for the same demand rises hours before 4 processes would exhaust an
    instance, and no cycle ever packs more CPU on an instance than it has."""
    demand = 8000.0  # players to host in each cycle
    ramp = [CPU * (1 + 0.05 * k) for k in range(1, 7)]  # +5% ... +30%
    seen = []
    for hour in range(len(ramp) + 1):
        now = NOW + timedelta(hours=hour)
        needs = process_needs(frame(48, now, ramp[:hour] or None).filter(
            pl.col("ts") > now - timedelta(hours=24)
        ))  # fmt: skip
        assert needs is not None
        fit = fit_processes(CAPS, needs, headroom=0.2)
        assert fit is not None and fit.players_per_instance is not None
        actual = ramp[hour - 1] if hour else CPU  # CPU per session this hour
        instances = math.ceil(demand / fit.players_per_instance)
        seen.append((hour, fit.processes_per_instance, instances, actual))
        # with the learned count an instance never runs out of CPU
        assert fit.processes_per_instance * actual <= CAPS["cpu"]
    assert seen[0][1:3] == (4, 25)  # 8000 / (4 x 80)
    assert seen[-1][1:3] == (3, 34)  # 8000 / (3 x 80), after the +30% rise
    first_drop = next(h for h, ppi, _, _ in seen if ppi < 4)
    # when would the old count (4 processes) have exhausted an instance?
    exhausted = next(h for h, _, _, cpu in seen if 4 * cpu > CAPS["cpu"])
    assert first_drop < exhausted and exhausted - first_drop >= 3, seen


def test_active_sessions_from_the_sessions_table() -> None:
    hours = pl.DataFrame({"ts": [NOW, NOW + timedelta(hours=1)], "region": ["eu", "eu"]})
    sessions = pl.DataFrame(
        {
            "region": ["eu", "eu", "eu", "us"],
            "started_at": [NOW - timedelta(minutes=5)] * 3 + [NOW],
            "stopped_at": [NOW + timedelta(minutes=30), None, NOW, None],
        }
    )
    got = dict(concurrent_sessions(sessions, hours).sort("ts").select("ts", "sessions").rows())
    assert got == {NOW: 2.0, NOW + timedelta(hours=1): 1.0}  # one stopped at NOW, one in us


# --------------------------------------------------------------------------- against moto


def _store(settings: Settings, metrics: pl.DataFrame, game_type: str) -> None:
    rows = metrics.with_columns(
        pl.lit(game_type).alias("game_type"), pl.lit("b1").alias("batch_id")
    ).select("ts", "game_type", "region", "metric", "value", "batch_id")
    with db.session(settings.db_path) as con:
        con.execute("delete from metrics where game_type = ?", [game_type]).fetchall()
        con.register("incoming", rows)
        con.execute("insert into metrics select * from incoming").fetchall()


def _tag(url: str, name: str) -> str | None:
    asg = boto3.client("autoscaling", region_name="us-east-1", endpoint_url=url)
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get(PPI_TAG)


def _last_inputs(settings: Settings, fleet: str) -> dict[str, Any]:
    with db.session(settings.db_path, read_only=True) as con:
        rows = con.sql(
            "select arg_max(inputs, decided_at) from allocations where fleet = ?", params=[fleet]
        ).fetchall()
    return json.loads(rows[0][0])  # type: ignore[no-any-return]


def test_the_learned_count_reaches_the_group_tag_and_the_instance_count(
    aws_settings: Settings,
) -> None:
    url = aws_settings.aws_endpoint_url or ""
    f = spec(
        "br-eu",
        capacity_players=400.0,  # the static setting: 5 processes of 80 players
        capacity_cpu=CAPS["cpu"],
        capacity_memory_gb=CAPS["memory"],
        capacity_net_mbps=CAPS["net"],
        processes_per_instance=5,
        max_size=60,
        tolerance=0.0,
    )
    provision_groups(url, aws_settings.aws_region, [(f.asg_name, 1, 60, 2)])
    seed(aws_settings, [f], players=8000.0, hours=range(-1, 12))
    backend = AwsBackend(aws_settings)

    # before any telemetry: the fleet's own settings (8000 / 400 = 20 instances, 5 processes)
    [d] = allocate(aws_settings, now=NOW, backend=backend)
    assert (d.processes_per_instance, d.target) == (5, 20)
    assert _last_inputs(aws_settings, "br-eu")["processes"]["source"] == "static"

    # a day of telemetry: 4 processes fit with 20% headroom: 8000 / 320 = 25 instances
    _store(aws_settings, frame(24, NOW), "battle_royale")
    [d] = allocate(aws_settings, now=NOW + timedelta(minutes=5), backend=backend)
    assert (d.processes_per_instance, d.target) == (4, 25)
    assert _tag(url, f.asg_name) == "4" and desired(url, f.asg_name) == 25

    # the update: CPU per session +15% and +30% in the last two hours -> 3 processes, 34
    later = NOW + timedelta(hours=2)
    _store(aws_settings, frame(26, later, [CPU * 1.15, CPU * 1.3]), "battle_royale")
    [d] = allocate(aws_settings, now=later, backend=backend)
    assert (d.processes_per_instance, d.target) == (3, 34)
    assert _tag(url, f.asg_name) == "3" and desired(url, f.asg_name) == 34
    rec = _last_inputs(aws_settings, "br-eu")["processes"]
    assert rec["source"] == "telemetry" and rec["binding"] == "cpu" and rec["limits"]["cpu"] == 3
    assert rec["needs"]["needs"]["cpu"] > CPU * 1.1 and rec["needs"]["samples"] == 24

    # a human override wins: 2 processes -> 8000 / 160 = 50 instances
    with db.session(aws_settings.db_path) as con:
        set_override(
            con, fleet="br-eu", kind="processes", value=2, reason="hotfix",
            expires_at=later + timedelta(hours=2), now=later,
        )  # fmt: skip
        with pytest.raises(ValueError, match="at least 1"):
            set_override(
                con, fleet="br-eu", kind="processes", value=0, reason="x",
                expires_at=later + timedelta(hours=2), now=later,
            )  # fmt: skip
    [d] = allocate(aws_settings, now=later + timedelta(minutes=5), backend=backend)
    assert (d.processes_per_instance, d.target) == (2, 50)
    assert _tag(url, f.asg_name) == "2"
    assert _last_inputs(aws_settings, "br-eu")["processes"]["source"] == "override"
