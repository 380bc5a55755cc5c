"""``fleetcast reject --fleet F [--note ...]``: record a rejection; nothing changes."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from fleetcast.interface.commands.approve import decide

HELP = "reject the capacity change waiting for a fleet: record it, change nothing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--note", default="", help="why (stored with the decision)")
    parser.add_argument("--id", dest="change_id", help="the change id (default: the newest)")
    parser.add_argument("--by", dest="decided_by", help="who decides (default: cli:$USER)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return decide(args, settings, approve=False)
