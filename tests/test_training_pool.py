"""Where ``train_all`` runs the per-series jobs: the pure chooser, and a real spawned process pool
that gives the same champions and CV scores as training in-process."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from helpers_data import store_metrics

from fleetcast.config import Settings
from fleetcast.resources import db
from fleetcast.resources.pool import _pool_kind, run_jobs, training_pool
from fleetcast.resources.registry import list_models
from fleetcast.stages.training import slow_candidates, train_all

CANDIDATES = ("prophet", "mstl", "snaive24")  # with the ensemble of the three


def test_one_worker_trains_in_process() -> None:
    assert _pool_kind(40, 1, daemonic=False) == "in-process"
    assert _pool_kind(1, 4, daemonic=False) == "in-process"
    assert _pool_kind(40, 1, daemonic=True) == "in-process"


def test_daemonic_process_uses_threads() -> None:
    """A Dask worker is daemonic: it may not start child processes."""
    assert _pool_kind(40, 2, daemonic=True) == "thread"


def test_few_jobs_per_worker_use_threads_many_use_processes() -> None:
    assert _pool_kind(3, 2, daemonic=False) == "thread"
    assert _pool_kind(4, 2, daemonic=False) == "process"
    assert _pool_kind(48, 2, daemonic=False) == "process"


def test_only_cheap_candidates_use_threads() -> None:
    """Seasonal naive fits take milliseconds: a process pool's start-up would cost more."""
    assert _pool_kind(200, 2, daemonic=False, slow=False) == "thread"
    assert not slow_candidates(("snaive24", "snaive168"))
    assert slow_candidates(None) and slow_candidates(("snaive24", "prophet"))
    assert slow_candidates(("mstl",))


def test_training_pool_clamps_workers_to_jobs() -> None:
    assert training_pool(4, 2) == ("process", 2)
    assert training_pool(2, 8) == ("thread", 2)
    assert training_pool(1, 8) == ("in-process", 1)


def _thread_id(job: int) -> int:
    return threading.get_ident()


def test_jobs_that_may_not_share_a_process_run_in_it_where_threads_would() -> None:
    """3 jobs on 2 workers would go to threads (matplotlib's fonts are not thread-safe)."""
    here = threading.get_ident()
    assert here not in run_jobs(_thread_id, [1, 2, 3], 2)
    assert run_jobs(_thread_id, [1, 2, 3], 2, threads=False) == [here] * 3


def _insert(settings: Settings, n_series: int, hours: int) -> None:
    rng = np.random.default_rng(7)
    ts = pd.date_range("2025-03-01", periods=hours, freq="h")
    parts = []
    for i in range(n_series):
        y = (400 + 100 * i) * np.exp(0.5 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 14 + i) / 24))
        y = y * np.exp(rng.normal(0, 0.05, hours))
        parts.append(pl.DataFrame({"ts": ts.to_numpy(), "game_type": f"game_{i}",
                                   "region": "global", "metric": "players", "value": y,
                                   "batch_id": "test"}))  # fmt: skip
    frame = pl.concat(parts)
    store_metrics(settings, frame)


def _registry(settings: Settings) -> pl.DataFrame:
    with db.session(settings.db_path) as con:
        models = list_models(con)
    return models.select("game_type", "kind", "is_champion", "score", "cv_smape", "cv_coverage")


def test_process_pool_gives_the_same_champions_and_scores_as_in_process(
    settings: Settings, tmp_path: Path
) -> None:
    _insert(settings, 4, 24 * 8)
    assert training_pool(4, 2)[0] == "process"  # the path under test
    other = replace(settings, db_path=tmp_path / "copy.duckdb")
    shutil.copy(settings.db_path, other.db_path)

    alone = train_all(settings, candidates=CANDIDATES, workers=1)
    pooled = train_all(other, candidates=CANDIDATES, workers=2)

    assert [r.key for r in pooled] == [r.key for r in alone]  # job order kept
    assert all(r.status == "trained" for r in alone + pooled), [r.message for r in pooled]
    assert [r.champion for r in pooled] == [r.champion for r in alone]
    # Every candidate is deterministic, Prophet included (explicit inits, L-BFGS, no sampling:
    # uncertainty_samples=0), so the pool changes nothing: scores, notes and the stored rows are
    # bit-identical (measured here; the stored model JSON too).
    assert [(r.score, r.message) for r in pooled] == [(r.score, r.message) for r in alone]
    left, right = _registry(settings), _registry(other)
    assert left.height == 4 * 5  # three candidates, the ensemble and the combination per series
    assert right.equals(left)
