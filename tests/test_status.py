"""``fleetcast status``: the compact table fits the terminal; --wide and ``status FLEET`` show
everything, the full reason included."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.interface.commands.status import compact_lines
from fleetcast.resources import db
from fleetcast.stages.fleets import import_fleets
from models.clock import utcnow

# the reason's last word: cut from the compact table, shown by --wide and `status FLEET`
TAIL = "waits-for-approval-tail"
LONG_REASON = (
    "2 -> 60 (+58): 60 instances for 5,940 players (x1.1 margin, 100 players per instance) from "
    "2026-12-07 05:21 UTC (lead 45 min); forecast: nowcast-weekly; observed demand needs 37 "
    "instances (players); event: tournament arena_championship_eu-west_04 from 2026-12-07 18:00 "
    "(pre 2 h, post +5 h): lift 1.8x learned from 6 past events; processes per instance 16 "
    "(bounded; learned 245): learned 245 processes is outside 4-16 (0.5x-2x the configured 8): "
    f"16 until approved; {TAIL}"
)


@pytest.fixture
def decided(settings: Settings, tmp_path: Path) -> Settings:
    """Three fleets in scale mode, two with a decision (one applied, one forecast-only, as
    `scale --forecast-only` records), one without."""
    long_name = "battle_royale-ap-southeast"
    path = tmp_path / "fleets.csv"
    rows = [
        "fleet,game_type,region,asg_name,capacity_players,min_size,max_size,mode",
        f"{long_name},battle_royale,eu-west,br-asg,100,2,180,scale",
        "casual_puzzle-na-east,casual_puzzle,na-east,cp-asg,100,2,20,scale",
        "ranked_arena-na-east,ranked_arena,na-east,ra-asg,100,1,60,scale",
    ]
    path.write_text("\n".join(rows) + "\n")
    import_fleets(path, settings.db_path)
    now = utcnow()
    decisions = [
        (long_name, "battle_royale", "eu-west", "scale", 2, 60, 60, True, LONG_REASON, 3),
        ("casual_puzzle-na-east", "casual_puzzle", "na-east", "forecast_only", 2, 9, None, False,
         "2 -> 9 (+7): 9 instances for 880 players (x1.1 margin, 100 players per instance) from "
         "2026-12-07 04:25 UTC (lead 45 min); forecast: nowcast-weekly", 0),
    ]  # fmt: skip
    with db.session(settings.db_path) as con:
        for i, (fleet, game, region, mode, cur, target, sent, applied, why, unserved) in enumerate(
            decisions
        ):
            con.execute(
                "insert into allocations (decision_id, run_id, decided_at, fleet, game_type, "
                "region, asg_name, mode, current_desired, target_desired, applied_desired, "
                "applied, processes_per_instance, inputs, reason, status, unserved_instances, "
                "outcome) values (?, 'run-1', ?, ?, ?, ?, 'asg', ?, ?, ?, ?, ?, 16, ?, ?, 'ok', "
                "?, ?)",
                [
                    f"d{i}", now - timedelta(minutes=12), fleet, game, region, mode, cur,
                    target, sent, applied,
                    json.dumps({"processes": {"source": "telemetry"}}), why, unserved,
                    "set desired 60" if applied else "forecast-only: would set 9",
                ],
            )  # fmt: skip
    return settings


def _status(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    columns: int = 120,
) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["status", "--db", str(settings.db_path), *args]) == 0
    return capsys.readouterr().out


def test_status_fits_120_columns(
    decided: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _status(decided, capsys, monkeypatch)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120, out
    assert out.isascii()  # so `awk '{ print length }'` counts what a person sees
    assert TAIL not in out  # the reason, cut to fit
    [row] = [line for line in lines if line.startswith("battle_royale-")]
    # the change, what was sent, how long ago; the reason for a glance: without the change it
    # opens with and without its knobs and window (those are in `status FLEET`)
    assert "2 -> 60" in row and " 60 " in row and " 12m " in row
    assert "unserved 3: 60 instances for 5,94" in row
    assert row.endswith("...")
    [shadow] = [line for line in lines if line.startswith("casual_puzzle-na-east")]
    assert " shadow " in shadow and "9 instances for 880 players; nowc" in shadow
    [none] = [line for line in lines if line.startswith("ranked_arena-na-east")]
    assert none.split()[1:] == ["scale", "1-60", "none", "-", "-", "-", "-"]
    assert "overrides in force: none" in out and "accuracy: not scored yet" in out


def test_status_wide_and_one_fleet_show_the_full_reason(
    decided: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = _status(decided, capsys, monkeypatch, "--wide")
    assert (
        TAIL in wide
        and "game_type" in wide
        and "published forecast" in wide
        and "decided by" in wide
    )
    fleet = "casual_puzzle-na-east"
    one = _status(decided, capsys, monkeypatch, "battle_royale-ap-southeast")
    assert max(len(line) for line in one.splitlines()) <= 120, one
    assert TAIL in one and "reason:" in one and fleet not in one
    # wrapped to the width, continued under the value
    reason = one[one.index("reason:") : one.index("outcome:")]
    assert " ".join(reason.removeprefix("reason:").split()) == LONG_REASON
    assert "\nmin_size:" in one and "unserved_instances:" in one and "processes:" in one
    assert main(["status", "--db", str(decided.db_path), "no-such-fleet"]) == 2
    assert "no fleet no-such-fleet" in capsys.readouterr().err


def test_compact_lines_drop_columns_before_the_reason_gets_too_narrow() -> None:
    row = {"fleet": "f", "mode": "scale", "min-max": "1-9", "decision": "1 -> 2"}
    row |= {"applied": "2", "age": "5m", "processes": "3 (telemetry)", "why": "x" * 200}
    wide = compact_lines([row], 120)
    assert [len(line) for line in wide] == [len(wide[0]), len(wide[1]), 120]
    assert "processes" in wide[0]
    narrow = compact_lines([row], 50)
    assert max(len(line) for line in narrow) <= 50 and "processes" not in narrow[0]
    assert narrow[2].endswith("...")
    # the longest fleet name allowed (64 characters) still leaves the reason its columns
    longest = compact_lines([row | {"fleet": "f" * 64}], 120)
    assert max(len(line) for line in longest) == 120 and longest[2].endswith("x...")
