"""Progress of long work (training, forecasting, sweeps) on a terminal, silent elsewhere.

The command line opens a bar with :func:`progress_bar` (a rich progress bar on stderr, only
when stderr is a terminal); the stages report steps through :func:`tracker`, which does nothing
when no bar is open (flows, tests, scripts, a pipe or a log file), so a stage never prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

# (what, total) -> advance(n); set while a bar is open
_OPEN: ContextVar[Callable[[str, int], Callable[[int], None]] | None] = ContextVar(
    "fleetcast_progress", default=None
)


@contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[None]:
    """Show a bar per tracked step while the block runs; ``enabled`` defaults to "stderr is a
    terminal"."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def open_step(what: str, total: int) -> Callable[[int], None]:
        job = bar.add_task(what, total=total)
        return lambda n: bar.advance(job, n)

    with bar, reporting_to(open_step):
        yield


@contextmanager
def reporting_to(open_step: Callable[[str, int], Callable[[int], None]]) -> Iterator[None]:
    """Send the block's tracked steps to ``open_step(what, total) -> advance(n)`` (a terminal
    bar, or a flow's progress artifact: ``tasks.progress``)."""
    token = _OPEN.set(open_step)
    try:
        yield
    finally:
        _OPEN.reset(token)


def tracker(total: int, what: str) -> Callable[[T], T]:
    """``bump(x)``: advance the bar by one and return ``x`` (the identity when no bar is open).
    Call it from the thread that opened the bar (collect results there)."""
    opener = _OPEN.get()
    if opener is None:
        return _identity
    advance = opener(what, total)

    def bump(value: T) -> T:
        advance(1)
        return value

    return bump


def _identity(value: Any) -> Any:
    return value
