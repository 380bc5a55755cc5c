"""A real Prefect server on localhost: deploy from prefect.yaml, a process worker, one run.

Runs by default (so `make test` and CI run it); select or skip it with `-m server` /
`-m "not server"`. Everything it starts (prefect server, worker, moto) is stopped at the end:
worker first (a worker whose server is gone ignores SIGTERM), then the server; SIGTERM, then
SIGKILL after a timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fleetcast.interface.sample import generate
from fleetcast.resources.local_aws import MotoServer, free_port, provision_groups
from fleetcast.stages.fleets import import_fleets, read_fleet_file

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]  # 7 min on a loaded 2-core box

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GAME_TYPE = "casual_puzzle"
KEY = "casual-puzzle"  # its artifact keys
DEPLOYMENT = f"pipeline/pipeline-{GAME_TYPE}"
POOL = "fleetcast"
LIMIT = "fleetcast-db"


@dataclass
class Stack:
    env: dict[str, str]
    db: Path
    logs: Path
    moto: MotoServer
    processes: list[subprocess.Popen[bytes]]  # stopped in reverse order: worker, then server


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL it after ``timeout``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _prefect(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "prefect"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - local
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"prefect server not healthy after {timeout} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def stack(tmp_path: Path, moto: MotoServer) -> Iterator[Stack]:
    yield from _stack(tmp_path, moto, {})


def _stack(tmp_path: Path, moto: MotoServer, extra_env: dict[str, str]) -> Iterator[Stack]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    landing = tmp_path / "landing"
    db_path = tmp_path / "fleetcast.duckdb"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "FLEETCAST_", "PYTEST_"))
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_API_URL=api,
        PREFECT_UI_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        DO_NOT_TRACK="1",
        FLEETCAST_DB=str(db_path),
        FLEETCAST_LANDING=str(landing),
        FLEETCAST_WORK_DIR=str(tmp_path / "work"),
        FLEETCAST_AWS_ENDPOINT=moto.url,
        FLEETCAST_CONCURRENCY_LIMIT=LIMIT,
        AWS_ACCESS_KEY_ID="testing",  # for the local moto server only
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy value
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env)
    logs = tmp_path / "logs"
    logs.mkdir()
    server_log = logs / "server.log"
    t0 = time.monotonic()
    server = _start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        server_log,
    )
    processes = [server]
    try:
        # While the server starts: a small sample dataset, its fleets, their groups on moto.
        end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        generate(landing, days=8, seed=11, end=end - timedelta(hours=1))
        fleets_file = landing / "fleets.csv"
        specs = read_fleet_file(fleets_file)
        import_fleets(fleets_file, db_path)
        fleets_file.unlink()  # configuration, not telemetry
        provision_groups(
            moto.url, "us-east-1", [(s.asg_name, s.min_size, s.max_size, s.min_size) for s in specs]
        )
        _wait_healthy(api, server, server_log, timeout=150)
        print(f"server healthy after {time.monotonic() - t0:.1f} s")
        yield Stack(env=env, db=db_path, logs=logs, moto=moto, processes=processes)
    finally:
        for proc in reversed(processes):
            _stop(proc)


def _client_query(env: dict[str, str]) -> dict:
    """Flow runs and artifacts, read from the server by a subprocess (its own settings)."""
    code = """
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

