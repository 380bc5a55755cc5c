"""docs/operations.md "Try it locally", command by command, in a copy of the project.

The section's ``sh`` blocks are run as written in one bash session (so ``source``, ``eval`` and
``export`` carry over), except: ``make setup`` (the copy uses this checkout's ``.venv``, with the
copy first on ``PYTHONPATH``), the ports (free ones instead of 4200 and 5055), and the blocks that
start with ``# terminal N`` (the server, the worker), which run in the background as a second
and third terminal would. Then it checks what the section promises: a pipeline run that paused
for approval and was approved, a backfill that replayed decisions on a range with data, the
schedules paused, and the groups on moto resized.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetcast.resources.local_aws import free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(1800)]  # 14 min on a loaded 2-core box

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"


ARTIFACTS = """
import asyncio, json
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as c:
        arts = await c.read_artifacts()
        out = {}
        for a in sorted(arts, key=lambda a: a.created):
            if a.key:
                out[a.key] = {"flow_run": str(a.flow_run_id) if a.flow_run_id else None,
                              "task_run": str(a.task_run_id) if a.task_run_id else None,
                              "data": str(a.data)[:200000]}
        print(json.dumps(out))

asyncio.run(main())
"""


def _api(port: int) -> dict[str, str]:
    return {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}


def section_blocks() -> list[str]:
    text = DOC.read_text()
    start = text.index("## Try it locally")
    end = text.index("\n## ", start + 5)
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)


def _script(blocks: list[str], api_port: int, moto_port: int, logs: Path) -> str:
    lines = ["set -euo pipefail"]
    for block in blocks:
        block = block.replace("4200", str(api_port))
        block = block.replace(
            "fleetcast local-aws up", f"fleetcast local-aws up --port {moto_port}"
        )
        first = block.splitlines()[0]
        if first.startswith("# terminal"):
            name = first.split(":")[0].removeprefix("# ").replace(" ", "-")
            command = " ".join(ln for ln in block.splitlines() if not ln.startswith("#"))
            lines.append(f"setsid {command} > {logs}/{name}.log 2>&1 &")
            lines.append(f"echo $! > {logs}/{name}.pid")
            if "server start" in command:
                lines.append(
                    "for i in $(seq 150); do curl -s $PREFECT_API_URL/health | grep -q true "
                    "&& break; sleep 1; done"
                )
            continue
        for line in block.splitlines():
            if line.strip().startswith("make setup"):
                line = line.replace("make setup && ", "")
                if line.strip().startswith("make setup"):
                    continue
            lines.append(f"echo '+ {line.replace(chr(39), '')[:150]}'")
            lines.append(line)
    return "\n".join(lines) + "\n"


def _stop(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def _copy_project(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")


def test_try_it_locally_as_written(tmp_path: Path) -> None:
    project = tmp_path / "fleetcast"
    logs = tmp_path / "logs"
    logs.mkdir()
    _copy_project(project)
    api_port, moto_port = free_port(), free_port()
    blocks = section_blocks()
    assert len(blocks) >= 5 and any("terminal 2" in b for b in blocks)
    script = project / "try.sh"
    script.write_text(_script(blocks, api_port, moto_port, logs))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "FLEETCAST_", "AWS_", "PYTEST_", "VIRTUAL_ENV"))
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONPATH=str(project),  # the copy's code, not this checkout's (editable install)
        PYTHONUNBUFFERED="1",
        PATH=os.environ["PATH"],
    )
    try:
        done = subprocess.run(
            ["bash", str(script)], cwd=project, env=env, capture_output=True, text=True,
            timeout=1500,
        )  # fmt: skip
        worker_log = (
            (logs / "terminal-3.log").read_text() if (logs / "terminal-3.log").exists() else ""
        )
        assert done.returncode == 0, (done.stdout[-6000:], done.stderr[-3000:], worker_log[-5000:])
        out = done.stdout
        assert "approved: pipeline-casual_puzzle" in out, out[-4000:]
        assert "pipeline-casual_puzzle" in out and ": Completed" in out
        assert "schedules on: none" in out  # deployed with every schedule paused
        assert out.count("Flow run finished successfully in 'Completed'") == 1, out[-3000:]
        # the backfill replayed decisions on a day that has data
        replays = list((project / ".fleetcast" / "reports" / "backfill").glob("*.csv"))
        assert replays, out[-3000:]
        assert all(len(p.read_text().splitlines()) > 2 for p in replays)
        # groups on moto were resized by the approved run
        state = json.loads((project / ".fleetcast" / "local-aws.json").read_text())
        import boto3

        dummy = "testing"  # moto's; never a real key
        asg = boto3.client(
            "autoscaling", endpoint_url=state["url"], region_name="us-east-1",
            aws_access_key_id=dummy, aws_secret_access_key=dummy,
        )  # fmt: skip
        desired = {
            g["AutoScalingGroupName"]: g["DesiredCapacity"]
            for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
            if "casual_puzzle" in g["AutoScalingGroupName"]
        }
        mins = {
            row.split(",")[4]: int(row.split(",")[11])
            for row in (project / "fleets.csv").read_text().splitlines()[1:]
            if row.split(",")[1] == "casual_puzzle"
        }
        assert any(desired[g] != mins[g] for g in mins), (desired, mins)

        # what the UI shows: the flow run's own summary, inline plots, the replay figures
        query = subprocess.run(
            [sys.executable, "-c", ARTIFACTS], cwd=project, env={**env, **_api(api_port)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert query.returncode == 0, query.stderr[-3000:]
        arts = json.loads(query.stdout.strip().splitlines()[-1])
        summary = arts["pipeline-summary-casual-puzzle"]
        assert summary["flow_run"] and summary["task_run"] is None  # the run's own artifact
        assert "data:image/png;base64," in arts["plots-casual-puzzle"]["data"]
        assert "hours short" in arts["backfill-replay-casual-puzzle"]["data"]
        assert "approved" in out

        # screenshots for a person to look at (skipped without Chromium)
        report = subprocess.run(
            [str(Path(sys.executable).with_name("fleetcast")), "report"], cwd=project, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert report.returncode == 0, report.stderr[-2000:]
        if shutil.which("chromium"):
            # FLEETCAST_TEST_SCREENSHOTS keeps them somewhere to look at after the test
            shots = Path(os.environ.get("FLEETCAST_TEST_SCREENSHOTS") or tmp_path / "screenshots")
            taken = subprocess.run(
                [sys.executable, str(project / "scripts" / "screenshots.py"), "--out", str(shots),
                 "--report", report.stdout.strip().rsplit(" ", 1)[-1]],
                cwd=project, env={**env, **_api(api_port)}, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            assert taken.returncode == 0, taken.stdout + taken.stderr[-3000:]
            print(f"screenshots in {shots}: {sorted(p.name for p in shots.glob('*.png'))}")
    finally:
        _stop(logs / "terminal-3.pid")  # the worker before the server
        _stop(logs / "terminal-2.pid")
        subprocess.run(
            [str(Path(sys.executable).with_name("fleetcast")), "local-aws", "down"],
            cwd=project, env=env, capture_output=True, timeout=60,
        )  # fmt: skip
