"""``fleetcast events`` on a small sample database, and its pure parts on literals."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.stages.events import UpcomingEvent, project_event, read_events_outlook
from models.clock import utcnow
from models.event_plan import plan_for_peak
from models.policy import FleetSpec


def _sample(tmp_path: Path) -> str:
    landing = tmp_path / "landing"
    db = str(tmp_path / "fc.duckdb")
    assert main(["sample", "--days", "10", "--out", str(landing), "--db", db]) == 0
    assert main(["fleets", "import", str(landing / "fleets.csv"), "--db", db]) == 0
    (landing / "fleets.csv").rename(tmp_path / "fleets.csv")
    assert main(["ingest", "--landing", str(landing), "--db", db]) in (0, 3)
    return db


def _rows_of(out: str, label: str) -> list[list[str]]:
    """The table rows (cells) of one event: its first row carries the label, the next ones
    have an empty event cell (lines without a fleet continue a wrapped cell: skipped)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if label in line)
    rows: list[list[str]] = []
    for line in lines[start:]:
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) < 7 or (rows and cells[0] and cells[2]):
            break
        if cells[2]:
            rows.append(cells)
    return rows


def test_events_lists_the_fleets_an_event_applies_to_with_peak_and_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = _sample(tmp_path)
    start = (utcnow() + timedelta(days=2)).replace(hour=19, minute=0, second=0, microsecond=0)
    with duckdb.connect(db) as con:
        con.execute(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id, multiplier, first_seen_at) values ('t1', 'test_cup', 'other', "
            "'battle_royale', null, ?, ?, 'test', 2.0, ?)",
            [start, start + timedelta(hours=3), utcnow()],
        )
        con.execute("update fleets set cost_per_hour = 1.5 where fleet = 'battle_royale-na-east'")
        # the sample prices every fleet; a fleet without a price shows "-"
        con.execute("update fleets set cost_per_hour = null where fleet = 'battle_royale-eu-west'")
    capsys.readouterr()
    assert main(["events", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "UTC)" in out.splitlines()[0] and "when (UTC)" in out  # times labelled UTC
    rows = _rows_of(out, "other test_cup (battle_royale/all")
    fleets = {r[2] for r in rows}
    assert fleets == {
        "battle_royale-na-east",
        "battle_royale-eu-west",
        "battle_royale-ap-southeast",
        "battle_royale-sa-east",
    }
    for r in rows:
        assert " players at " in r[3]
        assert " instances" in r[4]
        assert r[6].startswith("the row's expected multiplier x2.00")
    cost = {r[2]: r[5] for r in rows}
    assert cost["battle_royale-eu-west"] == "-" and cost["battle_royale-na-east"].endswith(" $/h")

    outlook = read_events_outlook(Settings.from_env(db_path=Path(db)))
    mine = [r for r in outlook.rows if r.event.name == "test_cup"]
    assert len(mine) == 4
    for r in mine:
        spec, plan = r.fleet, r.plan
        assert r.peak is not None and r.peak > 0 and plan is not None
        assert r.peak_at is not None and start <= r.peak_at < start + timedelta(hours=3)
        needed = math.ceil(r.peak * (1 + spec.safety_margin) / spec.capacity_players)
        assert plan.needed == needed
        assert plan.instances == min(max(needed, spec.min_size), spec.max_size)
        row = next(x for x in rows if x[2] == spec.fleet)
        assert row[3].startswith(f"{r.peak:,.0f} players")
        assert row[4].startswith(f"{plan.instances} instances")
        if spec.fleet == "battle_royale-na-east":
            assert plan.cost_per_hour == pytest.approx(plan.instances * 1.5)
            assert row[5] == f"{plan.instances * 1.5:,.2f} $/h"

    with duckdb.connect(db) as con:
        con.execute("delete from events")
    assert main(["events", "--db", db, "--days", "3"]) == 0
    assert "no events in the next 3 days" in capsys.readouterr().out


def _spec(**kw: object) -> FleetSpec:
    base: dict[str, object] = dict(
        fleet="f", game_type="g", region="r", asg_name="a", capacity_players=100.0,
        min_size=2, max_size=10, safety_margin=0.2,
    )  # fmt: skip
    base.update(kw)
    return FleetSpec(**base)  # type: ignore[arg-type]


def test_plan_for_peak_applies_the_margin_then_min_and_max() -> None:
    p = plan_for_peak(_spec(cost_per_hour=0.5), 450.0)  # 450 x 1.2 / 100 = 5.4 -> 6
    assert (p.needed, p.instances, p.max_binds, p.cost_per_hour) == (6, 6, False, 3.0)
    p = plan_for_peak(_spec(), 10.0)
    assert (p.needed, p.instances, p.max_binds, p.cost_per_hour) == (1, 2, False, None)
    p = plan_for_peak(_spec(), 2000.0)
    assert (p.needed, p.instances, p.max_binds) == (24, 10, True)


def test_a_fleet_without_a_week_of_history_gets_no_peak() -> None:
    e = UpcomingEvent("cup", "tournament", None, None, datetime(2026, 1, 1, 19),
                      datetime(2026, 1, 1, 22))  # fmt: skip
    r = project_event(None, _spec(), e)
    assert r.peak is None and r.plan is None and r.how.startswith("not enough history")


def test_a_weekly_recurring_event_is_said_to_be_in_the_shape() -> None:
    from models.event_plan import effect_source
    from models.events import EffectAt, EventWindow

    e = EventWindow("tournament", datetime(2026, 1, 1, 19), datetime(2026, 1, 1, 22), name="cup")
    said = effect_source(EffectAt(e, ("in", 1), 0.0, "weekly", 0))
    assert "recurs weekly" in said and "learned from 0" not in said
