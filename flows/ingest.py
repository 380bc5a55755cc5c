"""Ingest every file in the landing folder: validate, store or quarantine, one batch per file."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Cancelled
from pydantic import BaseModel, ConfigDict, Field

from fleetcast.resources.locking import RunLockTimeout, run_lock
from fleetcast.stages.ingest import BatchResult
from fleetcast.stages.orchestration import settings_for
from tasks.checks import list_landing_files
from tasks.ingest import ingest_files


class IngestParams(BaseModel):
    """Where the files and the database are; empty = the worker's environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: str | None = Field(
        default=None,
        description="DuckDB file; empty = $FLEETCAST_DB on the worker (default fleetcast.duckdb)",
    )
    landing: str | None = Field(
        default=None,
        description="Landing folder; empty = $FLEETCAST_LANDING on the worker (default landing/)",
    )


# Timeout shorter than the 10-minute schedule in prefect.yaml.
@flow(name="ingest", flow_run_name="ingest", timeout_seconds=8 * 60)
def ingest(params: IngestParams = IngestParams()) -> list[BatchResult]:  # noqa: B008
    settings = settings_for(params)
    try:  # one writer of the DuckDB file at a time (fleetcast/locking.py)
        with run_lock(settings, wait_seconds=5 * 60, label="ingest"):
            results = ingest_files(settings, list_landing_files(settings))
    except RunLockTimeout as exc:
        return Cancelled(message=f"not run: {exc}")  # type: ignore[return-value]
    failed = [r.file for r in results if not r.ok]
    get_run_logger().info("%d file(s) ingested, %d unreadable", len(results), len(failed))
    if failed:
        raise RuntimeError(f"unreadable file(s): {', '.join(failed)}")
    return results
