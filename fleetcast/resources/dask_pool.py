"""Jobs on a Dask cluster: the same jobs as :class:`fleetcast.resources.pool.LocalPool` runs,
submitted to the scheduler at ``FLEETCAST_DASK_ADDRESS`` through a ``distributed.Client``.

The process that builds the pool (a flow run, the CLI) owns the database: it reads what the
jobs need, ships them as plain data (frames, arrays, configurations: pickled by Dask over its
own protocol), and writes what comes back, once. Workers run the job function (pure code of
``models/`` behind a module-level function) and never see a file path, a connection or a
credential. Dask does the rest: a worker lost mid-run has its tasks rescheduled on the others
(up to ``distributed.scheduler.allowed-failures`` times), and each result is gathered once.
Workers need the fleetcast package installed at the same version (docs/operations.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fleetcast.resources.progress import tracker

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class DaskPool:
    """A Dask scheduler's address (``tcp://host:8786``): jobs run on its workers."""

    address: str
    timeout: float = 30.0  # seconds to reach the scheduler

    def run(
        self,
        fn: Callable[[J], R],
        jobs: Sequence[J],
        *,
        slow: bool = True,
        cost: Callable[[J], float] | None = None,
        progress: str | None = None,
    ) -> list[R]:
        """``fn`` on every job on the cluster, results in job order; the costliest jobs are
        given the highest priority (a fit's cost grows with its history). ``slow`` is for the
        local pool's choice of threads or processes: a cluster's workers are processes."""
        from distributed import Client, as_completed

        if not jobs:
            return []
        bump: Callable[[Any], Any] = tracker(len(jobs), progress) if progress else (lambda r: r)
        run = uuid.uuid4().hex[:8]
        name = getattr(fn, "__name__", "job").strip("_")
        with Client(self.address, timeout=self.timeout, set_as_default=False) as client:
            futures = {
                client.submit(
                    fn,
                    job,
                    key=f"{name}-{run}-{i}",
                    pure=False,
                    priority=int(cost(job)) if cost is not None else 0,
                ): i
                for i, job in enumerate(jobs)
            }
            results: list[Any] = [None] * len(jobs)
            for future in as_completed(futures, loop=client.loop):
                results[futures[future]] = future.result()
                bump(None)
                future.release()
        return results
