"""A guard installed on every Dask worker of a test cluster (pickled by value, so the workers
need not import the tests): it records any DuckDB connection and any opening of a DuckDB file
made in the worker process, and refuses the connection."""

from __future__ import annotations

import sys
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

SEEN: list[str] = []


def seen() -> list[str]:
    """What the guard recorded in this worker process."""
    return list(SEEN)


class NoDatabase(WorkerPlugin):
    """A worker plugin: on each worker, ``duckdb.connect`` records
    and raises, and an audit hook records every file opened whose name says DuckDB."""

    name = "fleetcast-no-database"

    def setup(self, worker: Any) -> None:
        import duckdb

        real = duckdb.connect

        def refuse(*args: Any, **kwargs: Any) -> Any:
            SEEN.append(f"duckdb.connect{args!r}")
            raise PermissionError("a worker may not open the database")

        if getattr(duckdb.connect, "__name__", "") != "refuse":
            duckdb.connect = refuse
            duckdb._real_connect = real  # type: ignore[attr-defined]

        def hook(event: str, args: tuple[Any, ...]) -> None:
            if event == "open" and args and ".duckdb" in str(args[0]):
                SEEN.append(f"open {args[0]}")

        sys.addaudithook(hook)


def probe() -> bool:
    """The guard is in place: a connection is refused (and the record of the probe cleared)."""
    import duckdb

    try:
        duckdb.connect(":memory:")
    except PermissionError:
        SEEN.clear()
        return True
    return False
