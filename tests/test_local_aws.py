"""``fleetcast local-aws up|down``: a real detached moto server, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

from fleetcast.interface.sample import generate
from fleetcast.resources.local_aws import _is_moto, free_port
from fleetcast.stages.fleets import import_fleets, read_fleet_file

FLEETCAST = str(Path(sys.executable).with_name("fleetcast"))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETCAST_", "AWS_"))}
    return subprocess.run(
        [FLEETCAST, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_up_creates_one_group_per_fleet_prints_the_environment_and_down_stops_it(
    tmp_path: Path,
) -> None:
    generate(tmp_path / "landing", days=1, seed=3)
    fleets = tmp_path / "fleets.csv"
    (tmp_path / "landing" / "fleets.csv").rename(fleets)
    specs = read_fleet_file(fleets)
    import_fleets(fleets, tmp_path / "fleetcast.duckdb")
    port = free_port()
    up = _cli(["local-aws", "up", "--port", str(port)], tmp_path)
    state_file = tmp_path / ".fleetcast" / "local-aws.json"
    try:
        assert up.returncode == 0, up.stderr
        env = dict(
            line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
        )  # stdout is only `export K=V` lines: eval "$(fleetcast local-aws up)" works
        assert env["FLEETCAST_AWS_ENDPOINT"] == f"http://127.0.0.1:{port}"
        assert env["AWS_DEFAULT_REGION"] == "us-east-1" and env["AWS_ACCESS_KEY_ID"]
        asg = boto3.client(
            "autoscaling",
            endpoint_url=env["FLEETCAST_AWS_ENDPOINT"],
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        groups = asg.describe_auto_scaling_groups()["AutoScalingGroups"]
        assert sorted(g["AutoScalingGroupName"] for g in groups) == sorted(
            s.asg_name for s in specs
        )
        for g in groups:
            assert {"Key": "fleetcast:managed", "Value": "true"}.items() <= g["Tags"][0].items()
        # a second `up` reuses the server and keeps its state
        asg.set_desired_capacity(AutoScalingGroupName=specs[0].asg_name, DesiredCapacity=3)
        again = _cli(["local-aws", "up", "--port", str(free_port())], tmp_path)
        assert again.returncode == 0 and "already running" in again.stderr
        assert f":{port}" in again.stdout
        [g] = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[specs[0].asg_name])[
            "AutoScalingGroups"
        ]
        assert g["DesiredCapacity"] == 3
        pid = json.loads(state_file.read_text())["pid"]
    finally:
        down = _cli(["local-aws", "down"], tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not state_file.exists()
    assert not _is_moto(pid)  # gone (or a zombie waiting for its reaper)
    assert _cli(["local-aws", "env"], tmp_path).returncode == 1
    assert "no local AWS server" in _cli(["local-aws", "down"], tmp_path).stdout
