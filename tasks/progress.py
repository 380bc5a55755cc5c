"""Progress of a task's long steps as a Prefect progress artifact on the run's page and as run
log lines (every ``LOG_EVERY`` percent: on the terminal of a flow run in the foreground, such as
``make demo``, and in the run's logs); the terminal's bar of a command is
``fleetcast.resources.progress.progress_bar``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

from fleetcast.resources.progress import reporting_to

LOG_EVERY = 10  # percent between two log lines of a step


def _open_step(what: str, total: int) -> Callable[[int], None]:
    artifact = create_progress_artifact(0.0, description=what)
    logger = get_run_logger()
    started = time.monotonic()
    done, shown, logged = [0], [0], [0]
    logger.info("%s: 0 of %d", what, total)

    def advance(n: int) -> None:
        done[0] += n
        percent = int(100 * done[0] / max(total, 1))
        if percent > shown[0]:  # one update per percent, not per series
            shown[0] = percent
            update_progress_artifact(artifact, float(min(percent, 100)))  # type: ignore[arg-type]
        if percent >= logged[0] + LOG_EVERY or done[0] == total:
            logged[0] = percent - percent % LOG_EVERY
            elapsed = time.monotonic() - started
            left = elapsed / done[0] * (total - done[0]) if done[0] else 0.0
            logger.info("%s: %d of %d (%.0f s, about %.0f s left)", what, done[0], total, elapsed,
                        left)  # fmt: skip

    return advance


@contextmanager
def progress_artifact() -> Iterator[None]:
    """Show the block's tracked steps (series trained, forecast, ...) as progress artifacts, in
    a flow or task run only (a task called as ``.fn()`` outside one reports nothing)."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        yield
        return
    with reporting_to(_open_step):
        yield
