"""DuckDB access: one writer at a time, numbered migrations, named SQL files from ``sql/``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class DatabaseBusy(RuntimeError):
    """Another process holds the DuckDB file's write lock."""


@cache
def sql(name: str) -> str:
    """The text of ``sql/queries/<name>.sql``."""
    path = SQL_DIR / "queries" / f"{name}.sql"
    return path.read_text()


def _is_lock_error(exc: Exception) -> bool:
    """Another process writes the file, or (in this process: two flow runs in threads) a
    connection of the other kind, read-only against read-write, is open on it."""
    text = str(exc)
    if isinstance(exc, duckdb.ConnectionException):
        return "different configuration" in text
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def connect(
    path: Path | str, *, read_only: bool = False, wait_seconds: float = 30.0
) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting up to ``wait_seconds`` for another writer to finish.

    DuckDB allows one process to write a file at a time. A second writer waits here; if the
    lock is still held after the wait, it gets a clear error instead of hanging or corrupting.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no fleetcast database at {path}: run `fleetcast ingest` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.1
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"{path} is in use by another fleetcast run (waited {wait_seconds:.0f} s); "
                    "try again when it finishes"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    if not read_only:
        migrate(con)
    return con


@contextlib.contextmanager
def session(
    path: Path | str, *, read_only: bool = False, wait_seconds: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only, wait_seconds=wait_seconds)
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit on success, roll back on any error."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply each ``sql/migrations/NNNN_*.sql`` once, in order. Returns the ones applied now."""
    con.execute(
        "create table if not exists schema_migrations "
        "(version varchar primary key, applied_at timestamp not null default now())"
    )
    done = {row[0] for row in con.sql("select version from schema_migrations").fetchall()}
    applied = []
    for path in sorted((SQL_DIR / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql")):
        if path.stem in done:
            continue
        with transaction(con):
            con.execute(path.read_text())
            con.execute("insert into schema_migrations (version) values (?)", [path.stem])
        applied.append(path.stem)
    return applied
