"""One run writes a DuckDB file at a time.

DuckDB already refuses a second writer process (``fleetcast.resources.db.connect`` waits, then
raises ``DatabaseBusy``), but a run opens and closes the file many times (ingest, train, forecast,
apply), so two overlapping runs could interleave stage by stage. :func:`run_lock` holds the
file for a whole run:

- an exclusive ``flock`` on ``<db>.lock`` next to the DuckDB file (every process on the machine:
  flows, workers, the CLI);
- optionally a Prefect global concurrency limit (``FLEETCAST_CONCURRENCY_LIMIT=<name>``, created
  with ``prefect gcl create <name> --limit 1``) for workers on several machines that share one
  Prefect server.

A second run waits up to ``wait_seconds`` and then gets :class:`RunLockTimeout` before touching
anything: flows turn that into a Cancelled state (never a crash, never a half-written run).
The lock is re-entrant within one run (a subflow of a run that holds it goes straight in), and
the kernel releases an flock when its process dies, so a killed run never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fleetcast.config import Settings

CONCURRENCY_LIMIT_ENV = "FLEETCAST_CONCURRENCY_LIMIT"

# Lock files held by the current run (a context variable: subflows and tasks of the run inherit
# it, another thread or process starts empty).
_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "fleetcast_run_locks", default=frozenset()
)


class RunLockTimeout(TimeoutError):
    """Another run kept the DuckDB file for longer than this run was willing to wait."""


def lock_path(db_path: Path | str) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".lock")


def _holder_text(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return f" (held by {text})" if text else ""


@contextlib.contextmanager
def file_lock(
    path: Path, *, wait_seconds: float, label: str = "", poll_seconds: float = 0.2
) -> Iterator[None]:
    """An exclusive flock on ``path``, waiting up to ``wait_seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunLockTimeout(
                        f"another fleetcast run is writing {path.with_suffix('')}"
                        f"{_holder_text(path)}; waited {wait_seconds:.0f} s"
                    ) from None
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {label}".strip().encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _prefect_limit(name: str, wait_seconds: float) -> Iterator[None]:
    from prefect.concurrency.sync import concurrency

    try:
        cm = concurrency(name, occupy=1, timeout_seconds=max(wait_seconds, 0.1), strict=True)
        cm.__enter__()
    except TimeoutError as exc:
        raise RunLockTimeout(
            f"global concurrency limit {name!r} stayed full for {wait_seconds:.0f} s"
        ) from exc
    try:
        yield
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)


@contextlib.contextmanager
def run_lock(settings: Settings, *, wait_seconds: float = 600, label: str = "") -> Iterator[None]:
    """Hold the DuckDB file of ``settings`` for one whole run (see the module docstring)."""
    path = lock_path(settings.db_path.resolve())
    key = str(path)
    if key in _held.get():
        yield  # this run already holds it (a subflow)
        return
    limit = os.environ.get(CONCURRENCY_LIMIT_ENV, "").strip()
    with contextlib.ExitStack() as stack:
        if limit:
            stack.enter_context(_prefect_limit(limit, wait_seconds))
        stack.enter_context(file_lock(path, wait_seconds=wait_seconds, label=label))
        token = _held.set(_held.get() | {key})
        try:
            yield
        finally:
            _held.reset(token)
