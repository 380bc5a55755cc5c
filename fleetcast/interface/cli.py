"""The ``fleetcast`` command line. Each subcommand lives in
``fleetcast/interface/commands/<name>.py`` and exposes ``HELP``, ``add_arguments(parser)`` and
``run(args, settings) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from fleetcast.config import Settings

COMMANDS = [
    "demo",
    "ingest",
    "train",
    "forecast",
    "scale",
    "models",
    "accuracy",
    "backtest",
    "override",
    "budget",
    "approval",
    "approve",
    "reject",
    "status",
    "events",
    "report",
    "fleets",
    "sample",
    "local-aws",
    "deployments",
]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        type=Path,
        default=argparse.SUPPRESS,
        help="DuckDB file (default: $FLEETCAST_DB or ./fleetcast.duckdb)",
    )
    common.add_argument(
        "--aws-endpoint",
        default=argparse.SUPPRESS,
        help="AWS endpoint override for a local stand-in such as moto (default: real AWS)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="fleetcast",
        description="Forecast game-server demand and size fleets ahead of it.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        # A command that fails to import is an error, never a silently missing command.
        module = importlib.import_module(f"fleetcast.interface.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


# command-line option (argparse dest) -> setting, for options that set one (docs/operations.md)
CLI_SETTINGS = {
    "db": "db_path",
    "landing": "landing_dir",
    "aws_endpoint": "aws_endpoint_url",
    "aws_concurrency": "aws_concurrency",
    "observed_max_age_minutes": "observed_max_age_minutes",
    "budget_instances": "budget_instances",
    "budget_cost": "budget_cost_per_hour",
    "budget_hard": "budget_hard",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The composition root for a command: environment, then the command's options."""
    return Settings.from_env(
        **{name: getattr(args, dest, None) for dest, name in CLI_SETTINGS.items()}
    )


def main(argv: list[str] | None = None) -> int:
    from fleetcast.resources.logs import quiet_libraries

    quiet_libraries()
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    from fleetcast.resources.progress import progress_bar

    try:
        with progress_bar():  # long steps show a bar when stderr is a terminal
            return int(args._module.run(args, settings) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for the user; details with FLEETCAST_DEBUG=1
        import os

        if os.environ.get("FLEETCAST_DEBUG"):
            raise
        print(f"fleetcast {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
