"""``fleetcast ingest``: load landing files (CSV, Parquet, JSON lines) with validation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetcast.config import Settings

HELP = (
    "load metrics (long or wide), sessions and events files from the landing folder: each row "
    "stored or quarantined with a reason, one transaction per file; exit 0 when every row was "
    "stored or quarantined, 3 when a file was rejected whole (wrong schema, no data rows, "
    "binary or non-UTF-8 bytes; the other files still load), 1 for an unreadable file (broken "
    "CSV, corrupt Parquet, bad JSON: nothing recorded, the next run retries it), 2 for a path "
    "outside the landing folder or a symlink (nothing read)"
)

# exit codes (README "Contract"); with several outcomes the highest-priority one wins:
# refused (2) > unreadable (1) > rejected (3) > ok (0)
EXIT_OK, EXIT_UNREADABLE, EXIT_REFUSED, EXIT_REJECTED = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files or folders inside the landing folder, relative to the working folder like "
        "any path (e.g. landing/ or landing/a.csv; default: the whole landing folder)",
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

    # Paths are the user's: relative to the working folder, then checked to lie inside the
    # landing folder. No path = the landing folder itself.
    paths = args.paths or [Path(settings.landing_dir)]
    try:
        results = ingest_paths(settings, paths, data_docs=not args.no_docs, base=Path.cwd())
    except PathRefused as exc:
        print(f"fleetcast ingest: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if not results:
        print(f"no files to ingest in {settings.landing_dir}")
        return EXIT_OK
    print(format_summary(results))
    if not args.no_docs:
        print(f"data docs: {settings.docs_dir / 'index.html'}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"fleetcast ingest: error: {r.message}", file=sys.stderr)
    rejected = [r for r in results if r.status == "rejected"]
    for r in rejected:
        reason = r.message.removeprefix("rejected: ").removeprefix(f"{Path(r.file).name}: ")
        print(f"fleetcast ingest: rejected: {r.file}: {reason}", file=sys.stderr)
    if failed:
        return EXIT_UNREADABLE
    return EXIT_REJECTED if rejected else EXIT_OK
