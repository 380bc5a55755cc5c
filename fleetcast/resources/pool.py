"""The training worker pool: where a batch of independent jobs runs, in-process, in threads or in
``spawn`` processes, with results in job order.

``training_pool(n_jobs, workers, slow=...)`` says where; ``run_jobs(fn, jobs, workers, ...)`` runs
them. One worker runs in-process; otherwise jobs run in ``spawn`` processes (and this process,
which takes jobs too: ``_run_in_processes``), because most of a Prophet fit is Python under the GIL
(Prophet's pandas side, cmdstanpy's file I/O), not the cmdstan subprocess: a thread pool of 2
gave 1.1x on 2 cores, processes 1.76-1.83x (``benchmarks/training.py``). Threads are still used
where processes do not pay or cannot run: fewer than ``PROCESS_MIN_JOBS_PER_WORKER`` jobs per
worker, or only fast jobs (milliseconds each, while a spawned worker takes about a second to
start and import), and inside a daemonic process (a Dask worker), which may not have children.
Never ``fork``: cmdstanpy reads Stan's output with polars, and polars deadlocks in a forked
child. Jobs and results cross processes through multiprocessing's own IPC (they must be
picklable, and ``fn`` defined at module level); nothing is written to disk for it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from fleetcast.resources.logs import quiet_libraries
from fleetcast.resources.progress import tracker

# below this many jobs per worker, a thread pool (spawning and importing a worker process
# costs about a second: measured with the default candidates on 56 days, 2 workers, 2 series
# took 4.9 s in processes vs 3.4 s in threads, 4 series 4.6 s vs 5.1 s)
PROCESS_MIN_JOBS_PER_WORKER = 2

PoolKind = Literal["in-process", "thread", "process"]
J = TypeVar("J")
R = TypeVar("R")


def workers_for(n_jobs: int, workers: int | None) -> int:
    """Workers for ``n_jobs`` jobs: ``workers`` (None: the CPU count), at least 1, at most
    ``n_jobs``."""
    return max(1, min(n_jobs, workers or os.cpu_count() or 1))


def _pool_kind(
    n_jobs: int, workers: int, *, daemonic: bool, slow: bool = True, threads: bool = True
) -> PoolKind:
    """Where ``n_jobs`` jobs run with ``workers`` workers (see the module doc): ``in-process``
    for one worker; ``thread`` for a daemonic process (it cannot have children), too few jobs
    per worker to pay for starting processes, or jobs that are not ``slow``, unless the jobs
    must not share a process (``threads=False``: then ``in-process``); else ``process``
    (spawn)."""
    if workers <= 1 or n_jobs <= 1:
        return "in-process"
    if daemonic or not slow or n_jobs < PROCESS_MIN_JOBS_PER_WORKER * workers:
        return "thread" if threads else "in-process"
    return "process"


def training_pool(
    n_jobs: int, workers: int | None = None, *, slow: bool = True, threads: bool = True
) -> tuple[PoolKind, int]:
    """How ``run_jobs`` runs ``n_jobs`` jobs in this process: (pool kind, workers). ``slow``:
    some job takes seconds, not milliseconds; ``threads=False``: the jobs may not share a
    process."""
    n = workers_for(n_jobs, workers)
    daemonic = multiprocessing.current_process().daemon
    return _pool_kind(n_jobs, n, daemonic=daemonic, slow=slow, threads=threads), n


def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    workers: int | None,
    *,
    slow: bool = True,
    cost: Callable[[J], float] | None = None,
    progress: str | None = None,
    threads: bool = True,
) -> list[R]:
    """``fn`` on every job, results in job order, in-process, in threads or in spawned processes
    (``training_pool``). ``fn`` should not raise for one bad job (return a failed result); a
    worker process that dies raises ``RuntimeError`` naming the cause instead of hanging.
    ``cost``: a job's relative cost; in processes the costliest jobs start first.
    ``progress``: what the jobs are, for a progress bar (on a terminal only). ``threads=False``:
    jobs that must not share a process (matplotlib's fonts are not thread-safe) run in-process
    where threads would be chosen."""
    kind, n = training_pool(len(jobs), workers, slow=slow, threads=threads)
    bump: Callable[[Any], Any] = tracker(len(jobs), progress) if progress else (lambda r: r)
    if kind == "in-process":
        return [bump(fn(j)) for j in jobs]
    if kind == "thread":
        with ThreadPoolExecutor(max_workers=n) as pool:
            return [bump(r) for r in pool.map(fn, jobs)]
    try:
        return _run_in_processes(fn, jobs, n, cost, bump)
    except BrokenProcessPool as exc:
        raise RuntimeError(
            f"a worker process died ({exc}); none of this batch's results were kept (no series "
            "stored). Out of memory is the usual cause: retry with fewer workers (`fleetcast "
            "train|forecast --workers 1` runs in-process)"
        ) from exc


def _run_in_processes(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    n: int,
    cost: Callable[[J], float] | None,
    bump: Callable[[Any], Any],
) -> list[R]:
    """``n`` workers: ``n - 1`` spawned processes and this process itself (one thread), each
    given the next job as soon as it is free (one job in flight each: no queue to wait out at
    the end). This process starts on the first job at once instead of waiting about a second
    for a worker to start and import, and holds one worker's memory fewer (measured: 1.74-1.75x
    for 48 series and 1.76-1.83x for 96 on 2 cores, docs/performance.md)."""
    context = multiprocessing.get_context("spawn")  # never fork: polars deadlocks in a fork
    results: list[R | None] = [None] * len(jobs)
    # costliest first (a fit's cost grows with its history): the last job to finish is short
    order = range(len(jobs))
    todo = deque(sorted(order, key=lambda i: -cost(jobs[i])) if cost is not None else order)
    with (
        ProcessPoolExecutor(n - 1, mp_context=context, initializer=quiet_libraries) as procs,
        ThreadPoolExecutor(1, thread_name_prefix="train") as here,
    ):
        running: dict[Future[R], tuple[int, Executor]] = {}

        def start(executor: Executor) -> None:
            if todo:
                i = todo.popleft()
                running[executor.submit(fn, jobs[i])] = (i, executor)

        start(here)
        for _ in range(n - 1):
            start(procs)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i, executor = running.pop(future)
                results[i] = future.result()
                bump(None)
                start(executor)
    return [r for r in results if r is not None]


class JobRunner(Protocol):
    """Where a batch of independent jobs runs: this machine (:class:`LocalPool`) or a Dask
    cluster (:class:`fleetcast.resources.dask_pool.DaskPool`), chosen by the composition root
    (:func:`fleetcast.config.job_runner`). ``fn`` is a module-level function of plain data
    (picklable jobs in, picklable results out): no file path, no connection. Results come back
    in job order."""

    def run(
        self,
        fn: Callable[[J], R],
        jobs: Sequence[J],
        *,
        slow: bool = True,
        cost: Callable[[J], float] | None = None,
        progress: str | None = None,
    ) -> list[R]: ...


@dataclass(frozen=True)
class LocalPool:
    """This machine: :func:`run_jobs` with ``workers`` (None: the CPU count)."""

    workers: int | None = None

    def run(
        self,
        fn: Callable[[J], R],
        jobs: Sequence[J],
        *,
        slow: bool = True,
        cost: Callable[[J], float] | None = None,
        progress: str | None = None,
    ) -> list[R]:
        return run_jobs(fn, jobs, self.workers, slow=slow, cost=cost, progress=progress)
