"""``fleetcast ingest``: load landing files (CSV, Parquet, JSON lines) with validation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetcast.config import Settings

HELP = (
    "load metrics (long or wide), sessions and events files from the landing folder: each row "
    "stored or quarantined with a reason, one transaction per file; exit 0 when every row was "
    "stored or quarantined (a rejected file is quarantined whole), 1 for an unreadable file, "
    "2 for a path outside the landing folder or a symlink"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files or folders inside the landing folder, relative to it (default: all of it)",
    )
    parser.add_argument(
        "--landing",
        type=Path,
        default=None,
        help="landing folder (default: $FLEETCAST_LANDING or ./landing)",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="skip writing the GX Data Docs (faster)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from fleetcast.resources.landing import PathRefused
    from fleetcast.stages.ingest import format_summary, ingest_paths

    try:
        results = ingest_paths(settings, args.paths or [Path(".")], data_docs=not args.no_docs)
    except PathRefused as exc:
        print(f"fleetcast ingest: refused: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(f"no files to ingest in {settings.landing_dir}")
        return 0
    print(format_summary(results))
    if not args.no_docs:
        print(f"data docs: {settings.docs_dir / 'index.html'}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"fleetcast ingest: error: {r.message}", file=sys.stderr)
    return 1 if failed else 0
