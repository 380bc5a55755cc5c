"""Progress of a task's long steps as a Prefect progress artifact on the run's page (the
terminal's bar is ``fleetcast.resources.progress.progress_bar``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

from fleetcast.resources.progress import reporting_to


def _open_step(what: str, total: int) -> Callable[[int], None]:
    artifact = create_progress_artifact(0.0, description=what)
    done, shown = [0], [0]

    def advance(n: int) -> None:
        done[0] += n
        percent = int(100 * done[0] / max(total, 1))
        if percent > shown[0]:  # one update per percent, not per series
            shown[0] = percent
            update_progress_artifact(artifact, float(min(percent, 100)))  # type: ignore[arg-type]

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
