"""Shared helpers of tests/test_reliability.py: fleet specs, seeded forecasts, table counts, a
secret scanner. Moto groups, call logs and AWS faults are in helpers_aws.py. No fixtures here
(conftest.py holds those)."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.stages.fleets import upsert_fleets
from models.policy import FleetSpec

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2024, 5, 1, 10, 0)
INJECTION = "x'; drop table metrics; --"


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
        safety_margin=0.0,
        scale_in_stabilisation_minutes=30,
    )
    base.update(kw)
    return FleetSpec(**base)


def seed(
    settings: Settings,
    fleets: list[FleetSpec],
    *,
    players: float = 1000.0,
    created: datetime = NOW - timedelta(hours=1),
    observed: float | None = None,
    observed_at: datetime = NOW - timedelta(minutes=30),
    run_id: str = "run-1",
    hours: range = range(-1, 5),
) -> None:
    """Fleets, one forecast run per (game type, region) whose upper quantile is ``players``,
    and optionally one observed demand value."""
    with db.session(settings.db_path) as con:
        upsert_fleets(con, fleets)
        for game_type, region in {(f.game_type, f.region) for f in fleets}:
            for h in hours:
                con.execute(
                    "insert into forecasts (run_id, game_type, region, metric, ts, yhat, "
                    "yhat_lower, yhat_upper, model, created_at) "
                    "values (?, ?, ?, 'players', ?, ?, ?, ?, 'prophet', ?)",
                    [run_id, game_type, region, created + timedelta(hours=1 + h), players,
                     players * 0.8, players, created],
                ).fetchall()  # fmt: skip
            if observed is not None:
                con.execute(
                    "insert into metrics values (?, ?, ?, 'players', ?, 'b1')",
                    [observed_at, game_type, region, observed],
                ).fetchall()


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.sql(sql, params=params).fetchall()
    finally:
        con.close()


def table_counts(db_path: Path) -> dict[str, int]:
    names = ("metrics", "quarantine", "ingest_batches")
    return {t: query(db_path, f"select count(*) from {t}")[0][0] for t in names}  # noqa: S608


def write_metrics_csv(path: Path, rows: int, *, start: datetime = NOW) -> None:
    """A valid long metrics file: ``rows`` hourly points spread over 50 game types."""
    lines = ["ts,game_type,region,metric,value"]
    per = max(1, rows // 50)
    for i in range(rows):
        g, h = divmod(i, per)
        ts = start - timedelta(hours=per - h)
        lines.append(f"{ts:%Y-%m-%dT%H:%M:%S},game_{g},global,players,{100 + i % 97}")
    path.write_text("\n".join(lines) + "\n")


# AWS access key ids (AKIA... long-term, ASIA... temporary) and a 40-char secret assigned to a
# secret-looking name. Patterns as in detect-secrets' AWSKeyDetector.
KEY_ID = re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b")
SECRET = re.compile(
    r"aws.{0,20}?(?:secret|key).{0,20}?['\"=:\s]\s*['\"]?([A-Za-z0-9/+]{40})['\"]?", re.I
)


def find_keys(text: str) -> list[str]:
    return KEY_ID.findall(text) + SECRET.findall(text)


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607 - the git on PATH, as in every CI job
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / p for p in out.split("\0") if p]
