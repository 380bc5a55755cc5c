"""``fleetcast reject --fleet F | --game-type G [--note ...]``: record a rejection; nothing
changes (a run paused for the changes is resumed with the rejection)."""

from __future__ import annotations

import argparse

from fleetcast.config import Settings
from fleetcast.interface.commands.approve import add_arguments as _approve_arguments
from fleetcast.interface.commands.approve import decide

HELP = "reject the capacity changes waiting for a fleet (or a game type): record, change nothing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _approve_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return decide(args, settings, approve=False)
