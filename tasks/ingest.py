"""Prefect task: ingest landing files into DuckDB (one transaction per file; safe to repeat)."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from fleetcast.config import Settings
from fleetcast.resources.landing import SUPPORTED_SUFFIXES
from fleetcast.stages.ingest import BatchResult, format_summary, ingest_paths
from fleetcast.stages.orchestration import is_transient


@task(
    name="ingest-files",
    # Safe to repeat: a file already stored is recorded as a duplicate and changes nothing.
    # Only a busy database is retried; a refused path or bad data never is.
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
)
def ingest_files(settings: Settings, paths: list[Path]) -> list[BatchResult]:
    """Ingest ``paths`` (inside the landing folder); files of unsupported types are skipped."""
    try:
        logger: logging.Logger | logging.LoggerAdapter = get_run_logger()
    except MissingContextError:  # called as ingest_files.fn(...) outside a run
        logger = logging.getLogger(__name__)
    wanted = [p.absolute() for p in paths if p.suffix.lower() in SUPPORTED_SUFFIXES]
    skipped = len(paths) - len(wanted)
    if skipped:
        logger.info("skipped %d file(s) of unsupported types", skipped)
    if not wanted:
        return []
    results = ingest_paths(settings, wanted)
    logger.info("ingest:\n%s", format_summary(results))
    return results
