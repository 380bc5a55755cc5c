"""``fleetcast local-aws up|down|env``: a local moto server standing in for AWS, with one Auto
Scaling group per fleet in the fleets table, for trying the Prefect path on one machine."""

from __future__ import annotations

import argparse
import os
import sys

from fleetcast.config import Settings

HELP = (
    "start (up) or stop (down) a local moto server standing in for AWS, with one Auto Scaling "
    "group per fleet in the fleets table; prints the environment to export "
    '(eval "$(fleetcast local-aws up)"); env prints it again'
)
DEFAULT_PORT = 5055


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fleetcast.interface.cli import _common

    common = [_common()]
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser(
        "up",
        parents=common,
        help="start the server (or reuse the running one), create missing groups, print the "
        "environment",
    )
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    sub.add_parser("down", parents=common, help="stop the server (its groups are gone)")
    sub.add_parser("env", parents=common, help="print the environment of the running server")


def _print_env(settings: Settings, env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={value}")
    print(
        f"# local AWS (moto) at {env['FLEETCAST_AWS_ENDPOINT']}; the credentials are dummies "
        "that only moto accepts",
        file=sys.stderr,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources import db
    from fleetcast.resources.local_aws import (
        DUMMY_CREDENTIALS,
        provision_groups,
        read_state,
        start_detached,
        stop_detached,
    )
    from fleetcast.stages.fleets import load_fleets

    state_file = settings.work_dir / "local-aws.json"
    if args.action == "down":
        stopped = stop_detached(state_file)
        print(f"stopped moto at {stopped.url}" if stopped else "no local AWS server running")
        return 0
    state = read_state(state_file)
    if args.action == "env":
        if state is None:
            print("no local AWS server running: `fleetcast local-aws up`", file=sys.stderr)
            return 1
        _print_env(settings, state.environment(settings.aws_region))
        return 0

    if state is None:
        state = start_detached(state_file, args.port)
        print(f"started moto (pid {state.pid}, log {state.log})", file=sys.stderr)
    else:
        print(f"moto already running (pid {state.pid})", file=sys.stderr)
    specs = []
    if settings.db_path.exists():
        with db.session(settings.db_path, read_only=True) as con:
            specs = load_fleets(con)
    if specs:
        for key, value in DUMMY_CREDENTIALS.items():  # this process talks to moto only
            os.environ.setdefault(key, value)
        provision_groups(
            state.url,
            settings.aws_region,
            [(s.asg_name, s.min_size, s.max_size, s.min_size) for s in specs],
        )
        print(
            f"{len(specs)} Auto Scaling group(s), one per fleet, tagged fleetcast:managed=true: "
            + ", ".join(s.asg_name for s in specs),
            file=sys.stderr,
        )
    else:
        print(
            f"no fleets in {settings.db_path}: `fleetcast fleets import FILE`, then "
            "`fleetcast local-aws up` again adds their groups",
            file=sys.stderr,
        )
    _print_env(settings, state.environment(settings.aws_region))
    return 0
