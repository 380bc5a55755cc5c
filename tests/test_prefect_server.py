"""A real Prefect server on localhost: deploy from prefect.yaml, a process worker, one run.

Runs by default (so `make test` and CI run it); select or skip it with `-m server` /
`-m "not server"`. Everything it starts (prefect server, worker, moto) is stopped at the end:
worker first (a worker whose server is gone ignores SIGTERM), then the server; SIGTERM, then
SIGKILL after a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from fleetcast.interface.sample import generate
from fleetcast.resources.local_aws import MotoServer, free_port, provision_groups
from fleetcast.stages.fleets import import_fleets, read_fleet_file

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]  # 7 min on a loaded 2-core box

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GAME_TYPE = "casual_puzzle"
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
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
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
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
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
        "run-summary-casual-puzzle",
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

    import boto3

    asg = boto3.client("autoscaling", endpoint_url=stack.moto.url, region_name="us-east-1")
    groups = {
        g["AutoScalingGroupName"]: g["DesiredCapacity"]
        for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
    }
    for _fleet, group, mode, target, applied_desired, applied in decisions:
        if mode == "scale" and applied:
            assert groups[group] == applied_desired == target