async def main():
    async with get_client() as c:
        runs = await c.read_flow_runs()
        arts = await c.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="casual-puzzle"))
        )
        print(json.dumps({
            "runs": [
                {"name": r.name, "state": r.state.type.value, "deployment": str(r.deployment_id)}
                for r in runs if r.parent_task_run_id is None
            ],
            "artifacts": sorted({a.key for a in arts if a.key}),
        }))

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_deploy_and_run_one_game_type_on_a_real_server(stack: Stack) -> None:
    env = stack.env
    t0 = time.monotonic()
    for args in (
        ["work-pool", "create", POOL, "--type", "process"],
        ["global-concurrency-limit", "create", LIMIT, "--limit", "1"],
    ):
        out = _prefect(args, env)
        assert out.returncode == 0, out.stdout + out.stderr
    # The worker starts (and polls the pool) while the deployment is created.
    worker = _start(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "1"],
        env,
        stack.logs / "worker.log",
    )
    stack.processes.append(worker)
    out = subprocess.run(
        [str(BIN / "fleetcast"), "deployments", "sync", "--game-type", GAME_TYPE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    t_deploy = time.monotonic() - t0

    t1 = time.monotonic()
    out = _prefect(
        ["deployment", "run", DEPLOYMENT, "--watch", "--watch-timeout", "300"], env, timeout=330
    )
    t_run = time.monotonic() - t1
    print(f"deploy {t_deploy:.1f} s, run to a final state {t_run:.1f} s")
    worker_log = (stack.logs / "worker.log").read_text()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:] + worker_log[-6000:]
    assert "Completed" in out.stdout

    seen = _client_query(env)
    runs = [r for r in seen["runs"] if r["name"].startswith(f"pipeline-{GAME_TYPE}")]
    assert [r["state"] for r in runs] == ["COMPLETED"], seen
    assert {
        "forecast-casual-puzzle",
        "capacity-plan-casual-puzzle",
        "pipeline-summary-casual-puzzle",
    } <= set(seen["artifacts"]), seen

    con = duckdb.connect(str(stack.db), read_only=True)
    try:
        forecasts = con.sql(
            "select count(*), count(distinct region) from forecasts where game_type = ?",
            params=[GAME_TYPE],
        ).fetchall()[0]
        other = con.sql(
            "select count(*) from forecasts where game_type <> ?", params=[GAME_TYPE]
        ).fetchall()[0][0]
        decisions = con.sql(
            "select fleet, asg_name, mode, target_desired, applied_desired, applied "
            "from allocations where game_type = ? order by fleet",
            params=[GAME_TYPE],
        ).fetchall()
    finally:
        con.close()
    assert forecasts[0] > 0 and forecasts[1] >= 1
    assert other == 0  # one game type's deployment touches only that game type
    assert decisions, "no allocation decision recorded"

    from helpers_aws import all_desired

    groups = all_desired(stack.moto.url)
    for _fleet, group, mode, target, applied_desired, applied in decisions:
        if mode == "scale" and applied:
            assert groups[group] == applied_desired == target


# ------------------------------------------------------------------- approval that holds

LEASE_SECONDS = 30  # the shortest deployment concurrency lease Prefect 3.9.1 accepts (ge=30)


@pytest.fixture
def approval_stack(tmp_path: Path, moto: MotoServer) -> Iterator[Stack]:
    yield from _stack(
        tmp_path,
        moto,
        {
            # Leases of deployment concurrency slots last 30 s instead of 300 s: a paused run
            # that depended on one would be killed within about a minute.
            "PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION": str(LEASE_SECONDS),
            # No observed demand: no reactive floor, so no scale-out exception past the band.
            "FLEETCAST_OBSERVED_MAX_AGE_MINUTES": "1",
        },
    )


def _api(env: dict[str, str], path: str, body: dict | None = None) -> Any:
    # the local test server's http://127.0.0.1 API
    req = urllib.request.Request(  # noqa: S310 - a local http URL
        env["PREFECT_API_URL"] + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a local http URL
        return json.loads(resp.read())


def _run_deployment(env: dict[str, str], params: dict[str, Any]) -> str:
    out = _prefect(
        ["deployment", "run", DEPLOYMENT, "--param", f"params={json.dumps(params)}"], env
    )
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout
    return found.group(1)


def _wait_state(
    env: dict[str, str], run_id: str, states: set[str], timeout: float, stack: Stack
) -> str:
    started = time.monotonic()
    state = ""
    while time.monotonic() - started < timeout:
        state = _api(env, f"/flow_runs/{run_id}")["state"]["type"]
        if state in states:
            return state
        if state in {"FAILED", "CRASHED", "CANCELLED"} - states:
            break
        time.sleep(2)
    worker_log = (stack.logs / "worker.log").read_text()[-8000:]
    raise AssertionError(f"run {run_id} is {state}, not {states}:\n{worker_log}")


def _fleetcast(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fleetcast"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _read(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params or []).fetchall()
    finally:
        con.close()


@pytest.mark.timeout(720)
def test_approval_holds_while_paused_past_a_lease_then_applies_once(
    approval_stack: Stack,
) -> None:
    """Every change of casual_puzzle's fleets needs approval (a rule of 0 instances). A pipeline
    run records the changes as pending and pauses for longer than a concurrency lease lasts;
    meanwhile a second run of the same deployment and `fleetcast scale` apply none of them;
    the paused run is still PAUSED (not killed); its form's approval applies them once."""
    import boto3

    stack = approval_stack
    env = stack.env
    # Every run must propose the same change, whatever the minute: a max one above the min (the
    # forecast needs more at the daily peak) and a window of a day (so the peak is in it).
    con = duckdb.connect(str(stack.db))
    try:
        con.execute(
            "update fleets set max_size = min_size + 1, window_minutes = 1440 where game_type = ?",
            [GAME_TYPE],
        )
    finally:
        con.close()
    out = _fleetcast(
        ["approval", "set", "--game-type", GAME_TYPE, "--max-change-instances", "0"], env
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for args in (
        ["work-pool", "create", POOL, "--type", "process"],
        ["global-concurrency-limit", "create", LIMIT, "--limit", "1"],
    ):
        out = _prefect(args, env)
        assert out.returncode == 0, out.stdout + out.stderr
    # --limit 3: the paused run's process stays alive, so it holds one of the worker's places
    worker = _start(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "3"],
        env,
        stack.logs / "worker.log",
    )
    stack.processes.append(worker)
    out = subprocess.run(  # the per-game-type deployments, schedules paused (issue 15)
        [str(BIN / "fleetcast"), "deployments", "sync", "--game-type", GAME_TYPE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    dep = _api(env, f"/deployments/name/pipeline/pipeline-{GAME_TYPE}")
    assert dep.get("global_concurrency_limit") is None  # a flow that can pause has no slot

    asg = boto3.client("autoscaling", endpoint_url=stack.moto.url, region_name="us-east-1")

    def desired() -> dict[str, int]:
        return {
            g["AutoScalingGroupName"]: g["DesiredCapacity"]
            for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
        }

    before = desired()
    first = _run_deployment(env, {"game_type": GAME_TYPE, "approval_timeout_minutes": 10})
    _wait_state(env, first, {"PAUSED"}, 300, stack)
    t_paused = time.monotonic()
    pending = _read(
        stack.db,
        "select change_id, fleet, asg_name, current_desired, proposed_desired, held_desired, "
        "waiting from pending_changes where status = 'pending' order by fleet",
    )
    assert pending, "no change waits for approval"
    assert all(first in w for *_, w in pending), pending  # the record names the waiting run
    held = {asg_name: (cur, prop, h) for _, _, asg_name, cur, prop, h, _ in pending}
    assert all(prop == cur + 1 and h == cur for cur, prop, h in held.values()), held
    assert {g: desired()[g] for g in held} == {g: before[g] for g in held}
    # The form the UI shows: an explicit choice with no default; what happens unanswered;
    # fleet, current -> proposed, reason and expiry of each change.
    keyset = _api(env, f"/flow_runs/{first}")["state"]["state_details"]["run_input_keyset"]
    schema = _api(env, f"/flow_runs/{first}/input/{keyset['schema']}")
    text = _api(env, f"/flow_runs/{first}/input/{keyset['description']}")
    choice = schema["properties"]["decision"]
    assert "decision" in schema["required"] and "default" not in choice, schema
    assert choice.get("enum") == ["approve", "reject"], schema
    assert "nothing is applied" in text and "expires (UTC)" in text, text
    for _, fleet, _, cur, prop, _, _ in pending:
        assert f"| {fleet} | {cur} -> {prop} |" in text, text

    # A second run of the same deployment, meanwhile: it starts (no slot to wait for), plans,
    # and keeps the held fleets where they are.
    second = _run_deployment(
        env,
        {"game_type": GAME_TYPE, "retrain": "never", "approval_timeout_minutes": 0.1},
    )
    _wait_state(env, second, {"COMPLETED"}, 240, stack)
    # ... and the CLI.
    out = _fleetcast(["scale", "--game-type", GAME_TYPE], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {g: desired()[g] for g in held} == {g: before[g] for g in held}
    still = _read(stack.db, "select change_id from pending_changes where status = 'pending'")
    assert sorted(c for c, *_ in still) == sorted(c for c, *_ in pending), (
        _read(stack.db, "select * from pending_changes order by created_at"),
        _read(
            stack.db,
            "select run_id, fleet, status, current_desired, target_desired, reason "
            "from allocations order by decided_at",
        ),
    )

    # Paused for longer than a lease lasts (plus the server's 15 s lease reaper loop).
    wait = LEASE_SECONDS * 2 + 20 - (time.monotonic() - t_paused)
    if wait > 0:
        time.sleep(wait)
    assert _api(env, f"/flow_runs/{first}")["state"]["type"] == "PAUSED"
    paused_for = time.monotonic() - t_paused

    # The form's answer: approve, with a note.
    code = (
        "import sys, uuid\n"
        "from prefect.flow_runs import resume_flow_run\n"
        "resume_flow_run(uuid.UUID(sys.argv[1]), "
        "run_input={'decision': 'approve', 'note': 'big evening event'})\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, first], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    _wait_state(env, first, {"COMPLETED"}, 180, stack)
    print(f"paused {paused_for:.0f} s (lease {LEASE_SECONDS} s); approved; completed")

    after = desired()
    assert {g: after[g] for g in held} == {g: prop for g, (_, prop, _) in held.items()}
    decided = _read(
        stack.db,
        "select status, note, decided_by, applied_desired, proposed_desired "
        "from pending_changes order by fleet",
    )
    assert {(s, n) for s, n, *_ in decided} == {("approved", "big evening event")}
    assert all(by.startswith("Prefect UI") and a == p for _, _, by, a, p in decided), decided
    for _, fleet, *_ in pending:
        statuses = [
            s
            for (s,) in _read(
                stack.db,
                "select status from allocations where fleet = ? order by decided_at",
                [fleet],
            )
        ]
        assert statuses.count("pending") >= 3, statuses  # the asking run, the second, the CLI
        assert statuses.count("approved") == 1, statuses  # applied once
        assert statuses[-1] == "approved", statuses
    # What the UI shows of that run after the answer (issue 27): the capacity plan and the
    # summary published again, the approved capacity applied, nothing still "pending".
    artifacts = _api(
        env,
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [first]}}, "sort": "CREATED_DESC"},
    )
    plans = [a for a in artifacts if a.get("key") == f"capacity-plan-{KEY}"]
    assert plans, [a.get("key") for a in artifacts]
    rows = plans[0]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    shown = {r["fleet"]: r for r in rows}
    for _, fleet, _, _, prop, _, _ in pending:
        assert shown[fleet]["applied"] == f"yes: {prop}", shown[fleet]
        assert shown[fleet]["status"] == "approved", shown[fleet]
    [summary] = [a for a in artifacts if a.get("key") == f"pipeline-summary-{KEY}"][:1]
    capacity = summary["data"].split("## Capacity")[1].split("\n## ")[0]
    assert "pending" not in capacity and "approved by Prefect UI" in summary["data"], capacity
    worker_log = (stack.logs / "worker.log").read_text()
    assert "Concurrency lease renewal failed" not in worker_log
