"""A local moto server standing in for AWS over HTTP (demo and tests only).

fleetcast's AWS code talks to it exactly as to AWS; only the endpoint URL differs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        # self.url is the http://127.0.0.1:<port> of the server start_moto started
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - a local http URL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The one machine image the stand-in's launch templates name. Without it moto loads about 1,300
# public images and scans them all for every instance a group launches (on the 1,000-group
# cycle of benchmarks/decision_cycle.py moto's CPU went from 37.9 to 28.5 s; none of it is
# fleetcast's work).
AMIS = Path(__file__).with_name("moto_amis.json")


def _moto(port: int) -> tuple[list[str], dict[str, str]]:
    """The moto server's command line and environment (its machine images: ``AMIS``)."""
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    return cmd, {**os.environ, "MOTO_AMIS_PATH": str(AMIS)}


def start_moto(port: int | None = None, log: Path | None = None) -> MotoServer:
    port = port or free_port()
    cmd, env = _moto(port)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()  # noqa: S310 - http://127.0.0.1
            return MotoServer(url=url, process=proc)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start within 60 s")


@contextlib.contextmanager
def moto_server(port: int | None = None) -> Iterator[MotoServer]:
    """Start a moto server with dummy credentials in the environment; stop it afterwards."""
    server = start_moto(port)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto accepts any; never real keys
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def provision_groups(
    endpoint_url: str,
    region: str,
    groups: list[tuple[str, int, int, int]],
) -> None:
    """Create Auto Scaling groups on a local moto server for the demo: (name, min, max, desired).

    Real deployments create their groups with their own infrastructure code; fleetcast only
    resizes groups tagged ``fleetcast:managed=true``. Existing groups are left as they are.
    """
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint_url, region_name=region)
    asg = boto3.client("autoscaling", endpoint_url=endpoint_url, region_name=region)
    existing = {
        g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]
    }
    templates = {
        t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]
    }
    if "fleetcast-demo" not in templates:
        ec2.create_launch_template(
            LaunchTemplateName="fleetcast-demo",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c6i.xlarge"},
        )
    for name, min_size, max_size, desired in groups:
        if name in existing:
            continue
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": "fleetcast-demo", "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            AvailabilityZones=[f"{region}a"],
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": "fleetcast:managed",
                    "Value": "true",
                    "PropagateAtLaunch": False,
                }
            ],
        )


# ------------------------------------------------------------------ a moto server that outlives
# the command (`fleetcast local-aws up|down`): for trying the Prefect path on one machine.

# moto accepts any credentials; these are placeholders, never real keys
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class LocalAws:
    """A detached moto server recorded in a state file (pid, port, url, log)."""

    pid: int
    port: int
    url: str
    log: str

    def environment(self, region: str) -> dict[str, str]:
        """What a shell, a Prefect worker or a flow run needs to use it."""
        return {
            "FLEETCAST_AWS_ENDPOINT": self.url,
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }


def _alive(state: LocalAws) -> bool:
    try:
        os.kill(state.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        # an http:// URL this module wrote itself (the local moto server), never user input
        urllib.request.urlopen(f"{state.url}/moto-api/", timeout=2).read()  # noqa: S310
    except OSError:
        return False
    return True


def read_state(state_file: Path) -> LocalAws | None:
    """The recorded server if it still runs and answers; None otherwise."""
    import json

    if not state_file.exists():
        return None
    try:
        state = LocalAws(**json.loads(state_file.read_text()))
    except (ValueError, TypeError):
        return None
    return state if _alive(state) else None


def start_detached(state_file: Path, port: int) -> LocalAws:
    """Start a moto server in its own session (it keeps running after this process exits) and
    record it in ``state_file``. Refuses a port already in use."""
    import json

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: pick another with --port")
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log = state_file.with_suffix(".log")
    cmd, env = _moto(port)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )  # fmt: skip
    state = LocalAws(pid=proc.pid, port=port, url=f"http://127.0.0.1:{port}", log=str(log))
    deadline = time.monotonic() + 60
    while not _alive(state):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"moto server did not start: see {log}")
        time.sleep(0.2)
    state_file.write_text(json.dumps(state.__dict__))
    return state


def stop_detached(state_file: Path) -> LocalAws | None:
    """Stop the recorded server (SIGTERM, then SIGKILL after 10 s) and remove the state file."""
    import json
    import signal

    if not state_file.exists():
        return None
    try:
        state = LocalAws(**json.loads(state_file.read_text()))
    except (ValueError, TypeError):
        state_file.unlink()
        return None
    if _is_moto(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_moto(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_moto(state.pid):
            os.kill(state.pid, signal.SIGKILL)
    state_file.unlink()
    return state


def _is_moto(pid: int) -> bool:
    """The pid runs a moto server (not a recycled pid of something else)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # no /proc (macOS): trust the state file
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"moto" in cmdline  # a zombie has already exited
