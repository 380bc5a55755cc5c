"""The first README command's job, end to end on a small sample: after the demo, each moto
group's desired capacity equals the decision recorded in `allocations`; the report is written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from fleetcast.config import Settings
from fleetcast.interface.cli import main as cli_main
from fleetcast.interface.demo import fleet_sections, fleet_summary, import_while, run_demo


def test_demo_applies_the_recorded_plan_and_writes_the_report(
    settings: Settings, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_demo(settings, days=8, seed=3, replay_days=2)

    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        recorded = dict(
            con.sql(
                "select fleet, arg_max(coalesce(applied_desired, current_desired), decided_at) "
                "from allocations group by fleet"
            ).fetchall()
        )
        stored, quarantined, rows_in = con.sql(
            "select sum(rows_stored), sum(rows_quarantined), sum(rows_in) from ingest_batches"
        ).fetchall()[0]
    finally:
        con.close()
    after = dict(zip(result.fleets["fleet"], result.fleets["capacity_after"], strict=True))
    assert len(after) == 12 and set(recorded) == set(after)
    assert after == recorded  # the groups hold what allocations says was applied
    grew = result.fleets.filter(result.fleets["capacity_after"] > result.fleets["capacity_before"])
    assert grew.height > 0
    assert stored + quarantined == rows_in and quarantined > 0  # planted bad rows
    assert result.report.exists() and result.report.stat().st_size > 10_000
    log = (settings.work_dir / "demo.log").read_text()  # the run's log, progress included
    assert "training series: 0 of " in log and "forecasting series: " in log
    assert set(result.summary["game_type"]) == {
        "battle_royale",
        "ranked_arena",
        "casual_puzzle",
        "tournament_series",
    }

    # the 12 fleets' sections were drawn in worker processes: the page is the one drawn here,
    # one by one in this process
    fleets = fleet_summary(settings)
    drawn = fleet_sections(settings, fleets, 2)
    plots = {p: p.read_bytes() for section in drawn for p in section.images}
    assert len(plots) == 24
    assert fleet_sections(settings, fleets, 2, workers=1) == drawn
    assert {p: p.read_bytes() for p in plots} == plots

    monkeypatch.setenv("FLEETCAST_WORK_DIR", str(settings.work_dir))
    code = cli_main(["report", "--db", str(settings.db_path), "--days", "1"])
    assert code == 0
    assert (settings.reports_dir / "report.html").exists()
    assert isinstance(result.report, Path)


def test_the_prefect_server_started_in_background_is_the_one_the_flow_client_uses(
    tmp_path: Path,
) -> None:
    """In a fresh process with no PREFECT_API_URL (as `make demo` runs): after the thread is
    joined the ephemeral server answers, and the client a flow call opens talks to it instead
    of starting another."""
    script = """
import httpx
from prefect.client.orchestration import get_client
from prefect.server.api.server import SubprocessASGIServer
from fleetcast.interface.demo import prefect_server_in_background

prefect_server_in_background().join()
server = SubprocessASGIServer()
print("health", httpx.get(server.api_url + "/health").status_code)
with get_client(sync_client=True) as client:
    print("same", str(client.api_url).rstrip("/") == server.api_url.rstrip("/"))
server.stop()
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "health 200" in out.stdout and "same True" in out.stdout


def test_the_flows_libraries_are_imported_only_while_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_demo`` imports the flow's heavy libraries while it would only wait for Prefect's
    server: never once the server is up (the flow would start later)."""
    for name in ("warm_a", "warm_b"):
        (tmp_path / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    up = threading.Thread(target=lambda: None)
    up.start()
    up.join()
    import_while(up, ("warm_a",))
    assert "warm_a" not in sys.modules
    release = threading.Event()
    starting = threading.Thread(target=release.wait)
    starting.start()
    try:
        import_while(starting, ("warm_a", "warm_b"))
        assert {"warm_a", "warm_b"} <= set(sys.modules)
    finally:
        release.set()
        starting.join()
        for name in ("warm_a", "warm_b"):
            sys.modules.pop(name, None)
