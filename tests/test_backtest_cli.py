"""``fleetcast backtest`` end to end on a real DuckDB file: contracted CSV, fleets row,
no look-ahead on the CSV rows, clear errors."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main
from fleetcast.resources import db
from fleetcast.stages.backtest import CSV_COLUMNS

T0 = datetime(2026, 1, 5)
HOURS = 24 * 16


def _values(seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = np.arange(HOURS)
    daily = np.exp(0.8 * (np.cos(2 * np.pi * (h % 24 - 20) / 24) - 1))
    return np.round(2000 * daily * np.exp(rng.normal(0, 0.04, HOURS)))


def _load(settings: Settings, values: np.ndarray, skip: int | None = None) -> None:
    rows = [
        (T0 + timedelta(hours=i), "arena", "eu", "players", float(v), "t")
        for i, v in enumerate(values)
        if i != skip
    ]
    with db.session(settings.db_path) as con:
        con.execute("delete from metrics").fetchall()
        con.executemany(
            "insert into metrics (ts, game_type, region, metric, value, batch_id) "
            "values (?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.execute("delete from events").fetchall()
        con.execute(
            "insert into events (event_id, name, kind, game_type, region, starts_at, ends_at, "
            "batch_id) values ('e1', 'cup', 'tournament', null, 'eu', ?, ?, 't')",
            [T0 + timedelta(days=14, hours=19), T0 + timedelta(days=14, hours=22)],
        ).fetchall()


def _run(settings: Settings, out: Path, *extra: str) -> int:
    return main(
        [
            "--db",
            str(settings.db_path),
            "backtest",
            "--game-type",
            "arena",
            "--region",
            "eu",
            "--metric",
            "players",
            "--start",
            (T0 + timedelta(days=14)).isoformat(),
            "--lead",
            "2",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_cli_writes_the_contracted_csv(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(settings, _values(), skip=HOURS - 5)
    out = tmp_path / "plan.csv"
    assert _run(settings, out, "--unit-capacity", "100") == 0
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 48  # the last two days, --end defaults to the newest hour
    assert rows[0]["ts"] == "2026-01-19T00:00:00"
    assert {r["game_type"] for r in rows} == {"arena"}
    assert {(r["region"], r["metric"]) for r in rows} == {("eu", "players")}
    assert rows[-5]["demand"] == ""  # the missing hour stays missing
    for r in rows:
        assert float(r["capacity"]) % 100 == 0 and float(r["capacity"]) > 0
        assert float(r["forecast"]) > 0
    printed = capsys.readouterr().out
    for label in (
        "policy",
        "reactive",
        "seasonal",
        "reactive @ policy idle",
        "seasonal @ policy idle",
    ):
        assert label in printed
    assert "unit 100" in printed


def test_cli_uses_the_fleets_row_when_there_is_one(settings: Settings, tmp_path: Path) -> None:
    _load(settings, _values())
    with db.session(settings.db_path) as con:
        con.execute(
            "insert into fleets (fleet, game_type, region, asg_name, capacity_players, "
            "min_size, max_size, safety_margin) values ('arena-eu', 'arena', 'eu', 'asg', 70, "
            "3, 500, 0.2)"
        ).fetchall()
    out = tmp_path / "plan.csv"
    assert _run(settings, out) == 0
    plan = pl.read_csv(out)
    assert (plan["capacity"] % 70 == 0).all()
    assert plan["capacity"].min() >= 3 * 70


def test_cli_rows_before_a_change_are_unchanged(settings: Settings, tmp_path: Path) -> None:
    """No look-ahead, shown on the CSV: data changed after hour d leaves rows <= d + lead."""
    values = _values()
    _load(settings, values)
    first = tmp_path / "a.csv"
    assert _run(settings, first, "--unit-capacity", "50") == 0
    cut = 24 * 15 + 6
    changed = values.copy()
    changed[cut + 1 :] *= 2.5
    _load(settings, changed)
    second = tmp_path / "b.csv"
    assert _run(settings, second, "--unit-capacity", "50") == 0
    a, b = pl.read_csv(first), pl.read_csv(second)
    limit = (T0 + timedelta(hours=cut + 2)).isoformat()
    keep = ["ts", "forecast", "capacity"]
    assert (
        a.filter(pl.col("ts") <= limit)
        .select(keep)
        .equals(b.filter(pl.col("ts") <= limit).select(keep))
    )
    assert not a.filter(pl.col("ts") > limit)["capacity"].equals(
        b.filter(pl.col("ts") > limit)["capacity"]
    )


def test_cli_errors_are_clear(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(settings, _values())
    assert _run(settings, tmp_path / "p.csv") == 1  # no fleets row, no --unit-capacity
    assert "--unit-capacity" in capsys.readouterr().err
    bad = main(
        ["--db", str(settings.db_path), "backtest", "--game-type", "x'; drop table metrics; --",
         "--start", "2026-01-19", "--lead", "1", "--out", str(tmp_path / "p.csv")]
    )  # fmt: skip
    assert bad == 1
    assert "invalid game type" in capsys.readouterr().err


def test_task_fn_writes_the_plan_and_returns_the_table(settings: Settings, tmp_path: Path) -> None:
    from fleetcast.stages.backtest import BacktestRequest
    from tasks.backtest import backtest_replay

    _load(settings, _values())
    req = BacktestRequest("arena", "players", T0 + timedelta(days=15), 1, "eu", unit_capacity=100.0)
    out = tmp_path / "task.csv"
    summary = backtest_replay.fn(settings, req, out)
    assert pl.read_csv(out).columns == list(CSV_COLUMNS)
    plans = [row["plan"] for row in summary["table"]]  # type: ignore[union-attr]
    assert plans[:3] == ["policy", "reactive", "seasonal"]


def test_cli_sweep_prints_the_curve_at_equal_over_provisioning(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(settings, _values())
    assert _run(settings, tmp_path / "p.csv", "--unit-capacity", "20", "--sweep") == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("curve:") :].splitlines()
    assert "short@+5%" in table[1] and "unserv@+20%" in table[1]
    body = table[2 : table.index("")]
    rows = {line.split("  ")[0].strip(): line for line in body}
    assert set(rows) == {"policy", "forecast x (1+m)", "reactive", "seasonal rule"}
    # each reference reaches every level (a margin), so it prints a figure at each
    for name in ("reactive", "seasonal rule", "forecast x (1+m)"):
        assert rows[name].count("%") == 6
    # each protective rule, with what it added and prevented (off by default: nothing)
    rules = printed[printed.index("protective rules") :].splitlines()
    assert [line.split()[0] for line in rules[2:5]] == ["tolerance", "stabilisation", "step"]
